/*
 * dsh_stall_test.c - a commit that stalls (a disk hiccup) while every REP
 * context holds a write must not cost any client its connection.
 *
 * In process: the store on a temporary file, the DataSync handlers, the
 * nrpc server on ipc:// with 256 contexts (and inline handlers, as
 * datasyncd runs them), and four clients with 64 Updates each in flight.
 * The fault is injected below SQLite: a VFS that wraps the default one
 * and, once armed, sleeps 3 s in the next xSync - the fsync of the
 * writer's commit (durability full). Before the fix the listener watchdog
 * took the unanswered pings (every context busy, so no context to receive
 * them) for nng #1518 and re-created the listener, which closes every
 * connection made through it; the clients' REQ sockets then reconnected
 * and resent at once.
 *
 * Process-wide state (test binary only): the wrapping VFS is registered as
 * SQLite's default for the whole process, and stall_ms / stalls below are
 * its switches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>

#include "datasync/v1/datasync.nrpc.h"
#include "datasync_handlers.h"
#include "ds_test.h"
#include "nrpc.h"
#include "store.h"

#define ST_CLIENTS 4
#define ST_PER_CLIENT 64
#define ST_WRITES (ST_CLIENTS * ST_PER_CLIENT) /* 256 */
#define ST_STALL_MS 3000

/* --- a VFS whose next sync can be made to stall --- */

static sqlite3_vfs *st_orig;   /* SQLite's default VFS, wrapped */
static sqlite3_vfs st_vfs;     /* the wrapper, registered as default */
static atomic_int st_stall_ms; /* > 0: the next xSync sleeps this long */
static atomic_int st_stalls;   /* syncs that stalled */

typedef struct st_file {
	sqlite3_file base;
	sqlite3_file *real; /* follows this struct in the same allocation */
} st_file;

#define REAL(f) (((st_file *) (f))->real)

static int
st_close(sqlite3_file *f)
{
	int rc = REAL(f)->pMethods->xClose(REAL(f));

	f->pMethods = NULL;
	return rc;
}

static int
st_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}

static int
st_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}

static int
st_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int
st_sync(sqlite3_file *f, int flags)
{
	int ms = atomic_exchange(&st_stall_ms, 0);

	if (ms > 0) {
		atomic_fetch_add(&st_stalls, 1);
		ds_test_sleep_ms(ms);
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int
st_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int
st_lock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int
st_unlock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int
st_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int
st_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int
st_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int
st_device_chars(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int
st_shm_map(sqlite3_file *f, int pg, int pgsz, int extend,
    void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int
st_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void
st_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int
st_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int
st_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int
st_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods st_io = {
    3, st_close, st_read, st_write, st_truncate, st_sync, st_file_size,
    st_lock, st_unlock, st_check_reserved, st_file_control, st_sector_size,
    st_device_chars, st_shm_map, st_shm_lock, st_shm_barrier, st_shm_unmap,
    st_fetch, st_unfetch};

static int
st_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *out_flags)
{
	st_file *sf = (st_file *) f;
	int rc;

	(void) vfs;
	sf->real = (sqlite3_file *) (sf + 1);
	f->pMethods = NULL;
	rc = st_orig->xOpen(st_orig, name, sf->real, flags, out_flags);
	/* The real file's methods are version 3 (unix VFS): ours forward
	 * every one of them. */
	if (sf->real->pMethods != NULL) {
		f->pMethods = &st_io;
	}
	return rc;
}

static int
st_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
	(void) v;
	return st_orig->xDelete(st_orig, name, sync_dir);
}

static int
st_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	(void) v;
	return st_orig->xAccess(st_orig, name, flags, out);
}

static int
st_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
	(void) v;
	return st_orig->xFullPathname(st_orig, name, n, out);
}

static void *
st_dl_open(sqlite3_vfs *v, const char *name)
{
	(void) v;
	return st_orig->xDlOpen(st_orig, name);
}

static void
st_dl_error(sqlite3_vfs *v, int n, char *msg)
{
	(void) v;
	st_orig->xDlError(st_orig, n, msg);
}

static void (*st_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
	(void) v;
	return st_orig->xDlSym(st_orig, h, sym);
}

static void
st_dl_close(sqlite3_vfs *v, void *h)
{
	(void) v;
	st_orig->xDlClose(st_orig, h);
}

static int
st_randomness(sqlite3_vfs *v, int n, char *out)
{
	(void) v;
	return st_orig->xRandomness(st_orig, n, out);
}

static int
st_sleep(sqlite3_vfs *v, int us)
{
	(void) v;
	return st_orig->xSleep(st_orig, us);
}

static int
st_current_time(sqlite3_vfs *v, double *out)
{
	(void) v;
	return st_orig->xCurrentTime(st_orig, out);
}

static int
st_last_error(sqlite3_vfs *v, int n, char *out)
{
	(void) v;
	return st_orig->xGetLastError(st_orig, n, out);
}

static int
st_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out)
{
	(void) v;
	return st_orig->xCurrentTimeInt64(st_orig, out);
}

static void
st_vfs_install(void)
{
	st_orig = sqlite3_vfs_find(NULL);
	assert_non_null(st_orig);
	assert_true(st_orig->iVersion >= 2);
	memset(&st_vfs, 0, sizeof(st_vfs));
	st_vfs.iVersion = 2;
	st_vfs.szOsFile = (int) sizeof(st_file) + st_orig->szOsFile;
	st_vfs.mxPathname = st_orig->mxPathname;
	st_vfs.zName = "dsh-stall";
	st_vfs.xOpen = st_open;
	st_vfs.xDelete = st_delete;
	st_vfs.xAccess = st_access;
	st_vfs.xFullPathname = st_full_pathname;
	st_vfs.xDlOpen = st_dl_open;
	st_vfs.xDlError = st_dl_error;
	st_vfs.xDlSym = st_dl_sym;
	st_vfs.xDlClose = st_dl_close;
	st_vfs.xRandomness = st_randomness;
	st_vfs.xSleep = st_sleep;
	st_vfs.xCurrentTime = st_current_time;
	st_vfs.xGetLastError = st_last_error;
	st_vfs.xCurrentTimeInt64 = st_current_time_int64;
	assert_int_equal(sqlite3_vfs_register(&st_vfs, 1), SQLITE_OK);
}

/* --- the writes --- */

typedef struct st_results {
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	int done;
	int ok;
	char first_error[NRPC_MESSAGE_MAX + 64];
} st_results;

static void
st_update_done(void *arg, Datasync__V1__UpdateResponse *resp,
    const nrpc_status *st)
{
	st_results *r = arg;

	pthread_mutex_lock(&r->mtx);
	r->done++;
	if (st->code == NRPC_OK) {
		r->ok++;
	} else if (r->first_error[0] == '\0') {
		(void) snprintf(r->first_error, sizeof(r->first_error), "%s: %s",
		    nrpc_code_name(st->code), st->message);
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mtx);
	if (resp != NULL) {
		datasync__v1__update_response__free_unpacked(resp, NULL);
	}
}

static void
test_stalled_commit_with_every_context_holding_a_write_drops_no_connection(
    void **state)
{
	char dir[256];
	char db[300];
	char url[320];
	const char *urls[1] = {url};
	store_config scfg;
	store *s = NULL;
	store_error serr = {0};
	dsh_config dcfg = {0};
	dsh_service *svc = NULL;
	nrpc_server_config ncfg;
	nrpc_server *srv = NULL;
	nrpc_client *cli[ST_CLIENTS] = {NULL};
	nrpc_client_config ccfg;
	nrpc_status st = {0};
	nrpc_server_stats ss;
	st_results r = {.done = 0};
	struct timespec until;
	int64_t t0;

	(void) state;
	pthread_mutex_init(&r.mtx, NULL);
	pthread_cond_init(&r.cv, NULL);
	st_vfs_install();
	assert_int_equal(ds_test_tmpdir(dir, sizeof(dir)), 0);
	(void) snprintf(db, sizeof(db), "%s/stall.db", dir);
	(void) snprintf(url, sizeof(url), "ipc://%s/stall.sock", dir);

	store_config_default(&scfg);
	scfg.path = db;
	scfg.durability = STORE_DURABILITY_FULL; /* every commit syncs */
	assert_int_equal(store_open(&scfg, &s, &serr), STORE_OK);
	dcfg.store = s;
	assert_int_equal(dsh_service_create(&dcfg, &svc, &st), NRPC_OK);
	nrpc_server_config_default(&ncfg);
	ncfg.urls = urls;
	ncfg.n_urls = 1;
	ncfg.contexts = ST_WRITES; /* the 256 writes fill every context */
	ncfg.inline_handlers = true;
	ncfg.worker_init = dsh_worker_init;
	ncfg.worker_fini = dsh_worker_fini;
	ncfg.worker_arg = svc;
	/* Probe often, so that the 3 s stall spans more than the misses
	 * that used to re-create the listener. */
	ncfg.listener_check_ms = 100;
	assert_int_equal(nrpc_server_create(&ncfg, &srv, &st), NRPC_OK);
	assert_int_equal(dsh_service_register(svc, srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_start(srv, &st), NRPC_OK);
	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	ccfg.dial_blocking = true;
	for (int c = 0; c < ST_CLIENTS; c++) {
		assert_int_equal(nrpc_client_open(&ccfg, &cli[c], &st), NRPC_OK);
	}

	t0 = ds_test_now_ms();
	atomic_store(&st_stall_ms, ST_STALL_MS);
	for (int i = 0; i < ST_WRITES; i++) {
		Datasync__V1__UpdateRequest u = DATASYNC__V1__UPDATE_REQUEST__INIT;
		Datasync__V1__Precondition pc = DATASYNC__V1__PRECONDITION__INIT;
		char key[32];

		(void) snprintf(key, sizeof(key), "stall/%d", i);
		pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
		pc.unconditional = true;
		u.key = key;
		u.value.data = (uint8_t *) "v";
		u.value.len = 1;
		u.content_type = "text/plain";
		u.precondition = &pc;
		/* The client's normal deadline (10 s) outlasts the stall. */
		assert_int_equal(datasync_v1_data_sync_update_async(
		    cli[i % ST_CLIENTS], &u, NULL, st_update_done, &r, &st), NRPC_OK);
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	pthread_mutex_lock(&r.mtx);
	while (r.done < ST_WRITES) {
		if (pthread_cond_timedwait(&r.cv, &r.mtx, &until) != 0) {
			break;
		}
	}
	pthread_mutex_unlock(&r.mtx);
	nrpc_server_stats_get(srv, &ss);
	printf("dsh_stall: %d of %d writes done (%d ok) in %lld ms; the "
	       "watchdog probed %llu times, %llu unanswered while every context "
	       "was in use; %llu listeners re-created\n",
	    r.done, ST_WRITES, r.ok, (long long) (ds_test_now_ms() - t0),
	    (unsigned long long) ss.probes, (unsigned long long) ss.probes_busy,
	    (unsigned long long) ss.relistens);
	if (r.first_error[0] != '\0') {
		printf("dsh_stall: first error: %s\n", r.first_error);
	}
	fflush(stdout);

	assert_int_equal(atomic_load(&st_stalls), 1); /* the fault happened */
	assert_int_equal(r.done, ST_WRITES);
	assert_int_equal(r.ok, ST_WRITES);
	/* The watchdog saw the server saturated and left the listener (and
	 * so every connection) alone; nothing else closed a connection. */
	assert_int_equal(ss.relistens, 0);
	assert_true(ss.probes_busy >= 1);
	assert_int_equal(ss.conns_closed_inflight, 0);
	assert_int_equal(ss.conns_closed_send_timeout, 0);

	for (int c = 0; c < ST_CLIENTS; c++) {
		nrpc_client_close(cli[c]);
	}
	nrpc_server_stop(srv, 5000);
	dsh_service_destroy(svc);
	nrpc_server_destroy(srv);
	store_close(s);
	(void) sqlite3_vfs_unregister(&st_vfs);
	ds_test_rmdir(dir);
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.mtx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_stalled_commit_with_every_context_holding_a_write_drops_no_connection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

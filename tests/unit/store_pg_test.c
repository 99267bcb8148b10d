/*
 * store_pg_test.c - what only the PostgreSQL backend has (DESIGN §10):
 * N nodes creating the schema at once, gapless revisions in commit order
 * under concurrent writers, changes_wait woken by another connection's
 * commit, STORE_EUNAVAILABLE while the server is down and recovery after
 * it returns, and the server's clock with the wall clock.
 *
 * Needs a server: DATASYNC_TEST_PG is the URI of the ctest fixture "pg"
 * (tests/support/pgserver.sh); without it every test fails (no skipping).
 * Each test makes its own database on that server. The stop/restart test
 * starts a private server of its own with pgserver.sh (DS_PGSERVER_SH),
 * so stopping it cannot disturb other tests sharing the fixture's.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
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

#include "store_pg_int.h"
#include "store_test_util.h"

enum {
	SPT_OPENERS = 8,        /* store_open at once on a fresh database */
	SPT_WRITERS = 2,        /* concurrent writing connections */
	SPT_BATCHES = 60,       /* per writer */
	SPT_BATCH = 5,          /* writes per batch */
	SPT_WAIT_MS = 10000,    /* a wake-up that should come at once */
	SPT_RESTARTS = 3,       /* immediate restarts in the issue 12 test */
};

#define SPT_URI_MAX 512

/* spt_db: a fresh database on the fixture's server. */
typedef struct spt_db {
	char name[64];
	char uri[SPT_URI_MAX];
	char admin[SPT_URI_MAX]; /* the fixture's URI, for CREATE/DROP */
} spt_db;

static void
spt_quiet(void *arg, const char *message)
{
	(void) arg;
	(void) message; /* "database ... does not exist, skipping" */
}

/* spt_exec runs sql on a short session to uri; fails the test on error. */
static void
spt_exec(const char *uri, const char *sql)
{
	PGconn *pg = PQconnectdb(uri);
	PGresult *res;

	if (PQstatus(pg) != CONNECTION_OK) {
		fail_msg("connecting to %s: %s", uri, PQerrorMessage(pg));
	}
	(void) PQsetNoticeProcessor(pg, spt_quiet, NULL);
	res = PQexec(pg, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		fail_msg("%s: %s", sql, PQerrorMessage(pg));
	}
	PQclear(res);
	PQfinish(pg);
}

/* spt_i64 runs a one-integer query on uri. */
static int64_t
spt_i64(const char *uri, const char *sql)
{
	PGconn *pg = PQconnectdb(uri);
	PGresult *res;
	int64_t v;

	if (PQstatus(pg) != CONNECTION_OK) {
		fail_msg("connecting to %s: %s", uri, PQerrorMessage(pg));
	}
	res = PQexec(pg, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		fail_msg("%s: %s", sql, PQerrorMessage(pg));
	}
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(pg);
	return v;
}

/* spt_uri_for builds the URI of database db on the server of base. */
static void
spt_uri_for(const char *base, const char *db, char *out, size_t n)
{
	PQconninfoOption *opts = PQconninfoParse(base, NULL);
	const char *host = NULL;
	const char *port = NULL;
	const char *user = NULL;
	int len;

	if (opts == NULL) {
		fail_msg("DATASYNC_TEST_PG is not a libpq URI: %s", base);
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL) {
			continue;
		}
		if (strcmp(o->keyword, "host") == 0) {
			host = o->val;
		} else if (strcmp(o->keyword, "port") == 0) {
			port = o->val;
		} else if (strcmp(o->keyword, "user") == 0) {
			user = o->val;
		}
	}
	len = snprintf(out, n, "postgresql:///%s?host=%s&port=%s&user=%s", db,
	    host != NULL ? host : "/tmp", port != NULL ? port : "5432",
	    user != NULL ? user : "datasync");
	PQconninfoFree(opts);
	assert_true(len > 0 && (size_t) len < n);
}

static const char *
spt_server(void)
{
	const char *uri = getenv("DATASYNC_TEST_PG");

	if (uri == NULL || uri[0] == '\0') {
		fail_msg("DATASYNC_TEST_PG is not set: this test needs the ctest "
		         "fixture \"pg\" (tests/support/pgserver.sh)");
	}
	return uri;
}

static void
spt_db_create(spt_db *d)
{
	static atomic_int seq;
	char sql[128];

	(void) snprintf(d->name, sizeof(d->name), "store_pg_test_%d_%d",
	    (int) getpid(), atomic_fetch_add(&seq, 1));
	(void) snprintf(d->admin, sizeof(d->admin), "%s", spt_server());
	(void) snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s",
	    d->name);
	spt_exec(d->admin, sql);
	(void) snprintf(sql, sizeof(sql), "CREATE DATABASE %s", d->name);
	spt_exec(d->admin, sql);
	spt_uri_for(d->admin, d->name, d->uri, sizeof(d->uri));
}

static void
spt_db_drop(spt_db *d)
{
	char sql[128];

	(void) snprintf(sql, sizeof(sql), "DROP DATABASE %s", d->name);
	spt_exec(d->admin, sql);
}

/* spt_put_w: an unconditional Update of key. */
static store_write
spt_put_w(const char *key)
{
	return stt_update(key, "x", STORE_PRECOND_UNCONDITIONAL, 0);
}

/* spt_open opens a store on uri with clock (NULL = wall). */
static store *
spt_open(const char *uri, const ds_clock *clock)
{
	store_config cfg;
	store_error err;
	store *s = NULL;

	store_config_default(&cfg);
	cfg.path = uri;
	cfg.clock = clock;
	if (store_open(&cfg, &s, &err) != STORE_OK) {
		fail_msg("store_open: %s", err.message);
	}
	assert_string_equal(store_backend_name(s), "postgresql");
	assert_true(store_is_shared(s));
	return s;
}

static store_conn *
spt_conn(store *s)
{
	store_error err;
	store_conn *c = NULL;

	if (store_conn_open(s, &c, &err) != STORE_OK) {
		fail_msg("store_conn_open: %s", err.message);
	}
	return c;
}

/* --- N nodes creating the schema at once --- */

typedef struct spt_opener {
	const char *uri;
	pthread_barrier_t *go;
	store_err rv;
	char message[192];
	store *s;
} spt_opener;

static void *
spt_open_main(void *arg)
{
	spt_opener *o = arg;
	store_config cfg;
	store_error err;

	store_config_default(&cfg);
	cfg.path = o->uri;
	memset(&err, 0, sizeof(err));
	(void) pthread_barrier_wait(o->go);
	o->rv = store_open(&cfg, &o->s, &err);
	(void) snprintf(o->message, sizeof(o->message), "%s", err.message);
	return NULL;
}

static void
test_concurrent_opens_create_the_schema_once(void **state)
{
	spt_opener op[SPT_OPENERS];
	pthread_t th[SPT_OPENERS];
	pthread_barrier_t go;
	spt_db d;
	store_conn *c;
	store_error err;
	uint64_t rev = 99;

	(void) state;
	spt_db_create(&d);
	assert_int_equal(pthread_barrier_init(&go, NULL, SPT_OPENERS), 0);
	for (int i = 0; i < SPT_OPENERS; i++) {
		memset(&op[i], 0, sizeof(op[i]));
		op[i].uri = d.uri;
		op[i].go = &go;
		assert_int_equal(
		    pthread_create(&th[i], NULL, spt_open_main, &op[i]), 0);
	}
	for (int i = 0; i < SPT_OPENERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
	}
	(void) pthread_barrier_destroy(&go);
	for (int i = 0; i < SPT_OPENERS; i++) {
		if (op[i].rv != STORE_OK) {
			fail_msg("opener %d: %s", i, op[i].message);
		}
	}
	/* One schema: one meta row, every store sees the same database. */
	assert_int_equal(spt_i64(d.uri, "SELECT count(*) FROM meta"), 1);
	c = spt_conn(op[0].s);
	assert_int_equal(stt_put(c, "k", "v"), 1);
	store_conn_close(c);
	for (int i = 0; i < SPT_OPENERS; i++) {
		c = spt_conn(op[i].s);
		assert_int_equal(store_integrity_check(c, &err), STORE_OK);
		assert_int_equal(store_revision(c, &rev, &err), STORE_OK);
		assert_int_equal(rev, 1);
		store_conn_close(c);
		store_close(op[i].s);
	}
	spt_db_drop(&d);
}

/* --- gapless revisions in commit order --- */

typedef struct spt_writer {
	store *s;
	int id;
	long failures;
	store_err last;
} spt_writer;

static void *
spt_write_main(void *arg)
{
	spt_writer *w = arg;
	store_conn *c = spt_conn(w->s);
	char keys[SPT_BATCH][32];

	for (int b = 0; b < SPT_BATCHES; b++) {
		store_write ws[SPT_BATCH];
		store_write_result rs[SPT_BATCH];

		memset(rs, 0, sizeof(rs));
		for (int i = 0; i < SPT_BATCH; i++) {
			(void) snprintf(keys[i], sizeof(keys[i]), "w%d/%d/%d",
			    w->id, b, i);
			ws[i] = stt_update(keys[i], "x", STORE_PRECOND_IF_ABSENT,
			    0);
		}
		if (store_apply_batch(c, ws, SPT_BATCH, rs) != STORE_OK) {
			w->failures++;
		}
		for (int i = 0; i < SPT_BATCH; i++) {
			if (rs[i].error.code != STORE_OK) {
				w->failures++;
				w->last = rs[i].error.code;
			}
			store_write_result_fini(&rs[i]);
		}
	}
	store_conn_close(c);
	return NULL;
}

/* spt_watcher: reads the log from its cursor while the writers run; a
 * revision that committed after a higher one was already visible would
 * show up as a gap here. */
typedef struct spt_watcher {
	store *s;
	atomic_bool *stop;
	uint64_t cursor;
	long gaps;
	long reads;
	uint64_t gap_at;
} spt_watcher;

static void
spt_watch_once(spt_watcher *w, store_conn *c)
{
	store_changes_req req;
	store_changes_page page;
	store_error err;

	memset(&req, 0, sizeof(req));
	req.prefix = true;
	req.after = w->cursor;
	req.limit = 1000;
	memset(&page, 0, sizeof(page));
	assert_int_equal(store_changes_read(c, &req, &page, &err), STORE_OK);
	for (size_t i = 0; i < page.n; i++) {
		if (page.events[i].revision != w->cursor + 1) {
			w->gaps++;
			w->gap_at = w->cursor;
		}
		w->cursor = page.events[i].revision;
	}
	w->reads++;
	store_changes_page_fini(&page);
}

static void *
spt_watch_main(void *arg)
{
	spt_watcher *w = arg;
	store_conn *c = spt_conn(w->s);

	while (!atomic_load(w->stop)) {
		spt_watch_once(w, c);
	}
	spt_watch_once(w, c); /* what committed last */
	store_conn_close(c);
	return NULL;
}

static void
test_revisions_are_gapless_in_commit_order(void **state)
{
	spt_writer wr[SPT_WRITERS];
	pthread_t th[SPT_WRITERS];
	pthread_t wt;
	spt_watcher wa;
	atomic_bool stop;
	spt_db d;
	store *s;
	store *s2;
	store_conn *c;
	store_error err;
	uint64_t rev = 0;
	const uint64_t total = (uint64_t) SPT_WRITERS * SPT_BATCHES * SPT_BATCH;

	(void) state;
	spt_db_create(&d);
	s = spt_open(d.uri, NULL);
	s2 = spt_open(d.uri, NULL); /* a second "node" */
	atomic_init(&stop, false);
	memset(&wa, 0, sizeof(wa));
	wa.s = s;
	wa.stop = &stop;
	assert_int_equal(pthread_create(&wt, NULL, spt_watch_main, &wa), 0);
	for (int i = 0; i < SPT_WRITERS; i++) {
		memset(&wr[i], 0, sizeof(wr[i]));
		wr[i].s = i % 2 == 0 ? s : s2;
		wr[i].id = i;
		assert_int_equal(
		    pthread_create(&th[i], NULL, spt_write_main, &wr[i]), 0);
	}
	for (int i = 0; i < SPT_WRITERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (wr[i].failures != 0) {
			fail_msg("writer %d: %ld failures, last %s", i,
			    wr[i].failures, store_strerror(wr[i].last));
		}
	}
	atomic_store(&stop, true);
	assert_int_equal(pthread_join(wt, NULL), 0);
	print_message("store_pg: %" PRIu64 " revisions, %ld log reads while "
	              "writing, %ld gaps\n", wa.cursor, wa.reads, wa.gaps);
	if (wa.gaps != 0) {
		fail_msg("the watcher saw %ld gaps (first after revision %" PRIu64
		         ")", wa.gaps, wa.gap_at);
	}
	assert_int_equal(wa.cursor, total);
	c = spt_conn(s2);
	assert_int_equal(store_revision(c, &rev, &err), STORE_OK);
	assert_int_equal(rev, total);
	assert_int_equal(spt_i64(d.uri, "SELECT count(*) FROM changes"),
	    (int64_t) total);
	assert_int_equal(spt_i64(d.uri, "SELECT max(revision) - min(revision)"
	                                " + 1 FROM changes"),
	    (int64_t) total);
	store_conn_close(c);
	store_close(s2);
	store_close(s);
	spt_db_drop(&d);
}

/* --- changes_wait --- */

static void
test_changes_wait_is_woken_by_another_connection(void **state)
{
	spt_db d;
	store *s;
	store *other;
	store_conn *w;
	store_conn *c;
	store_error err;
	bool woke = true;
	int64_t t0;
	int64_t waited;

	(void) state;
	spt_db_create(&d);
	s = spt_open(d.uri, NULL);
	other = spt_open(d.uri, NULL);
	w = spt_conn(s);
	c = spt_conn(other);
	/* The first call subscribes; nothing committed since. */
	assert_int_equal(store_changes_wait(w, 0, &woke, &err), STORE_OK);
	assert_false(woke);
	t0 = ds_clock_now_ms(ds_clock_monotonic());
	assert_int_equal(store_changes_wait(w, 200, &woke, &err), STORE_OK);
	waited = ds_clock_now_ms(ds_clock_monotonic()) - t0;
	assert_false(woke);
	assert_true(waited >= 190);
	/* Another node commits: the wait returns at once. */
	assert_int_equal(stt_put(c, "k", "v"), 1);
	t0 = ds_clock_now_ms(ds_clock_monotonic());
	assert_int_equal(store_changes_wait(w, SPT_WAIT_MS, &woke, &err),
	    STORE_OK);
	waited = ds_clock_now_ms(ds_clock_monotonic()) - t0;
	assert_true(woke);
	assert_true(waited < SPT_WAIT_MS / 2);
	/* A refused write commits nothing and wakes nobody. */
	assert_int_equal(stt_apply0(c, stt_update("k", "w",
	                                  STORE_PRECOND_IF_ABSENT, 0)),
	    STORE_ECONFLICT);
	assert_int_equal(store_changes_wait(w, 100, &woke, &err), STORE_OK);
	assert_false(woke);
	store_conn_close(c);
	store_conn_close(w);
	store_close(other);
	store_close(s);
	spt_db_drop(&d);
}

/* --- the server going away and coming back --- */

/* spt_pgserver runs tests/support/pgserver.sh CMD DIR [mode]; returns its
 * exit status and the first line of its output in out (may be NULL). */
static int
spt_pgserver(const char *cmd, const char *dir, const char *mode, char *out,
    size_t n)
{
	char line[1024];
	FILE *f;
	int rc;

	(void) snprintf(line, sizeof(line), "%s %s %s %s 2>&1", DS_PGSERVER_SH,
	    cmd, dir, mode != NULL ? mode : "");
	if ((f = popen(line, "r")) == NULL) {
		return -1;
	}
	line[0] = '\0';
	if (fgets(line, sizeof(line), f) == NULL) {
		line[0] = '\0';
	}
	if (out != NULL) {
		line[strcspn(line, "\n")] = '\0';
		(void) snprintf(out, n, "%s", line);
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		/* drain */
	}
	rc = pclose(f);
	return rc;
}

static void
test_unavailable_while_the_server_is_down_then_recovers(void **state)
{
	char dir[64];
	char uri[SPT_URI_MAX];
	store_record rec;
	store_write_result r;
	store_write w;
	store *s;
	store_conn *c;
	store_conn *wc;
	store_error err;
	bool woke = false;

	(void) state;
	(void) spt_server(); /* the fixture's presence is required anyway */
	(void) snprintf(dir, sizeof(dir), "/tmp/dspg-%d", (int) getpid());
	if (spt_pgserver("start", dir, NULL, uri, sizeof(uri)) != 0) {
		fail_msg("pgserver.sh start %s: %s", dir, uri);
	}
	s = spt_open(uri, NULL);
	c = spt_conn(s);
	wc = spt_conn(s);
	assert_int_equal(store_changes_wait(wc, 0, &woke, &err), STORE_OK);
	assert_int_equal(stt_put(c, "k", "v1"), 1);
	assert_int_equal(store_changes_wait(wc, SPT_WAIT_MS, &woke, &err),
	    STORE_OK);
	assert_true(woke); /* heard: nothing pending when the server goes */

	assert_int_equal(spt_pgserver("stop", dir, "fast", NULL, 0), 0);
	/* Every call says UNAVAILABLE, in one line naming the server. */
	w = stt_update("k", "v2", STORE_PRECOND_IF_VERSION, 1);
	assert_int_equal(stt_apply(c, w, &r), STORE_EUNAVAILABLE);
	assert_string_equal(store_reason(r.error.code), "DB_UNAVAILABLE");
	assert_non_null(strstr(r.error.message, "unavailable"));
	assert_null(strchr(r.error.message, '\n'));
	store_write_result_fini(&r);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(c, "k", 1, 0, &rec, &err),
	    STORE_EUNAVAILABLE);
	assert_int_equal(store_changes_wait(wc, 100, &woke, &err),
	    STORE_EUNAVAILABLE);
	assert_int_equal(store_changes_wait(wc, 100, &woke, &err),
	    STORE_EUNAVAILABLE);

	if (spt_pgserver("start", dir, NULL, uri, sizeof(uri)) != 0) {
		fail_msg("pgserver.sh start %s again: %s", dir, uri);
	}
	/* The next call reconnects; nothing of the failed write applied. */
	if (store_get(c, "k", 1, 0, &rec, &err) != STORE_OK) {
		fail_msg("get after the restart: %s", err.message);
	}
	assert_int_equal(rec.version, 1);
	store_record_fini(&rec);
	assert_int_equal(stt_apply(c, w, &r), STORE_OK);
	assert_int_equal(r.record.version, 2);
	store_write_result_fini(&r);
	/* The listener resubscribes and says "reread the log". */
	assert_int_equal(store_changes_wait(wc, 100, &woke, &err), STORE_OK);
	assert_true(woke);
	assert_int_equal(stt_put(c, "k2", "x"), 1);
	assert_int_equal(store_changes_wait(wc, SPT_WAIT_MS, &woke, &err),
	    STORE_OK);
	assert_true(woke);

	/* An immediate stop (a crash) mid-life: the same. */
	assert_int_equal(spt_pgserver("stop", dir, "immediate", NULL, 0), 0);
	assert_int_equal(stt_apply0(c, stt_update("k", "v3",
	                                   STORE_PRECOND_IF_VERSION, 2)),
	    STORE_EUNAVAILABLE);
	if (spt_pgserver("start", dir, NULL, uri, sizeof(uri)) != 0) {
		fail_msg("pgserver.sh start %s after a crash: %s", dir, uri);
	}
	assert_int_equal(stt_apply0(c, stt_update("k", "v3",
	                                   STORE_PRECOND_IF_VERSION, 2)),
	    STORE_OK);
	store_conn_close(wc);
	store_conn_close(c);
	store_close(s);
	(void) spt_pgserver("destroy", dir, NULL, NULL, 0);
}

/* Issue 12: right after PostgreSQL restarts immediately, every session
 * the store holds is dead, but libpq does not know it until it uses one.
 * The first read of each kind on each connection must still answer: a
 * read has nothing to repeat, so finding its session dead it reconnects
 * and runs once more. One connection per kind of read, each warmed up
 * before the restart, so each read below is its connection's first. */
enum {
	SPT_READ_GET,
	SPT_READ_LIST,
	SPT_READ_CHANGES,
	SPT_READ_REVISION,
	SPT_READ_DATA_VERSION,
	SPT_READ_PEEK,
	SPT_READ_INTEGRITY,
	SPT_READ_WAIT,
	SPT_READ_KINDS
};

static const char *const spt_read_names[SPT_READ_KINDS] = {"get", "list",
    "changes_read", "revision", "data_version", "peek_requests",
    "integrity_check", "changes_wait"};

/* spt_read runs read kind k on c once. */
static store_err
spt_read(store_conn *c, int k, store_error *err)
{
	store_record rec;
	store_list_page page;
	store_changes_page chg;
	store_list_req lr;
	store_changes_req cr;
	store_write w = stt_with_rid(spt_put_w("k"), "rid-1");
	const store_write *ws[1] = {&w};
	bool seen[1];
	uint64_t u = 0;
	store_err rv = STORE_EINVAL;

	memset(&rec, 0, sizeof(rec));
	memset(&page, 0, sizeof(page));
	memset(&chg, 0, sizeof(chg));
	memset(&lr, 0, sizeof(lr));
	memset(&cr, 0, sizeof(cr));
	switch (k) {
	case SPT_READ_GET:
		rv = store_get(c, "k", 1, 0, &rec, err);
		store_record_fini(&rec);
		break;
	case SPT_READ_LIST:
		rv = store_list(c, &lr, &page, err);
		store_list_page_fini(&page);
		break;
	case SPT_READ_CHANGES:
		cr.prefix = true;
		cr.limit = 10;
		rv = store_changes_read(c, &cr, &chg, err);
		store_changes_page_fini(&chg);
		break;
	case SPT_READ_REVISION:
		rv = store_revision(c, &u, err);
		break;
	case SPT_READ_DATA_VERSION:
		rv = store_data_version(c, &u, err);
		break;
	case SPT_READ_PEEK:
		rv = store_peek_requests(c, ws, 1, &u, seen, err);
		break;
	case SPT_READ_INTEGRITY:
		rv = store_integrity_check(c, err);
		break;
	case SPT_READ_WAIT:
		rv = store_changes_wait(c, 0, seen, err);
		break;
	}
	return rv;
}

static void
test_issue12_first_read_after_an_immediate_restart_succeeds(void **state)
{
	char dir[64];
	char uri[SPT_URI_MAX];
	store_conn *c[SPT_READ_KINDS];
	store_error err;
	store *s;
	int failed = 0;

	(void) state;
	(void) spt_server();
	(void) snprintf(dir, sizeof(dir), "/tmp/dspgr-%d", (int) getpid());
	if (spt_pgserver("start", dir, NULL, uri, sizeof(uri)) != 0) {
		fail_msg("pgserver.sh start %s: %s", dir, uri);
	}
	s = spt_open(uri, NULL);
	for (int k = 0; k < SPT_READ_KINDS; k++) {
		c[k] = spt_conn(s);
	}
	assert_int_equal(stt_put(c[0], "k", "v1"), 1);
	for (int round = 0; round < SPT_RESTARTS; round++) {
		for (int k = 0; k < SPT_READ_KINDS; k++) {
			if (spt_read(c[k], k, &err) != STORE_OK) {
				fail_msg("%s before restart %d: %s",
				    spt_read_names[k], round, err.message);
			}
		}
		assert_int_equal(
		    spt_pgserver("restart", dir, "immediate", NULL, 0), 0);
		for (int k = 0; k < SPT_READ_KINDS; k++) {
			store_err rv = spt_read(c[k], k, &err);

			if (rv != STORE_OK) {
				fprintf(stderr, "restart %d: the first %s failed: "
				    "%s %s\n", round, spt_read_names[k],
				    store_reason(rv), err.message);
				failed++;
			}
		}
	}
	for (int k = 0; k < SPT_READ_KINDS; k++) {
		store_conn_close(c[k]);
	}
	store_close(s);
	(void) spt_pgserver("destroy", dir, NULL, NULL, 0);
	assert_int_equal(failed, 0);
}

/* --- a statement that fails, and a foreign lock holder --- */

static void
test_a_failing_statement_fails_its_write_alone(void **state)
{
	store_write ws[4];
	store_write_result rs[4];
	store_record rec;
	store_error err;
	uint64_t rev = 0;
	spt_db d;
	store *s;
	store_conn *c;

	(void) state;
	spt_db_create(&d);
	s = spt_open(d.uri, NULL);
	c = spt_conn(s);
	/* The server refuses one write's version row mid-batch, as a full
	 * disk or a broken constraint would: an SQL error, not a refusal. */
	spt_exec(d.uri,
	    "CREATE FUNCTION spt_refuse() RETURNS trigger LANGUAGE plpgsql"
	    " AS $$ BEGIN IF NEW.key = 'bad'::bytea THEN"
	    " RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END"
	    " $$; CREATE TRIGGER spt_refuse BEFORE INSERT ON versions"
	    " FOR EACH ROW EXECUTE FUNCTION spt_refuse()");
	ws[0] = stt_update("a", "1", STORE_PRECOND_IF_ABSENT, 0);
	ws[1] = stt_update("bad", "2", STORE_PRECOND_IF_ABSENT, 0);
	ws[2] = stt_update("b", "3", STORE_PRECOND_IF_ABSENT, 0);
	ws[3] = stt_lock("a", "ann", 0);
	memset(rs, 0, sizeof(rs));
	assert_int_equal(store_apply_batch(c, ws, 4, rs), STORE_OK);
	assert_int_equal(rs[0].error.code, STORE_OK);
	assert_int_equal(rs[1].error.code, STORE_EIO);
	assert_non_null(strstr(rs[1].error.message, "refused by the test"));
	assert_int_equal(rs[1].record.version, 0);
	assert_int_equal(rs[2].error.code, STORE_OK);
	assert_int_equal(rs[3].error.code, STORE_OK);
	/* The others committed with gapless revisions: 1, 2, 3. */
	assert_int_equal(rs[0].record.revision, 1);
	assert_int_equal(rs[2].record.revision, 2);
	assert_int_equal(rs[3].record.revision, 3);
	for (int i = 0; i < 4; i++) {
		store_write_result_fini(&rs[i]);
	}
	assert_int_equal(store_revision(c, &rev, &err), STORE_OK);
	assert_int_equal(rev, 3);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(c, "bad", 3, 0, &rec, &err),
	    STORE_ENOTFOUND);
	assert_int_equal(stt_version(c, "b"), 1);
	assert_int_equal(spt_i64(d.uri, "SELECT count(*) FROM changes"), 3);
	store_conn_close(c);
	store_close(s);
	spt_db_drop(&d);
}

static void
test_a_foreign_lock_holder_gives_db_busy(void **state)
{
	store_config cfg;
	store_error err;
	store_record rec;
	store_write_result r;
	PGconn *hold;
	PGresult *res;
	int64_t t0;
	int64_t took;
	spt_db d;
	store *s = NULL;
	store_conn *c;

	(void) state;
	spt_db_create(&d);
	store_config_default(&cfg);
	cfg.path = d.uri;
	cfg.limits.busy_timeout_ms = 300;
	assert_int_equal(store_open(&cfg, &s, &err), STORE_OK);
	c = spt_conn(s);
	assert_int_equal(stt_put(c, "k", "v"), 1);
	/* Another node's writer, stuck inside its transaction. */
	hold = PQconnectdb(d.uri);
	assert_int_equal(PQstatus(hold), CONNECTION_OK);
	PQclear(PQexec(hold, "BEGIN"));
	res = PQexec(hold, "SELECT * FROM meta FOR UPDATE");
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);

	t0 = ds_clock_now_ms(ds_clock_monotonic());
	assert_int_equal(stt_apply(c, spt_put_w("k"), &r), STORE_EBUSY);
	took = ds_clock_now_ms(ds_clock_monotonic()) - t0;
	assert_string_equal(store_reason(r.error.code), "DB_BUSY");
	assert_non_null(strstr(r.error.message, "busy_timeout_ms (300)"));
	store_write_result_fini(&r);
	assert_true(took >= 250);
	assert_true(took < 5000);
	/* Reads never wait for the writers' lock. */
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(c, "k", 1, 0, &rec, &err), STORE_OK);
	store_record_fini(&rec);

	/* Once waits are cancelled a write gives up at once. */
	store_cancel_waits(s);
	t0 = ds_clock_now_ms(ds_clock_monotonic());
	assert_int_equal(stt_apply(c, spt_put_w("k"), &r), STORE_EBUSY);
	took = ds_clock_now_ms(ds_clock_monotonic()) - t0;
	assert_non_null(strstr(r.error.message, "shutting down"));
	store_write_result_fini(&r);
	assert_true(took < 250);

	/* ... but one that needs no wait still goes through. */
	PQclear(PQexec(hold, "ROLLBACK"));
	PQfinish(hold);
	assert_int_equal(stt_apply0(c, spt_put_w("k")), STORE_OK);
	assert_int_equal(stt_version(c, "k"), 2);
	store_conn_close(c);
	store_close(s);
	spt_db_drop(&d);
}

/* --- the same decisions as the SQLite backend --- */

enum {
	SPT_DIFF_ROUNDS = 40,
	SPT_DIFF_KEYS = 8,      /* few keys: batches repeat them */
	SPT_DIFF_RIDS = 200,    /* reused now and then: replays, reuses */
	SPT_DIFF_MAX_BATCH = 300, /* above STORE_PG_GROUP_MAX */
};

/* spt_side: one backend under the differential test. */
typedef struct spt_side {
	ds_fake_clock clock;
	store *s;
	store_conn *c;
	store_token token[SPT_DIFF_KEYS]; /* last token a Lock returned */
	bool has_token[SPT_DIFF_KEYS];
} spt_side;

static uint64_t
spt_rand(uint64_t *st)
{
	/* xorshift64: deterministic, so a failure reproduces. */
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	return *st;
}

static void
spt_side_open(spt_side *sd, const char *path)
{
	store_config cfg;
	store_error err;

	memset(sd, 0, sizeof(*sd));
	ds_fake_clock_init(&sd->clock, STT_T0);
	store_config_default(&cfg);
	cfg.path = path;
	cfg.clock = &sd->clock.base;
	cfg.limits.history = 3;
	if (store_open(&cfg, &sd->s, &err) != STORE_OK) {
		fail_msg("store_open %s: %s", path, err.message);
	}
	sd->c = spt_conn(sd->s);
}

/* spt_diff_write makes write i of a round: the same on both sides but
 * for the lock tokens, which are each side's own. */
typedef struct spt_wspec {
	int op;
	int key;
	int precond;
	uint64_t version;
	int rid;       /* -1: none */
	bool token;    /* present the side's token for key */
	char value[16];
} spt_wspec;

static store_write
spt_diff_write(const spt_wspec *sp, const spt_side *sd, char keys[][8],
    char rids[][8])
{
	store_write w;

	switch (sp->op) {
	case 0:
	case 1:
		w = stt_update(keys[sp->key], sp->value,
		    (store_precond_kind) sp->precond, sp->version);
		break;
	case 2:
		w = stt_delete(keys[sp->key],
		    sp->precond == STORE_PRECOND_IF_ABSENT
		        ? STORE_PRECOND_UNCONDITIONAL
		        : (store_precond_kind) sp->precond,
		    sp->version);
		break;
	case 3:
		w = stt_lock(keys[sp->key], "owner", 0);
		break;
	default: {
		store_token zero;

		memset(&zero, 0x5a, sizeof(zero));
		w = stt_unlock(keys[sp->key],
		    sd->has_token[sp->key] ? &sd->token[sp->key] : &zero);
		break;
	}
	}
	if (sp->token && sp->op != 4 && sd->has_token[sp->key]) {
		w = stt_with_token(w, &sd->token[sp->key]);
	}
	if (sp->rid >= 0) {
		w = stt_with_rid(w, rids[sp->rid]);
	}
	return w;
}

static void
spt_diff_compare(int round, size_t i, const store_write_result *a,
    const store_write_result *b)
{
	if (a->error.code != b->error.code ||
	    strcmp(a->error.message, b->error.message) != 0 ||
	    strcmp(a->error.field, b->error.field) != 0 ||
	    a->record.version != b->record.version ||
	    a->record.revision != b->record.revision ||
	    a->record.deleted != b->record.deleted ||
	    a->record.locked != b->record.locked ||
	    a->record.lock.fencing_token != b->record.lock.fencing_token ||
	    a->record.lock.expires_at_ms != b->record.lock.expires_at_ms ||
	    a->record.created_at_ms != b->record.created_at_ms ||
	    a->record.updated_at_ms != b->record.updated_at_ms ||
	    a->record.value_len != b->record.value_len ||
	    a->replayed != b->replayed || a->renewed != b->renewed) {
		fail_msg("round %d write %zu: sqlite %s v%" PRIu64 " r%" PRIu64
		         " \"%s\" / postgresql %s v%" PRIu64 " r%" PRIu64 " \"%s\"",
		    round, i, store_reason(a->error.code), a->record.version,
		    a->record.revision, a->error.message,
		    store_reason(b->error.code), b->record.version,
		    b->record.revision, b->error.message);
	}
	if (a->record.value_len > 0) {
		assert_memory_equal(a->record.value, b->record.value,
		    a->record.value_len);
	}
}

static void
test_same_outcomes_as_the_sqlite_backend(void **state)
{
	static spt_wspec specs[SPT_DIFF_MAX_BATCH];
	static store_write ws[2][SPT_DIFF_MAX_BATCH];
	static store_write_result rs[2][SPT_DIFF_MAX_BATCH];
	char keys[SPT_DIFF_KEYS][8];
	char rids[SPT_DIFF_RIDS][8];
	/* op by weight: update 50 %, delete 15 %, lock 15 %, unlock 20 % */
	static const int op_of[20] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 3,
	    3, 3, 4, 4, 4, 4};
	spt_side side[2];
	/* STORE_PG_TEST_SEED replays another sequence (0 is not a seed). */
	const char *seed = getenv("STORE_PG_TEST_SEED");
	uint64_t rnd = seed != NULL && strtoull(seed, NULL, 0) != 0
	    ? strtoull(seed, NULL, 0)
	    : 0x9e3779b97f4a7c15u;
	store_changes_req req;
	store_changes_page pg[2];
	store_error err;
	spt_db d;
	long outcomes[STORE_EUNAVAILABLE + 1];
	long pages = 0;
	bool last;

	(void) state;
	memset(outcomes, 0, sizeof(outcomes));
	spt_db_create(&d);
	spt_side_open(&side[0], ":memory:");
	spt_side_open(&side[1], d.uri);
	for (int k = 0; k < SPT_DIFF_KEYS; k++) {
		(void) snprintf(keys[k], sizeof(keys[k]), "k%d", k);
	}
	for (int k = 0; k < SPT_DIFF_RIDS; k++) {
		(void) snprintf(rids[k], sizeof(rids[k]), "r%d", k);
	}
	for (int round = 0; round < SPT_DIFF_ROUNDS; round++) {
		size_t n = 1 + (size_t) (spt_rand(&rnd) % SPT_DIFF_MAX_BATCH);

		if (round % 4 == 0) {
			n = 1 + (size_t) (spt_rand(&rnd) % 4); /* small ones */
		}
		for (size_t i = 0; i < n; i++) {
			spt_wspec *sp = &specs[i];

			sp->op = op_of[spt_rand(&rnd) % 20];
			sp->key = (int) (spt_rand(&rnd) % SPT_DIFF_KEYS);
			sp->precond = 1 + (int) (spt_rand(&rnd) % 4);
			sp->version = spt_rand(&rnd) % 6;
			sp->rid = spt_rand(&rnd) % 6 == 0
			    ? (int) (spt_rand(&rnd) % SPT_DIFF_RIDS)
			    : -1;
			sp->token = spt_rand(&rnd) % 4 != 0;
			(void) snprintf(sp->value, sizeof(sp->value), "v%d.%zu",
			    round, i);
			if (sp->precond == STORE_PRECOND_IF_VERSION &&
			    sp->version == 0) {
				sp->version = 1;
			}
		}
		for (int b = 0; b < 2; b++) {
			for (size_t i = 0; i < n; i++) {
				ws[b][i] = spt_diff_write(&specs[i], &side[b], keys,
				    rids);
			}
			memset(rs[b], 0, n * sizeof(rs[b][0]));
			assert_int_equal(store_apply_batch(side[b].c, ws[b], n,
			                     rs[b]),
			    STORE_OK);
		}
		for (size_t i = 0; i < n; i++) {
			spt_diff_compare(round, i, &rs[0][i], &rs[1][i]);
			outcomes[rs[0][i].error.code]++;
			for (int b = 0; b < 2; b++) {
				if (ws[b][i].op == STORE_OP_LOCK &&
				    rs[b][i].error.code == STORE_OK) {
					side[b].token[specs[i].key] = rs[b][i].token;
					side[b].has_token[specs[i].key] = true;
				}
				store_write_result_fini(&rs[b][i]);
			}
		}
		/* Leases (30 s) run out now and then. */
		{
			int64_t step = (int64_t) (spt_rand(&rnd) % 40000);

			ds_fake_clock_advance(&side[0].clock, step);
			ds_fake_clock_advance(&side[1].clock, step);
		}
		if (round % 8 == 7) {
			size_t swept[2];
			int64_t next[2];

			for (int b = 0; b < 2; b++) {
				assert_int_equal(store_sweep_expired(side[b].c, 100,
				                     &swept[b], &next[b], &err),
				    STORE_OK);
			}
			assert_int_equal(swept[0], swept[1]);
			assert_int_equal(next[0], next[1]);
		}
	}
	print_message("store_pg: seed %s: same outcomes: %ld ok, %ld conflicts, %ld "
	              "locked, %ld not found, %ld reused\n",
	    seed != NULL ? seed : "default", outcomes[STORE_OK],
	    outcomes[STORE_ECONFLICT],
	    outcomes[STORE_ELOCKED], outcomes[STORE_ENOTFOUND],
	    outcomes[STORE_EREQUEST_ID_REUSED]);
	/* Paging by count and by value bytes ends pages at the same events. */
	memset(&req, 0, sizeof(req));
	req.prefix = true;
	req.limit = 7;
	req.with_values = true;
	req.max_value_bytes = 20;
	for (uint64_t after[2] = {0, 0};;) {
		for (int b = 0; b < 2; b++) {
			req.after = after[b];
			memset(&pg[b], 0, sizeof(pg[b]));
			assert_int_equal(store_changes_read(side[b].c, &req, &pg[b],
			                     &err),
			    STORE_OK);
		}
		assert_int_equal(pg[0].n, pg[1].n);
		assert_int_equal(pg[0].more, pg[1].more);
		for (int b = 0; b < 2; b++) {
			if (pg[b].n > 0) {
				after[b] = pg[b].events[pg[b].n - 1].revision;
			}
		}
		assert_int_equal(after[0], after[1]);
		for (size_t i = 0; i < pg[0].n; i++) {
			assert_int_equal(pg[0].events[i].record.value_len,
			    pg[1].events[i].record.value_len);
		}
		pages += pg[0].n > 0 ? 1 : 0;
		last = pg[0].n == 0;
		store_changes_page_fini(&pg[0]);
		store_changes_page_fini(&pg[1]);
		if (last) {
			break;
		}
	}
	assert_true(pages > 10);
	/* Compaction keeps the same tail. */
	{
		size_t nc[2];

		for (int b = 0; b < 2; b++) {
			assert_int_equal(store_compact_changes(side[b].c, 100, 0,
			                     1000, &nc[b], &err),
			    STORE_OK);
		}
		assert_int_equal(nc[0], nc[1]);
		assert_true(nc[0] > 0);
	}
	/* The same log, event by event. */
	memset(&req, 0, sizeof(req));
	req.prefix = true;
	req.limit = STORE_CHANGES_LIMIT_MAX;
	req.with_values = true;
	req.after = 0; /* compacted: both say so alike */
	for (int b = 0; b < 2; b++) {
		memset(&pg[b], 0, sizeof(pg[b]));
		assert_int_equal(store_changes_read(side[b].c, &req, &pg[b], &err),
		    STORE_EREV_COMPACTED);
		assert_int_equal(pg[b].compact_revision, pg[0].compact_revision);
	}
	req.after = pg[0].compact_revision;
	for (int b = 0; b < 2; b++) {
		memset(&pg[b], 0, sizeof(pg[b]));
		assert_int_equal(store_changes_read(side[b].c, &req, &pg[b], &err),
		    STORE_OK);
	}
	assert_int_equal(pg[0].n, pg[1].n);
	assert_int_equal(pg[0].revision, pg[1].revision);
	for (size_t i = 0; i < pg[0].n; i++) {
		const store_event *x = &pg[0].events[i];
		const store_event *y = &pg[1].events[i];

		assert_int_equal(x->type, y->type);
		assert_int_equal(x->revision, y->revision);
		assert_int_equal(x->record.version, y->record.version);
		assert_int_equal(x->record.key_len, y->record.key_len);
		assert_memory_equal(x->record.key, y->record.key, x->record.key_len);
		assert_int_equal(x->record.locked, y->record.locked);
		assert_int_equal(x->record.updated_at_ms, y->record.updated_at_ms);
		assert_int_equal(x->value_omitted, y->value_omitted);
		assert_int_equal(x->record.value_len, y->record.value_len);
	}
	for (int b = 0; b < 2; b++) {
		store_changes_page_fini(&pg[b]);
		store_conn_close(side[b].c);
		store_close(side[b].s);
	}
	spt_db_drop(&d);
}

/* --- the clock --- */

static void
test_wall_clock_means_the_servers_clock(void **state)
{
	ds_fake_clock fake;
	store_write_result r;
	spt_db d;
	store *s;
	store *fs;
	store_conn *c;
	store_conn *fc;
	int64_t before;
	int64_t after;
	const char *now_sql =
	    "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::int8";

	(void) state;
	spt_db_create(&d);
	s = spt_open(d.uri, NULL);
	c = spt_conn(s);
	/* Stamped by the server: between two readings of its clock. */
	before = spt_i64(d.uri, now_sql);
	assert_int_equal(stt_apply(c, stt_lock("k", "ann", 2000), &r),
	    STORE_OK);
	after = spt_i64(d.uri, now_sql);
	assert_true(r.record.lock.expires_at_ms >= before + 2000);
	assert_true(r.record.lock.expires_at_ms <= after + 2000);
	store_write_result_fini(&r);
	assert_true(spt_i64(d.uri, "SELECT at FROM changes") >= before);
	assert_true(spt_i64(d.uri, "SELECT at FROM changes") <= after);

	/* Any other clock is sent with the statement: a fake clock a year
	 * back rules the leases it makes, whatever the server's says. */
	ds_fake_clock_init(&fake, before - INT64_C(365) * 86400 * 1000);
	fs = spt_open(d.uri, &fake.base);
	fc = spt_conn(fs);
	assert_int_equal(stt_apply(fc, stt_update("f", "x",
	                                  STORE_PRECOND_IF_ABSENT, 0), &r),
	    STORE_OK);
	assert_int_equal(r.record.updated_at_ms, ds_clock_now_ms(&fake.base));
	store_write_result_fini(&r);
	/* By the fake clock, ann's lease (server time) is live for a year. */
	assert_int_equal(stt_apply0(fc, stt_lock("k", "bob", 0)),
	    STORE_ELOCKED);
	store_conn_close(fc);
	store_close(fs);
	store_conn_close(c);
	store_close(s);
	spt_db_drop(&d);
}

/* A node that stalls inside a batch must not hold the writers' lock for
 * ever: every session of ours runs with idle_in_transaction_session_timeout
 * (the server then ends it, and its lock with it). Checked on the store's
 * own session, as the server sees it. */
static void
test_sessions_end_a_stalled_transaction(void **state)
{
	spt_db d;
	store_config cfg;
	store_error err;
	store *s = NULL;
	store_conn *c;
	PGresult *res;
	char want[32];

	(void) state;
	spt_db_create(&d);
	store_config_default(&cfg);
	cfg.path = d.uri;
	assert_int_equal(store_open(&cfg, &s, &err), STORE_OK);
	c = spt_conn(s);
	assert_int_equal(stt_put(c, "k", "v"), 1);
	res = PQexec(((store_pg_conn *) c)->pg,
	    "SELECT setting FROM pg_settings"
	    " WHERE name = 'idle_in_transaction_session_timeout'");
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(res), 1);
	(void) snprintf(want, sizeof(want), "%d", STORE_PG_IDLE_TX_TIMEOUT_MS);
	assert_string_equal(PQgetvalue(res, 0, 0), want);
	PQclear(res);
	store_conn_close(c);
	store_close(s);
	spt_db_drop(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_concurrent_opens_create_the_schema_once),
	    cmocka_unit_test(test_revisions_are_gapless_in_commit_order),
	    cmocka_unit_test(test_changes_wait_is_woken_by_another_connection),
	    cmocka_unit_test(
	        test_unavailable_while_the_server_is_down_then_recovers),
	    cmocka_unit_test(
	        test_issue12_first_read_after_an_immediate_restart_succeeds),
	    cmocka_unit_test(test_a_failing_statement_fails_its_write_alone),
	    cmocka_unit_test(test_a_foreign_lock_holder_gives_db_busy),
	    cmocka_unit_test(test_same_outcomes_as_the_sqlite_backend),
	    cmocka_unit_test(test_wall_clock_means_the_servers_clock),
	    cmocka_unit_test(test_sessions_end_a_stalled_transaction),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

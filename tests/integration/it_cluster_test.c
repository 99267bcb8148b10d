/*
 * it_cluster_test.c - issue 12's N-node tests (DESIGN §10): three real
 * datasyncd processes on one PostgreSQL, each test on a fresh database
 * (createdb over the ctest fixture "pg"'s socket) or, for the restart
 * fault, on a private server of its own (tests/support/pgserver.sh), so
 * restarting it cannot disturb other tests sharing the fixture's.
 *
 *   - 8 clients, each on one node (round-robin), 8 x 200 CAS increments
 *     with datasync_update_with_retry: exactly 1,600;
 *   - 8 threads over 3 nodes take one lock 1,000 times: never two inside,
 *     fencing tokens strictly increasing;
 *   - a mixed Get / CAS / Delete history across 3 nodes is linearizable
 *     (tests/support/ds_linrec + ds_lincheck);
 *   - a watcher on node A sees every write made through B and C exactly
 *     once, in order, with gapless revisions;
 *   - PostgreSQL restarted with -m immediate under load: calls fail
 *     UNAVAILABLE with a retry hint, none runs past its deadline, the
 *     nodes reconnect by themselves, and every acknowledged increment is
 *     in the final value;
 *   - kill -9 of one node under load: its clients that also dialed
 *     another node fail over, clients of the other nodes see no failure,
 *     nothing acknowledged is lost.
 *
 * DS_TEST_FILTER runs only the tests whose name matches a pattern.
 * Needs DATASYNC_TEST_PG_HOST (the fixture's socket directory) and
 * createdb / dropdb on PATH. DS_TEST_SEED replays the random choices;
 * DS_LIN_SECONDS runs the linearizability history longer.
 */
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

#include "datasync.h"
#include "ds_daemon.h"
#include "ds_linrec.h"
#include "ds_rpc.h"
#include "ds_test.h"

#ifndef DS_PGSERVER_SH
#define DS_PGSERVER_SH "tests/support/pgserver.sh"
#endif

#define CL_NODES 3
#define CL_URI_MAX 512
#define CL_COUNT_CLIENTS 8
#define CL_COUNT_EACH 200
#define CL_MUTEX_THREADS 8
#define CL_MUTEX_TOTAL 1000
#define CL_MUTEX_WAIT_MS 10000
#define CL_LIN_THREADS 6
#define CL_LIN_KEYS 3
#define CL_WATCH_WRITERS 4   /* half through node B, half through C */
#define CL_WATCH_EACH 150
#define CL_WATCH_KEYS 8      /* keys per writer: several versions each */
#define CL_WATCH_WAIT_MS 2000
#define CL_FAULT_THREADS 6
#define CL_FAULT_BEFORE 10   /* acks each before the fault */
#define CL_FAULT_AFTER 20    /* acks each begun after it */
#define CL_FAULT_CALL_MS 3000 /* per-call deadline under faults */
#define CL_FAULT_GIVE_UP_MS 90000 /* a hung cluster fails, not the ctest
                                   * timeout */

/* cl_cluster: three nodes on one database. */
typedef struct cl_cluster {
	char db[64];               /* the database made for this test */
	char host[256];            /* its server's socket directory */
	char uri[CL_URI_MAX];
	char private_dir[64];      /* a private server's DIR, or "" */
	ds_daemon node[CL_NODES];
} cl_cluster;

static cl_cluster cl_c;

static int64_t
cl_now_ms(void)
{
	return ds_test_now_ms();
}

/* cl_run runs a shell command; its first output line goes to out. */
static int
cl_run(const char *cmd, char *out, size_t n)
{
	char line[1024];
	FILE *f;

	if ((f = popen(cmd, "r")) == NULL) {
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
		fputs(line, stderr);
	}
	return pclose(f);
}

static int
cl_pgserver(const char *cmd, const char *dir, const char *mode, char *out,
    size_t n)
{
	char line[512];

	/* fsync off (it matters only when the server is made): -m immediate
	 * kills the server's processes, not the kernel, and every commit a
	 * node acknowledged ran with synchronous_commit on (datasyncd sets
	 * it per session for --durability full), so its WAL had reached the
	 * kernel, which keeps it across the crash with or without fsync.
	 * The acknowledged-writes check is as strong; the disk is spared. */
	(void) snprintf(line, sizeof(line), "PGSERVER_FSYNC=off %s %s %s %s 2>&1",
	    DS_PGSERVER_SH, cmd, dir, mode != NULL ? mode : "");
	return cl_run(line, out, n);
}

static int
cl_start_nodes(cl_cluster *c)
{
	const char *extra[] = {"--db", c->uri, NULL};

	for (int i = 0; i < CL_NODES; i++) {
		if (ds_daemon_start(&c->node[i], false, extra) != 0) {
			fprintf(stderr, "node %d did not start\n", i);
			return -1;
		}
	}
	return 0;
}

/* cl_setup: a fresh database on the fixture's server, three nodes. */
static int
cl_setup(void **state)
{
	static atomic_int seq;
	cl_cluster *c = &cl_c;
	const char *host = getenv("DATASYNC_TEST_PG_HOST");
	char cmd[512];
	char out[256];
	int n;

	memset(c, 0, sizeof(*c));
	*state = c;
	if (host == NULL || host[0] == '\0') {
		fprintf(stderr, "DATASYNC_TEST_PG_HOST is not set: this test needs "
		                "the ctest fixture \"pg\"\n");
		return -1;
	}
	(void) snprintf(c->host, sizeof(c->host), "%s", host);
	(void) snprintf(c->db, sizeof(c->db), "it_cluster_%d_%d", (int) getpid(),
	    atomic_fetch_add(&seq, 1));
	n = snprintf(cmd, sizeof(cmd),
	    "createdb -h '%s' -p 5432 -U datasync %s 2>&1", c->host, c->db);
	if (n < 0 || (size_t) n >= sizeof(cmd)) {
		fprintf(stderr, "DATASYNC_TEST_PG_HOST is too long\n");
		return -1;
	}
	if (cl_run(cmd, out, sizeof(out)) != 0) {
		fprintf(stderr, "createdb %s: %s\n", c->db, out);
		return -1;
	}
	n = snprintf(c->uri, sizeof(c->uri),
	    "postgresql:///%s?host=%s&port=5432&user=datasync", c->db, c->host);
	if (n < 0 || (size_t) n >= sizeof(c->uri)) {
		return -1;
	}
	return cl_start_nodes(c);
}

/* cl_setup_private: a private server and three nodes on its database. */
static int
cl_setup_private(void **state)
{
	cl_cluster *c = &cl_c;

	memset(c, 0, sizeof(*c));
	*state = c;
	(void) snprintf(c->private_dir, sizeof(c->private_dir), "/tmp/dscl-%d",
	    (int) getpid());
	if (cl_pgserver("start", c->private_dir, NULL, c->uri,
	        sizeof(c->uri)) != 0) {
		fprintf(stderr, "pgserver.sh start %s: %s\n", c->private_dir,
		    c->uri);
		return -1;
	}
	return cl_start_nodes(c);
}

static int
cl_teardown(void **state)
{
	cl_cluster *c = *state;
	char cmd[512];
	int bad = 0;

	for (int i = 0; i < CL_NODES; i++) {
		if (c->node[i].pid > 0 && ds_daemon_stop(&c->node[i]) != 0) {
			bad++;
		}
		ds_daemon_fini(&c->node[i]);
	}
	if (c->private_dir[0] != '\0') {
		(void) cl_pgserver("destroy", c->private_dir, NULL, NULL, 0);
	} else if (c->db[0] != '\0') {
		int n = snprintf(cmd, sizeof(cmd),
		    "dropdb -f -h '%s' -p 5432 -U datasync %s 2>&1", c->host,
		    c->db);

		if (n > 0 && (size_t) n < sizeof(cmd)) {
			/* Best effort: the fixture's server goes anyway. */
			(void) cl_run(cmd, NULL, 0);
		}
	}
	return bad == 0 ? 0 : -1;
}

static datasync_client *
cl_connect(const char *const *urls, size_t n, int64_t timeout_ms)
{
	datasync_client *dc = NULL;
	nrpc_status st = {0};

	if (datasync_connect(urls, n, timeout_ms, "it-cluster", &dc, &st) !=
	    NRPC_OK) {
		fail_msg("connect %s: %s %s", urls[0], st.reason, st.message);
	}
	return dc;
}

/* cl_counter_value reads key's decimal value through url (absent: 0). */
static long long
cl_counter_value(const char *url, const char *key, uint64_t *version)
{
	Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *resp = NULL;
	datasync_client *dc = cl_connect(&url, 1, 10000);
	nrpc_status st = {0};
	char text[32];
	long long v = 0;
	nrpc_code rv;

	req.key = (char *) key;
	rv = datasync_v1_data_sync_get(datasync_rpc(dc), &req, &resp, NULL,
	    &st);
	if (rv == NRPC_OK) {
		assert_true(resp->record->value.len < sizeof(text));
		memcpy(text, resp->record->value.data, resp->record->value.len);
		text[resp->record->value.len] = '\0';
		v = atoll(text);
		if (version != NULL) {
			*version = resp->record->version;
		}
		datasync__v1__get_response__free_unpacked(resp, NULL);
	} else if (rv != NRPC_NOT_FOUND) {
		fail_msg("get %s via %s: %s %s", key, url, st.reason, st.message);
	}
	nrpc_status_fini(&st);
	datasync_close(dc);
	return v;
}

/* --- counting --- */

typedef struct cl_count_job {
	const char *url;
	int failures;
	unsigned conflicts;
	unsigned attempts;
} cl_count_job;

static void *
cl_count_main(void *arg)
{
	cl_count_job *j = arg;
	datasync_client *dc = NULL;
	nrpc_status st = {0};

	if (datasync_connect(&j->url, 1, 30000, "it-cluster", &dc, &st) !=
	    NRPC_OK) {
		j->failures = CL_COUNT_EACH;
		nrpc_status_fini(&st);
		return NULL;
	}
	for (int i = 0; i < CL_COUNT_EACH; i++) {
		datasync_retry_stats rs;

		if (datasync_update_with_retry(dc, "count/shared", ds_rpc_increment,
		        NULL, 10000, &rs, &st) != NRPC_OK) {
			fprintf(stderr, "increment via %s: %s %s\n", j->url,
			    st.reason, st.message);
			j->failures++;
		}
		j->conflicts += rs.conflicts;
		j->attempts += rs.attempts;
	}
	nrpc_status_fini(&st);
	datasync_close(dc);
	return NULL;
}

static void
test_increments_through_three_nodes_count_exactly(void **state)
{
	cl_cluster *c = *state;
	cl_count_job job[CL_COUNT_CLIENTS];
	pthread_t th[CL_COUNT_CLIENTS];
	unsigned conflicts = 0;
	unsigned attempts = 0;
	uint64_t version = 0;
	long long value;

	memset(job, 0, sizeof(job));
	for (int i = 0; i < CL_COUNT_CLIENTS; i++) {
		job[i].url = c->node[i % CL_NODES].ipc_url;
		assert_int_equal(pthread_create(&th[i], NULL, cl_count_main, &job[i]),
		    0);
	}
	for (int i = 0; i < CL_COUNT_CLIENTS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(job[i].failures, 0);
		conflicts += job[i].conflicts;
		attempts += job[i].attempts;
	}
	/* Every node reads the same final value. */
	for (int n = 0; n < CL_NODES; n++) {
		value = cl_counter_value(c->node[n].ipc_url, "count/shared",
		    &version);
		assert_int_equal(value, CL_COUNT_CLIENTS * CL_COUNT_EACH);
		assert_int_equal(version, CL_COUNT_CLIENTS * CL_COUNT_EACH);
	}
	printf("cluster counting: %d clients over %d nodes x %d increments -> "
	       "%lld, %u conflicts retried\n", CL_COUNT_CLIENTS, CL_NODES,
	    CL_COUNT_EACH, value, conflicts);
	assert_int_equal(attempts, CL_COUNT_CLIENTS * CL_COUNT_EACH + conflicts);
	/* Clients on different nodes really raced: some CAS lost. */
	assert_true(conflicts > 0);
}

/* --- mutual exclusion --- */

typedef struct cl_mutex {
	atomic_int inside;      /* holders inside the critical section */
	atomic_int overlaps;    /* times a holder found someone inside */
	atomic_int acquired;
	atomic_int refused;     /* LOCKED answers at once */
	atomic_int wait_timeouts; /* LOCKED after waiting CL_MUTEX_WAIT_MS */
	atomic_int errors;
	uint64_t last_fence;    /* written only inside the section */
	atomic_int fence_regressions;
} cl_mutex;

typedef struct cl_mutex_job {
	cl_mutex *m;
	const char *url;
	unsigned seed;
	bool waits;             /* queue behind the holder (wait_ms) */
} cl_mutex_job;

static void
cl_pause_us(long us)
{
	struct timespec ts = {0, us * 1000};

	nanosleep(&ts, NULL);
}

static void *
cl_mutex_main(void *arg)
{
	cl_mutex_job *j = arg;
	cl_mutex *m = j->m;
	datasync_client *dc = NULL;
	nrpc_status st = {0};

	if (datasync_connect(&j->url, 1, 30000, "it-cluster", &dc, &st) !=
	    NRPC_OK) {
		atomic_fetch_add(&m->errors, 1);
		nrpc_status_fini(&st);
		return NULL;
	}
	while (atomic_load(&m->acquired) < CL_MUTEX_TOTAL) {
		Datasync__V1__LockRequest lr = DATASYNC__V1__LOCK_REQUEST__INIT;
		Datasync__V1__LockResponse *lresp = NULL;
		Datasync__V1__UnlockRequest ur = DATASYNC__V1__UNLOCK_REQUEST__INIT;
		Datasync__V1__UnlockResponse *uresp = NULL;
		uint64_t fence;

		lr.key = "mutex/one";
		lr.owner = "it-cluster";
		lr.ttl_ms = 30000;
		lr.wait_ms = j->waits ? CL_MUTEX_WAIT_MS : 0;
		if (datasync_v1_data_sync_lock(datasync_rpc(dc), &lr, &lresp, NULL,
		        &st) != NRPC_OK) {
			if (strcmp(st.reason, "LOCKED") == 0) {
				atomic_fetch_add(j->waits ? &m->wait_timeouts
				                          : &m->refused, 1);
			} else {
				fprintf(stderr, "lock via %s: %s %s\n", j->url, st.reason,
				    st.message);
				atomic_fetch_add(&m->errors, 1);
			}
			/* Every refused Lock is a write transaction that
			 * queues on the store's one writer lock with the
			 * holder's Unlock: back off rather than spin. */
			cl_pause_us(2000 + rand_r(&j->seed) % 4000);
			continue;
		}
		if (atomic_fetch_add(&m->inside, 1) != 0) {
			atomic_fetch_add(&m->overlaps, 1);
		}
		/* Successive holders' fencing tokens only grow, whichever
		 * node granted them: one store-wide counter. */
		fence = lresp->lock->fencing_token;
		if (fence <= m->last_fence) {
			atomic_fetch_add(&m->fence_regressions, 1);
		}
		m->last_fence = fence;
		atomic_fetch_add(&m->acquired, 1);
		cl_pause_us(rand_r(&j->seed) % 100);
		atomic_fetch_sub(&m->inside, 1);

		ur.key = "mutex/one";
		ur.lock_token = lresp->lock_token;
		if (datasync_v1_data_sync_unlock(datasync_rpc(dc), &ur, &uresp, NULL,
		        &st) != NRPC_OK) {
			fprintf(stderr, "unlock via %s: %s %s\n", j->url, st.reason,
			    st.message);
			atomic_fetch_add(&m->errors, 1);
		} else {
			datasync__v1__unlock_response__free_unpacked(uresp, NULL);
		}
		datasync__v1__lock_response__free_unpacked(lresp, NULL);
	}
	nrpc_status_fini(&st);
	datasync_close(dc);
	return NULL;
}

static void
test_lock_holders_across_three_nodes_never_overlap(void **state)
{
	cl_cluster *c = *state;
	cl_mutex_job job[CL_MUTEX_THREADS];
	pthread_t th[CL_MUTEX_THREADS];
	cl_mutex m;

	memset(&m, 0, sizeof(m));
	for (int i = 0; i < CL_MUTEX_THREADS; i++) {
		job[i].m = &m;
		job[i].url = c->node[i % CL_NODES].ipc_url;
		job[i].seed = (unsigned) i * 7919u + 1;
		/* Most wait in line (a waiter on one node is granted when a
		 * holder on another unlocks); two try and back off, so
		 * refusals are seen too. */
		job[i].waits = i % 4 != 0;
		assert_int_equal(pthread_create(&th[i], NULL, cl_mutex_main, &job[i]),
		    0);
	}
	for (int i = 0; i < CL_MUTEX_THREADS; i++) {
		pthread_join(th[i], NULL);
	}
	printf("cluster mutual exclusion: %d acquisitions by %d threads over %d "
	       "nodes, %d refusals, %d waits timed out, %d overlaps, last "
	       "fencing token %llu\n",
	    atomic_load(&m.acquired), CL_MUTEX_THREADS, CL_NODES,
	    atomic_load(&m.refused), atomic_load(&m.wait_timeouts),
	    atomic_load(&m.overlaps),
	    (unsigned long long) m.last_fence);
	assert_int_equal(atomic_load(&m.errors), 0);
	assert_int_equal(atomic_load(&m.overlaps), 0);
	assert_int_equal(atomic_load(&m.fence_regressions), 0);
	assert_true(atomic_load(&m.acquired) >= CL_MUTEX_TOTAL);
	/* Contenders were turned away: exclusion was exercised. */
	assert_true(atomic_load(&m.refused) > 0);
}

/* --- linearizability --- */

static void
test_history_across_three_nodes_is_linearizable(void **state)
{
	cl_cluster *c = *state;
	const char *urls[CL_NODES];
	const char *secs_env = getenv("DS_LIN_SECONDS");
	ds_linrec_config cfg;
	ds_linrec_report rep;

	for (int i = 0; i < CL_NODES; i++) {
		urls[i] = c->node[i].ipc_url;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.urls = urls;
	cfg.n_urls = CL_NODES;
	cfg.threads = CL_LIN_THREADS;
	cfg.keys = CL_LIN_KEYS;
	cfg.seconds = secs_env != NULL ? atoi(secs_env) : 3;
	cfg.seed = ds_test_seed();
	cfg.key_prefix = "lin/";
	cfg.max_states = 50000000;
	assert_int_equal(ds_linrec_run(&cfg, &rep), 0);
	printf("cluster linearizability: %zu operations (%zu pending) by %d "
	       "threads over %d nodes, %llu states\n", rep.ops, rep.pending,
	    CL_LIN_THREADS, CL_NODES, (unsigned long long) rep.states);
	assert_int_equal(rep.connect_failures, 0);
	assert_int_equal(rep.keys_gave_up, 0);
	assert_int_equal(rep.keys_linearizable, CL_LIN_KEYS);
	assert_true(rep.ops > 100);
}

/* --- a watcher on one node, writers on the others --- */

typedef struct cl_ack {
	uint64_t revision;
	uint64_t version;
	char key[32];
} cl_ack;

typedef struct cl_writer {
	const char *url;
	int id;
	int failures;
	cl_ack acks[CL_WATCH_EACH];
	int n;
} cl_writer;

static void *
cl_writer_main(void *arg)
{
	cl_writer *w = arg;
	datasync_client *dc = NULL;
	nrpc_status st = {0};

	if (datasync_connect(&w->url, 1, 30000, "it-cluster", &dc, &st) !=
	    NRPC_OK) {
		w->failures = CL_WATCH_EACH;
		nrpc_status_fini(&st);
		return NULL;
	}
	for (int i = 0; i < CL_WATCH_EACH; i++) {
		Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
		Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
		Datasync__V1__UpdateResponse *resp = NULL;
		cl_ack *a = &w->acks[w->n];

		(void) snprintf(a->key, sizeof(a->key), "w/%d/%d", w->id,
		    i % CL_WATCH_KEYS);
		req.key = a->key;
		req.value.data = (uint8_t *) "v";
		req.value.len = 1;
		pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
		pre.unconditional = true;
		req.precondition = &pre;
		if (datasync_v1_data_sync_update(datasync_rpc(dc), &req, &resp, NULL,
		        &st) != NRPC_OK) {
			fprintf(stderr, "put via %s: %s %s\n", w->url, st.reason,
			    st.message);
			w->failures++;
			continue;
		}
		a->revision = resp->record->revision;
		a->version = resp->record->version;
		w->n++;
		datasync__v1__update_response__free_unpacked(resp, NULL);
	}
	nrpc_status_fini(&st);
	datasync_close(dc);
	return NULL;
}

typedef struct cl_seen {
	uint64_t revision;
	uint64_t version;
	int type;
	char key[32];
} cl_seen;

typedef struct cl_watcher {
	const char *url;
	uint64_t after;          /* the cursor */
	atomic_bool writers_done;
	cl_seen *seen;           /* cap entries */
	size_t n;
	size_t cap;
	int errors;
	int order_errors;        /* a revision not above the previous one */
	int replies;
} cl_watcher;

static void *
cl_watcher_main(void *arg)
{
	cl_watcher *w = arg;
	datasync_client *dc = NULL;
	nrpc_status st = {0};
	bool last_round = false;

	if (datasync_connect(&w->url, 1, 30000, "it-cluster", &dc, &st) !=
	    NRPC_OK) {
		w->errors++;
		nrpc_status_fini(&st);
		return NULL;
	}
	/* Until an empty reply (progress) arrives after every writer ended:
	 * then nothing is left to see. */
	while (w->errors == 0) {
		Datasync__V1__WatchRequest req = DATASYNC__V1__WATCH_REQUEST__INIT;
		Datasync__V1__WatchResponse *resp = NULL;
		nrpc_call_opts o = {0};

		last_round = atomic_load(&w->writers_done);
		req.prefix = "w/";
		req.after_revision = w->after;
		req.timeout_ms = CL_WATCH_WAIT_MS;
		req.limit = 1000;
		o.timeout_ms = CL_WATCH_WAIT_MS + 10000;
		if (datasync_v1_data_sync_watch(datasync_rpc(dc), &req, &resp, &o,
		        &st) != NRPC_OK) {
			fprintf(stderr, "watch via %s: %s %s\n", w->url, st.reason,
			    st.message);
			w->errors++;
			break;
		}
		w->replies++;
		for (size_t i = 0; i < resp->n_events; i++) {
			const Datasync__V1__Event *e = resp->events[i];
			cl_seen *s;

			if (e->revision <= w->after) {
				w->order_errors++;
			}
			w->after = e->revision;
			if (w->n == w->cap) {
				w->errors++; /* more events than writes */
				break;
			}
			s = &w->seen[w->n++];
			s->revision = e->revision;
			s->type = (int) e->type;
			s->version = e->record != NULL ? e->record->version : 0;
			(void) snprintf(s->key, sizeof(s->key), "%s",
			    e->record != NULL ? e->record->key : "");
		}
		if (resp->n_events == 0 && last_round) {
			datasync__v1__watch_response__free_unpacked(resp, NULL);
			break;
		}
		datasync__v1__watch_response__free_unpacked(resp, NULL);
	}
	nrpc_status_fini(&st);
	datasync_close(dc);
	return NULL;
}

static void
test_watcher_on_one_node_sees_every_write_through_the_others(void **state)
{
	cl_cluster *c = *state;
	const char *url_a = c->node[0].ipc_url;
	cl_writer *wr;
	pthread_t wt[CL_WATCH_WRITERS];
	pthread_t watch_th;
	cl_watcher w;
	datasync_client *dc;
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__UpdateResponse *resp = NULL;
	nrpc_status st = {0};
	uint64_t start;
	size_t total = 0;

	/* The cursor: a write through node A outside the watched prefix. */
	dc = cl_connect(&url_a, 1, 10000);
	req.key = "marker";
	req.value.data = (uint8_t *) "m";
	req.value.len = 1;
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pre.unconditional = true;
	req.precondition = &pre;
	assert_int_equal(datasync_v1_data_sync_update(datasync_rpc(dc), &req,
	                     &resp, NULL, &st), NRPC_OK);
	start = resp->record->revision;
	datasync__v1__update_response__free_unpacked(resp, NULL);
	datasync_close(dc);

	memset(&w, 0, sizeof(w));
	w.url = url_a;
	w.after = start;
	w.cap = CL_WATCH_WRITERS * CL_WATCH_EACH;
	w.seen = calloc(w.cap, sizeof(*w.seen));
	wr = calloc(CL_WATCH_WRITERS, sizeof(*wr));
	assert_non_null(w.seen);
	assert_non_null(wr);
	atomic_init(&w.writers_done, false);
	assert_int_equal(pthread_create(&watch_th, NULL, cl_watcher_main, &w), 0);
	for (int i = 0; i < CL_WATCH_WRITERS; i++) {
		wr[i].url = c->node[1 + i % 2].ipc_url; /* B and C */
		wr[i].id = i;
		assert_int_equal(pthread_create(&wt[i], NULL, cl_writer_main, &wr[i]),
		    0);
	}
	for (int i = 0; i < CL_WATCH_WRITERS; i++) {
		pthread_join(wt[i], NULL);
		assert_int_equal(wr[i].failures, 0);
		total += (size_t) wr[i].n;
	}
	atomic_store(&w.writers_done, true);
	pthread_join(watch_th, NULL);
	printf("cluster watch: %zu writes through nodes B and C, %zu events "
	       "seen on node A in %d replies, revisions %llu..%llu\n", total,
	    w.n, w.replies, (unsigned long long) start + 1,
	    (unsigned long long) w.after);
	assert_int_equal(w.errors, 0);
	assert_int_equal(w.order_errors, 0);
	/* Nothing else writes this database: the watched prefix's events
	 * are exactly the revisions after the marker, none skipped. */
	assert_int_equal(w.n, total);
	for (size_t i = 0; i < w.n; i++) {
		assert_int_equal(w.seen[i].revision, start + 1 + i);
		assert_int_equal(w.seen[i].type, DATASYNC__V1__EVENT_TYPE__EVENT_PUT);
	}
	/* Each acknowledged write is the event of its revision. */
	for (int i = 0; i < CL_WATCH_WRITERS; i++) {
		for (int j = 0; j < wr[i].n; j++) {
			const cl_ack *a = &wr[i].acks[j];
			const cl_seen *s;

			assert_true(a->revision > start && a->revision <= start + w.n);
			s = &w.seen[a->revision - start - 1];
			assert_string_equal(s->key, a->key);
			assert_int_equal(s->version, a->version);
		}
	}
	free(wr);
	free(w.seen);
}

/* --- faults --- */

/* cl_loader: a client incrementing its own counter through one or two
 * nodes until told the fault is over and it has made progress since. */
typedef struct cl_loader {
	const char *urls[2];
	size_t n_urls;
	char key[32];
	char nodes[8];           /* which nodes it dialled: "A", "A+B" */
	atomic_int *phase;       /* 0 before the fault, 1 during, 2 after */
	atomic_int acks;         /* increments acknowledged */
	int acks_after;          /* of which begun in phase 2 */
	int failures;            /* calls that failed (may have applied) */
	int unavailable;         /* of which UNAVAILABLE */
	int no_retry_hint;       /* UNAVAILABLE without retry_after_ms */
	int deadline_exceeded;   /* a call that hung to its deadline */
	int other;               /* any other code */
	char other_reason[64];
	int64_t max_call_ms;
	bool gave_up;            /* CL_FAULT_GIVE_UP_MS passed */
} cl_loader;

static void *
cl_loader_main(void *arg)
{
	cl_loader *l = arg;
	datasync_client *dc = NULL;
	nrpc_status st = {0};
	int64_t give_up = cl_now_ms() + CL_FAULT_GIVE_UP_MS;

	if (datasync_connect(l->urls, l->n_urls, CL_FAULT_CALL_MS, "it-cluster",
	        &dc, &st) != NRPC_OK) {
		l->other++;
		nrpc_status_fini(&st);
		return NULL;
	}
	while (atomic_load(l->phase) != 2 || l->acks_after < CL_FAULT_AFTER) {
		datasync_retry_stats rs;
		bool after = atomic_load(l->phase) == 2;
		int64_t t0 = cl_now_ms();
		nrpc_code rv = datasync_update_with_retry(dc, l->key,
		    ds_rpc_increment, NULL, 100, &rs, &st);
		int64_t ms = cl_now_ms() - t0;

		if (ms > l->max_call_ms) {
			l->max_call_ms = ms;
		}
		if (rv == NRPC_OK) {
			atomic_fetch_add(&l->acks, 1);
			l->acks_after += after;
		} else {
			l->failures++;
			if (rv == NRPC_UNAVAILABLE) {
				l->unavailable++;
				l->no_retry_hint += st.retry_after_ms == 0;
			} else if (rv == NRPC_DEADLINE_EXCEEDED) {
				l->deadline_exceeded++;
			} else {
				l->other++;
				(void) snprintf(l->other_reason, sizeof(l->other_reason),
				    "%s", st.reason);
			}
			cl_pause_us(10000); /* back off, as a client would */
		}
		if (cl_now_ms() > give_up) {
			l->gave_up = true;
			break;
		}
	}
	nrpc_status_fini(&st);
	datasync_close(dc);
	return NULL;
}

/* cl_wait_acks waits until every loader has at least n acks (false when
 * one gave up or CL_FAULT_GIVE_UP_MS passed). */
static bool
cl_wait_acks(cl_loader *l, int nl, int n)
{
	int64_t give_up = cl_now_ms() + CL_FAULT_GIVE_UP_MS;

	for (;;) {
		bool all = true;

		for (int i = 0; i < nl; i++) {
			all = all && atomic_load(&l[i].acks) >= n;
		}
		if (all) {
			return true;
		}
		if (cl_now_ms() > give_up) {
			return false;
		}
		ds_test_sleep_ms(5);
	}
}

/* cl_check_counts: every acknowledged increment is in its counter; at
 * most the failed calls (whose outcome is unknown) were applied beyond
 * them. Returns the acks in all. */
static int
cl_check_counts(const char *url, cl_loader *l, int nl)
{
	int acks = 0;

	for (int i = 0; i < nl; i++) {
		long long v = cl_counter_value(url, l[i].key, NULL);
		int a = atomic_load(&l[i].acks);

		printf("  %s via node %s: %d acked, %d failed (%d unavailable), "
		       "final %lld, slowest call %lld ms\n", l[i].key, l[i].nodes,
		    a, l[i].failures, l[i].unavailable, v,
		    (long long) l[i].max_call_ms);
		assert_false(l[i].gave_up);
		assert_true(v >= a);
		assert_true(v <= (long long) a + l[i].failures);
		acks += a;
	}
	return acks;
}

static void
test_postgres_immediate_restart_under_load_loses_no_ack(void **state)
{
	cl_cluster *c = *state;
	cl_loader l[CL_FAULT_THREADS];
	pthread_t th[CL_FAULT_THREADS];
	atomic_int phase;
	int unavailable = 0;
	int acks;

	memset(l, 0, sizeof(l));
	atomic_init(&phase, 0);
	for (int i = 0; i < CL_FAULT_THREADS; i++) {
		l[i].urls[0] = c->node[i % CL_NODES].ipc_url;
		l[i].n_urls = 1;
		(void) snprintf(l[i].nodes, sizeof(l[i].nodes), "%c",
		    'A' + i % CL_NODES);
		l[i].phase = &phase;
		(void) snprintf(l[i].key, sizeof(l[i].key), "fault/%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, cl_loader_main, &l[i]),
		    0);
	}
	assert_true(cl_wait_acks(l, CL_FAULT_THREADS, CL_FAULT_BEFORE));
	atomic_store(&phase, 1);
	assert_int_equal(cl_pgserver("restart", c->private_dir, "immediate",
	                     NULL, 0), 0);
	atomic_store(&phase, 2);
	for (int i = 0; i < CL_FAULT_THREADS; i++) {
		pthread_join(th[i], NULL);
	}
	printf("cluster: PostgreSQL restarted -m immediate under %d clients "
	       "over %d nodes:\n", CL_FAULT_THREADS, CL_NODES);
	acks = cl_check_counts(c->node[0].ipc_url, l, CL_FAULT_THREADS);
	for (int i = 0; i < CL_FAULT_THREADS; i++) {
		if (l[i].other != 0) {
			fail_msg("%s: %d calls failed with %s, not UNAVAILABLE",
			    l[i].key, l[i].other, l[i].other_reason);
		}
		assert_int_equal(l[i].deadline_exceeded, 0);
		assert_int_equal(l[i].no_retry_hint, 0);
		/* Each node reconnected by itself: its clients went on. */
		assert_true(l[i].acks_after >= CL_FAULT_AFTER);
		unavailable += l[i].unavailable;
	}
	printf("  %d acknowledged, %d UNAVAILABLE while it was down\n", acks,
	    unavailable);
	/* The outage was seen: otherwise this tested nothing. */
	assert_true(unavailable > 0);
}

static void
test_kill9_of_one_node_under_load_fails_over(void **state)
{
	cl_cluster *c = *state;
	/* 0, 1: node B only; 2, 3: node C only; 4: A + B; 5: A + C. */
	cl_loader l[CL_FAULT_THREADS];
	pthread_t th[CL_FAULT_THREADS];
	atomic_int phase;
	int acks;

	memset(l, 0, sizeof(l));
	atomic_init(&phase, 0);
	for (int i = 0; i < CL_FAULT_THREADS; i++) {
		if (i < 4) {
			l[i].urls[0] = c->node[1 + i / 2].ipc_url;
			l[i].n_urls = 1;
			(void) snprintf(l[i].nodes, sizeof(l[i].nodes), "%c",
			    'B' + i / 2);
		} else {
			l[i].urls[0] = c->node[0].ipc_url;
			l[i].urls[1] = c->node[1 + (i - 4)].ipc_url;
			l[i].n_urls = 2;
			(void) snprintf(l[i].nodes, sizeof(l[i].nodes), "A+%c",
			    'B' + (i - 4));
		}
		l[i].phase = &phase;
		(void) snprintf(l[i].key, sizeof(l[i].key), "kill/%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, cl_loader_main, &l[i]),
		    0);
	}
	assert_true(cl_wait_acks(l, CL_FAULT_THREADS, CL_FAULT_BEFORE));
	ds_daemon_kill9(&c->node[0]);
	atomic_store(&phase, 2);
	for (int i = 0; i < CL_FAULT_THREADS; i++) {
		pthread_join(th[i], NULL);
	}
	printf("cluster: kill -9 of node A under %d clients:\n",
	    CL_FAULT_THREADS);
	acks = cl_check_counts(c->node[1].ipc_url, l, CL_FAULT_THREADS);
	printf("  %d acknowledged\n", acks);
	for (int i = 0; i < CL_FAULT_THREADS; i++) {
		/* The other nodes' clients did not notice. */
		if (i < 4) {
			assert_int_equal(l[i].failures, 0);
		}
		/* The killed node's clients failed over and went on. */
		assert_true(l[i].acks_after >= CL_FAULT_AFTER);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_increments_through_three_nodes_count_exactly, cl_setup,
	        cl_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_lock_holders_across_three_nodes_never_overlap, cl_setup,
	        cl_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_history_across_three_nodes_is_linearizable, cl_setup,
	        cl_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_watcher_on_one_node_sees_every_write_through_the_others,
	        cl_setup, cl_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_postgres_immediate_restart_under_load_loses_no_ack,
	        cl_setup_private, cl_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_kill9_of_one_node_under_load_fails_over, cl_setup,
	        cl_teardown),
	};

	/* DS_TEST_FILTER=test_kill9* runs one test (cmocka's pattern). */
	if (getenv("DS_TEST_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("DS_TEST_FILTER"));
	}
	/* cmocka does not count a failed teardown: a node that leaked or
	 * hung at exit fails the test here (ds_daemon.h). */
	return cmocka_run_group_tests(tests, NULL, NULL) + ds_daemon_failures();
}

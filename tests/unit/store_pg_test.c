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

#include "store_test_util.h"

enum {
	SPT_OPENERS = 8,        /* store_open at once on a fresh database */
	SPT_WRITERS = 2,        /* concurrent writing connections */
	SPT_BATCHES = 60,       /* per writer */
	SPT_BATCH = 5,          /* writes per batch */
	SPT_WAIT_MS = 10000,    /* a wake-up that should come at once */
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_concurrent_opens_create_the_schema_once),
	    cmocka_unit_test(test_revisions_are_gapless_in_commit_order),
	    cmocka_unit_test(test_changes_wait_is_woken_by_another_connection),
	    cmocka_unit_test(
	        test_unavailable_while_the_server_is_down_then_recovers),
	    cmocka_unit_test(test_a_failing_statement_fails_its_write_alone),
	    cmocka_unit_test(test_a_foreign_lock_holder_gives_db_busy),
	    cmocka_unit_test(test_wall_clock_means_the_servers_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

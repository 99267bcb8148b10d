/*
 * cli_bench.c - `datasync bench`: a load generator for the service and
 * the baselines it is measured against (DESIGN §5, §8).
 *
 * Every client run is N state machines ("machines"), one per request in
 * flight. A machine issues a call with an asynchronous stub and its
 * completion callback, on an nng thread, records the outcome and issues
 * the next call: there is no thread per request, and no callback ever
 * waits (STYLE rule 22). The echo baseline is the same machinery on a raw
 * REQ socket with a context and an aio per machine, so the two differ
 * only in what the service adds.
 *
 * Timing: a run is a warmup followed by a measured window of fixed
 * length. An operation counts (throughput and latency) when it completes
 * inside the window; machines stop issuing once the window has closed.
 * Latency is recorded in nanoseconds in a log-linear histogram per
 * machine (HdrHistogram's layout: 64 linear sub-buckets per power of two,
 * so any value is known within 1/64), merged when the run is over.
 *
 * Counters: errors are counted over the whole run (warmup included: an
 * error is a finding whenever it happens); ops, latency, conflicts and
 * retries only inside the measured window.
 *
 * Ops (one "op" is what is counted and timed, retries included):
 *   get         Get of a random key.
 *   update      compare-and-set of a random key. The client keeps a cache
 *               of each key's version (filled by the preload and by every
 *               reply), so an update is one Update with if_version and no
 *               Get. On VERSION_CONFLICT the cache takes the version the
 *               conflict carries (DESIGN §4 rule 2) and the update is
 *               retried against it: a conflict and a retry.
 *   update-hot  the same on ONE key, retried until it succeeds; at the end
 *               the key's version must equal its start version plus the
 *               successful increments (no lost increment).
 *   lock-cycle  Lock a random key of the machine's own share of the keys,
 *               Update it with the token (if_version from the Lock reply),
 *               Unlock: one op. LOCKED (a lease left by an earlier run)
 *               is a conflict, retried on another key.
 *   mixed       90 % get, 10 % update, in one histogram.
 *
 * The same command also serves the raw limits for the benchmark suite
 * (tests/bench/run.sh), each in its own process: an nng REP echo server
 * and libmicrohttpd's bare HTTP handler; and it runs the raw SQLite loops that
 * bound the store.
 */
#include <errno.h>
#include <netdb.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <sqlite3.h>

#include "cli.h"
#include "ds_alloc.h"
#include "nrpc/v1/rpc.pb-c.h"

/* --- limits --- */

/* In-flight requests: each machine holds a 16 KiB histogram (only the
 * touched pages become resident), so 4096 bounds memory; nrpc's server
 * has 256 contexts by default and more in flight only queue. */
#define CLI_BENCH_CONCURRENCY_MAX 4096
/* Keys: 10 million keys of "bench-%06u" fit comfortably in memory. */
#define CLI_BENCH_KEYS_MAX 10000000u
/* Values: the server's default max_value_bytes; beyond it every write
 * fails, which measures nothing. */
#define CLI_BENCH_VALUE_BYTES_MAX (1024u * 1024u)
#define CLI_BENCH_PREFIX_MAX 64
/* Key stride: prefix, up to 10 digits or "hot", NUL. */
#define CLI_BENCH_KEY_STRIDE (CLI_BENCH_PREFIX_MAX + 16)
#define CLI_BENCH_BATCH_MAX 100000
#define CLI_BENCH_CONTEXTS_DEFAULT 256
#define CLI_BENCH_CONTEXTS_MAX 65536
#define CLI_BENCH_DURATION_MAX_MS (24 * 3600 * 1000LL)
/* Preload: at least this many in flight, so 100,000 keys load in
 * seconds even with --concurrency 1. */
#define CLI_BENCH_PRELOAD_MIN_INFLIGHT 64
/* Lease of a lock cycle: short, so a cycle cut short by a killed bench
 * blocks its key only briefly. */
#define CLI_BENCH_LOCK_TTL_MS 10000
#define CLI_BENCH_OWNER "datasync-bench"
#define CLI_BENCH_CONTENT_TYPE "application/octet-stream"
/* The bare HTTP handler's body: about a small record's JSON. */
#define CLI_BENCH_STATIC_BYTES 200

/* --- options --- */

typedef enum cli_bench_mode {
	CLI_BENCH_MODE_SERVICE = 0, /* datasync ops against --url */
	CLI_BENCH_MODE_ECHO,        /* --baseline echo */
	CLI_BENCH_MODE_SQLITE,      /* --baseline sqlite */
	CLI_BENCH_MODE_SQLITE_READ, /* --baseline sqlite-read */
	CLI_BENCH_MODE_ECHO_SERVER, /* --echo-server URL */
	CLI_BENCH_MODE_HTTP_STATIC, /* --http-static HOST:PORT */
} cli_bench_mode;

typedef enum cli_bench_op {
	CLI_BENCH_OP_GET = 0,
	CLI_BENCH_OP_UPDATE,
	CLI_BENCH_OP_UPDATE_HOT,
	CLI_BENCH_OP_LOCK_CYCLE,
	CLI_BENCH_OP_MIXED,
} cli_bench_op;

static const char *const cli_bench_op_names[] = {
    "get", "update", "update-hot", "lock-cycle", "mixed",
};

typedef struct cli_bench_opts {
	cli_bench_mode mode;
	cli_bench_op op;
	const char *url;         /* borrowed from argv */
	const char *listen;      /* echo server URL or HTTP HOST:PORT */
	const char *db;          /* SQLite baselines */
	bool durability_full;
	unsigned batch;          /* updates per transaction (SQLite) */
	unsigned concurrency;    /* machines */
	unsigned contexts;       /* echo server REP contexts */
	int64_t duration_ms;     /* measured window */
	int64_t warmup_ms;
	int64_t timeout_ms;      /* per call */
	size_t keys;
	size_t value_bytes;
	const char *prefix;      /* key prefix */
	bool preload;            /* false: --no-preload */
	bool preload_only;
	bool json;
} cli_bench_opts;

static const char cli_bench_usage[] =
    "usage: datasync bench [--url URL] [--op OP] [--concurrency N]\n"
    "                      [--duration DUR] [--warmup DUR] [--keys N]\n"
    "                      [--value-bytes N] [--json]\n"
    "       datasync bench --baseline echo --url URL [--concurrency N]\n"
    "                      [--value-bytes N] [--duration DUR] [--json]\n"
    "       datasync bench --baseline sqlite --db PATH [--durability "
    "full|normal]\n"
    "                      [--batch N] [--keys N] [--value-bytes N] "
    "[--json]\n"
    "       datasync bench --baseline sqlite-read --db PATH [--keys N]\n"
    "       datasync bench --echo-server URL [--contexts N]\n"
    "       datasync bench --http-static HOST:PORT\n"
    "\n"
    "Load generator: N requests in flight, each driven by the completion\n"
    "of the previous one (async stubs, no thread per request). A progress\n"
    "line each second on stderr; at the end a table (or, with --json, one\n"
    "JSON object: op, url, concurrency, ops_per_sec, p50_us, p99_us,\n"
    "p999_us, errors, conflicts).\n"
    "\n"
    "Ops (--op, default get):\n"
    "  get         Get of a random key\n"
    "  update      CAS of a random key: Update with if_version from a\n"
    "              client-side version cache; on VERSION_CONFLICT retry\n"
    "              against the version the conflict carries\n"
    "  update-hot  CAS of ONE key, retried until it succeeds; checks at\n"
    "              the end that no increment was lost (exit 1 if one was)\n"
    "  lock-cycle  Lock, Update with the token, Unlock = one op\n"
    "  mixed       90 % get, 10 % update\n"
    "\n"
    "Options:\n"
    "  --url URL           service (or echo server) address (default\n"
    "                      " DATASYNC_DEFAULT_URL ")\n"
    "  --concurrency N     requests in flight, 1..4096 (default 8)\n"
    "  --duration DUR      measured window, e.g. 3s (default 10s)\n"
    "  --warmup DUR        unmeasured run before it (default 1s)\n"
    "  --keys N            keys bench-000000.. (default 1000); created or\n"
    "                      read (if_absent) before the run\n"
    "  --key-prefix P      instead of 'bench-'\n"
    "  --value-bytes N     value size, 0..1048576 (default 100)\n"
    "  --timeout DUR       per-call deadline (default 10s)\n"
    "  --no-preload        skip the preload (keys exist; versions are\n"
    "                      learnt from conflicts)\n"
    "  --preload-only      create the keys and exit\n"
    "  --json              one JSON object on stdout\n"
    "\n"
    "Baselines (the limits of this machine, for the benchmark suite):\n"
    "  --baseline echo     raw nng REQ/REP echo of a message as large as an\n"
    "                      Update envelope carrying --value-bytes, same\n"
    "                      client machinery, against --echo-server\n"
    "  --baseline sqlite   raw prepared CAS loop (UPDATE .. WHERE key=? AND\n"
    "                      version=?) on --db in WAL mode, --batch N\n"
    "                      updates per transaction (default 1); synchronous\n"
    "                      as datasyncd's --durability (default full)\n"
    "  --baseline sqlite-read  point reads on one connection\n"
    "  --echo-server URL   serve a raw nng REP echo (--contexts N, default\n"
    "                      256) until SIGINT/SIGTERM\n"
    "  --http-static HOST:PORT  serve a 200-byte body with libmicrohttpd's\n"
    "                      bare handler (any path) until SIGINT/SIGTERM\n"
    "\n"
    "Counting: errors over the whole run; ops, latency, conflicts and\n"
    "retries inside the measured window. Exit 0 when the run completed\n"
    "(errors are reported, not fatal), 1 when it could not run or an\n"
    "increment was lost, 2 on a usage error.\n";

/* --- clock, random numbers, histogram --- */

static uint64_t
cli_bench_now_ns(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail */
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* cli_bench_rand is xorshift64*: fast, per machine, never zero. */
static uint64_t
cli_bench_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * UINT64_C(0x2545F4914F6CDD1D);
}

static uint64_t
cli_bench_seed(unsigned id)
{
	uint64_t s = (uint64_t) (id + 1) * UINT64_C(0x9E3779B97F4A7C15) ^
	    cli_bench_now_ns();

	return s != 0 ? s : 1;
}

/* Log-linear layout: values below 128 ns have a bucket each; above, each
 * power of two [2^k, 2^(k+1)) is split into 64 equal sub-buckets. Values
 * above ~68 s are clamped. */
#define CLI_BENCH_HIST_LINEAR 128
#define CLI_BENCH_HIST_SUB 64
#define CLI_BENCH_HIST_MAX_NS ((UINT64_C(1) << 36) - 1)
#define CLI_BENCH_HIST_BUCKETS 2048

typedef struct cli_bench_hist {
	uint64_t counts[CLI_BENCH_HIST_BUCKETS];
	uint64_t n;
	uint64_t max_ns;
	uint64_t sum_ns; /* for the mean */
} cli_bench_hist;

static size_t
cli_bench_hist_index(uint64_t v)
{
	unsigned e;

	if (v > CLI_BENCH_HIST_MAX_NS) {
		v = CLI_BENCH_HIST_MAX_NS;
	}
	if (v < CLI_BENCH_HIST_LINEAR) {
		return (size_t) v;
	}
	e = (unsigned) (63 - __builtin_clzll(v)) - 6;
	return (size_t) e * CLI_BENCH_HIST_SUB + (size_t) (v >> e);
}

/* cli_bench_hist_upper is the highest value of bucket i. */
static uint64_t
cli_bench_hist_upper(size_t i)
{
	unsigned e;
	uint64_t m;

	if (i < CLI_BENCH_HIST_LINEAR) {
		return i;
	}
	e = (unsigned) (i / CLI_BENCH_HIST_SUB) - 1;
	m = i - (uint64_t) e * CLI_BENCH_HIST_SUB;
	return ((m + 1) << e) - 1;
}

static void
cli_bench_hist_record(cli_bench_hist *h, uint64_t ns)
{
	h->counts[cli_bench_hist_index(ns)]++;
	h->n++;
	h->sum_ns += ns;
	if (ns > h->max_ns) {
		h->max_ns = ns;
	}
}

static void
cli_bench_hist_merge(cli_bench_hist *into, const cli_bench_hist *h)
{
	for (size_t i = 0; i < CLI_BENCH_HIST_BUCKETS; i++) {
		into->counts[i] += h->counts[i];
	}
	into->n += h->n;
	into->sum_ns += h->sum_ns;
	if (h->max_ns > into->max_ns) {
		into->max_ns = h->max_ns;
	}
}

/* cli_bench_hist_us returns the q-quantile (0 < q <= 1) in microseconds:
 * the highest value of the bucket holding it, as HdrHistogram reports,
 * but never above the largest value seen. 0 when empty. */
static double
cli_bench_hist_us(const cli_bench_hist *h, double q)
{
	uint64_t rank;
	uint64_t seen = 0;

	if (h->n == 0) {
		return 0.0;
	}
	rank = (uint64_t) (q * (double) h->n + 0.999999);
	if (rank < 1) {
		rank = 1;
	}
	for (size_t i = 0; i < CLI_BENCH_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = cli_bench_hist_upper(i);

			return (double) (v < h->max_ns ? v : h->max_ns) / 1000.0;
		}
	}
	return (double) h->max_ns / 1000.0;
}

/* --- results --- */

typedef struct cli_bench_result {
	char op[32];          /* "get", "echo", "sqlite-update", ... */
	const char *url;      /* borrowed: URL or database path */
	unsigned concurrency;
	double seconds;       /* length of the measured window */
	uint64_t ops;         /* completed inside the window */
	uint64_t errors;      /* whole run */
	uint64_t conflicts;   /* inside the window */
	uint64_t retries;     /* inside the window */
	uint64_t abandoned;   /* retries cut off by the end of the run */
	cli_bench_hist hist;  /* latency of the ops in the window */
} cli_bench_result;

static int
cli_bench_print_json(const cli_bench_result *r)
{
	json_t *o;
	char *text;
	int rc = CLI_EXIT_ERROR;

	o = json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:I, s:I}", "op",
	    r->op, "url", r->url, "concurrency", (json_int_t) r->concurrency,
	    "ops_per_sec", r->seconds > 0 ? (double) r->ops / r->seconds : 0.0,
	    "p50_us", cli_bench_hist_us(&r->hist, 0.50), "p99_us",
	    cli_bench_hist_us(&r->hist, 0.99), "p999_us",
	    cli_bench_hist_us(&r->hist, 0.999), "errors",
	    (json_int_t) r->errors, "conflicts", (json_int_t) r->conflicts);
	if (o == NULL) {
		fprintf(stderr, "datasync bench: cannot build the JSON result\n");
		return rc;
	}
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
	    JSON_REAL_PRECISION(10));
	if (text != NULL) {
		printf("%s\n", text);
		free(text); /* jansson's allocator */
		rc = CLI_EXIT_OK;
	}
	json_decref(o);
	return rc;
}

static void
cli_bench_print_table(const cli_bench_result *r)
{
	double mean = r->hist.n > 0 ?
	    (double) r->hist.sum_ns / (double) r->hist.n / 1000.0 : 0.0;

	printf("%-14s %5s %11s %9s %9s %9s %9s %9s %7s %9s %8s\n", "op",
	    "conc", "ops/s", "mean us", "p50 us", "p99 us", "p99.9 us",
	    "max us", "errors", "conflicts", "retries");
	printf("%-14s %5u %11.1f %9.1f %9.1f %9.1f %9.1f %9.1f %7" PRIu64
	       " %9" PRIu64 " %8" PRIu64 "\n",
	    r->op, r->concurrency,
	    r->seconds > 0 ? (double) r->ops / r->seconds : 0.0, mean,
	    cli_bench_hist_us(&r->hist, 0.50), cli_bench_hist_us(&r->hist, 0.99),
	    cli_bench_hist_us(&r->hist, 0.999), (double) r->hist.max_ns / 1000.0,
	    r->errors, r->conflicts, r->retries);
	printf("(%s; %" PRIu64 " ops in %.2f s", r->url, r->ops, r->seconds);
	if (r->abandoned > 0) {
		printf("; %" PRIu64 " retries cut off at the end", r->abandoned);
	}
	printf(")\n");
}

static int
cli_bench_report(const cli_bench_opts *o, const cli_bench_result *r)
{
	if (o->json) {
		return cli_bench_print_json(r);
	}
	cli_bench_print_table(r);
	return CLI_EXIT_OK;
}

/* --- run state shared by the machines --- */

typedef struct cli_bench_run cli_bench_run;

typedef enum cli_bench_step {
	CLI_BENCH_STEP_PRELOAD = 0,  /* Update if_absent */
	CLI_BENCH_STEP_GET,
	CLI_BENCH_STEP_UPDATE,       /* update, update-hot, mixed */
	CLI_BENCH_STEP_LOCK,
	CLI_BENCH_STEP_LOCKED_UPDATE,
	CLI_BENCH_STEP_UNLOCK,
} cli_bench_step;

/* cli_bench_machine: one request in flight. Its fields are used by one
 * callback at a time (the completion of its previous call starts the
 * next), so they need no lock; the counters are atomics only because the
 * progress line reads them while the machine runs. */
typedef struct cli_bench_machine {
	cli_bench_run *run;
	unsigned id;
	uint64_t rng;
	cli_bench_step step;
	size_t key;              /* index into the run's keys */
	uint64_t if_version;     /* 0: the key is absent, use if_absent */
	bool op_failed;          /* lock cycle: failed, still unlocking */
	char token[64];          /* lock token of the current cycle */
	uint64_t op_start_ns;    /* first call of the current op */
	nng_ctx ctx;             /* echo only */
	nng_aio *aio;            /* echo only; owned */
	bool echo_sending;
	atomic_uint_fast64_t completed; /* ops finished, warmup included */
	atomic_uint_fast64_t ops;       /* ok, inside the window */
	atomic_uint_fast64_t errors;
	atomic_uint_fast64_t conflicts;
	atomic_uint_fast64_t retries;
	atomic_uint_fast64_t abandoned;
	atomic_uint_fast64_t succeeded; /* successful writes, whole run */
	atomic_uint_fast64_t unknown;   /* writes of unknown outcome */
	cli_bench_hist *hist;    /* owned */
} cli_bench_machine;

struct cli_bench_run {
	const cli_bench_opts *o;
	datasync_client *ds;       /* owned; service mode */
	nrpc_client *rpc;          /* borrowed from ds */
	nng_socket sock;           /* echo mode */
	uint8_t *value;            /* owned; o->value_bytes (echo: message) */
	size_t value_len;
	char *keys;                /* owned; n_keys + 1 (the hot key) */
	size_t n_keys;
	size_t hot;                /* index of the hot key */
	atomic_uint_fast64_t *versions; /* owned; version cache per key */
	cli_bench_machine *m;      /* owned; n_alloc */
	unsigned n_alloc;          /* machines allocated (preload uses all) */
	unsigned n_machines;       /* machines of the measured run */
	bool preloading;           /* machines run preload steps */
	size_t preload_end;        /* preload keys [preload_next, end) */
	atomic_size_t preload_next;
	uint64_t t_begin_ns;       /* measured window; fixed before start */
	uint64_t t_end_ns;
	atomic_bool abort;         /* a fatal error: machines stop */
	pthread_mutex_t mtx;
	pthread_cond_t cv;         /* main waits for active == 0 */
	unsigned active;           /* guarded by mtx: machines running */
	atomic_flag err_claimed;   /* first_err is written once */
	char first_err[NRPC_REASON_MAX + NRPC_MESSAGE_MAX + 64];
};

static const char *
cli_bench_key(const cli_bench_run *r, size_t i)
{
	return r->keys + i * CLI_BENCH_KEY_STRIDE;
}

static void
cli_bench_count(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static uint64_t
cli_bench_read(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static bool
cli_bench_in_window(const cli_bench_run *r, uint64_t now)
{
	return now >= r->t_begin_ns && now < r->t_end_ns;
}

/* cli_bench_note_error keeps the first error's text for the report. */
static void
cli_bench_note_error(cli_bench_run *r, const char *what, const nrpc_status *st)
{
	if (atomic_flag_test_and_set(&r->err_claimed)) {
		return;
	}
	(void) snprintf(r->first_err, sizeof(r->first_err), "%s: %s: %s", what,
	    st->reason[0] != '\0' ? st->reason : nrpc_code_name(st->code),
	    st->message); /* truncation is fine */
}

static void
cli_bench_note_text(cli_bench_run *r, const char *what, const char *msg)
{
	if (atomic_flag_test_and_set(&r->err_claimed)) {
		return;
	}
	(void) snprintf(r->first_err, sizeof(r->first_err), "%s: %s", what,
	    msg); /* truncation is fine */
}

/* cli_bench_machine_stop ends a machine: the last thing it does. */
static void
cli_bench_machine_stop(cli_bench_machine *m)
{
	cli_bench_run *r = m->run;

	pthread_mutex_lock(&r->mtx);
	if (--r->active == 0) {
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mtx);
}

static void cli_bench_begin(cli_bench_machine *m);

/* cli_bench_finish ends the current op and starts the next. */
static void
cli_bench_finish(cli_bench_machine *m, bool ok, const char *what,
    const nrpc_status *st)
{
	cli_bench_run *r = m->run;
	uint64_t now = cli_bench_now_ns();

	cli_bench_count(&m->completed);
	if (!ok) {
		cli_bench_count(&m->errors);
		if (st != NULL) {
			cli_bench_note_error(r, what, st);
		}
	} else if (cli_bench_in_window(r, now)) {
		cli_bench_count(&m->ops);
		cli_bench_hist_record(m->hist, now - m->op_start_ns);
	}
	cli_bench_begin(m);
}

/* cli_bench_conflict counts a conflict; true when the op may retry. */
static bool
cli_bench_conflict(cli_bench_machine *m)
{
	uint64_t now = cli_bench_now_ns();

	if (cli_bench_in_window(m->run, now)) {
		cli_bench_count(&m->conflicts);
	}
	if (now >= m->run->t_end_ns || atomic_load(&m->run->abort)) {
		cli_bench_count(&m->abandoned);
		return false;
	}
	if (cli_bench_in_window(m->run, now)) {
		cli_bench_count(&m->retries);
	}
	return true;
}

/* --- datasync ops --- */

static void cli_bench_issue(cli_bench_machine *m);

/* cli_bench_cache_version stores a version seen in a reply. Concurrent
 * machines may race on a key; the cache only saves round trips, so a
 * stale entry costs a conflict, never correctness. The hot key keeps the
 * highest version seen, so a slow reply does not move it back. */
static void
cli_bench_cache_version(cli_bench_run *r, size_t key, uint64_t v)
{
	if (key == r->hot) {
		uint64_t cur = atomic_load(&r->versions[key]);

		while (cur < v &&
		    !atomic_compare_exchange_weak(&r->versions[key], &cur, v)) {
		}
		return;
	}
	atomic_store_explicit(&r->versions[key], v, memory_order_relaxed);
}

/* cli_bench_conflict_version reads the current version a VERSION_CONFLICT
 * or LOCKED status carries: 0 when the record is absent or deleted.
 * False when the status carries no record. */
static bool
cli_bench_conflict_version(const nrpc_status *st, uint64_t *out)
{
	Datasync__V1__Record *rec = NULL;

	if (datasync_status_record(st, &rec) != NRPC_OK) {
		return false;
	}
	*out = rec->deleted ? 0 : rec->version;
	datasync__v1__record__free_unpacked(rec, NULL);
	return true;
}

static bool
cli_bench_is_conflict(const nrpc_status *st)
{
	return st->code == NRPC_ABORTED &&
	    strcmp(st->reason, "VERSION_CONFLICT") == 0;
}

/* cli_bench_outcome_unknown: a write that failed this way may still have
 * been applied (the reply, not the request, was lost). */
static bool
cli_bench_outcome_unknown(const nrpc_status *st)
{
	return st->code == NRPC_DEADLINE_EXCEEDED ||
	    st->code == NRPC_UNAVAILABLE || st->code == NRPC_CANCELLED;
}

static void
cli_bench_on_get(void *arg, Datasync__V1__GetResponse *resp,
    const nrpc_status *st)
{
	cli_bench_machine *m = arg;

	if (resp != NULL) {
		datasync__v1__get_response__free_unpacked(resp, NULL);
	}
	cli_bench_finish(m, st->code == NRPC_OK, "Get", st);
}

static void
cli_bench_on_preload(cli_bench_machine *m, Datasync__V1__UpdateResponse *resp,
    const nrpc_status *st)
{
	cli_bench_run *r = m->run;
	uint64_t v;

	cli_bench_count(&m->completed);
	if (st->code == NRPC_OK && resp->record != NULL) {
		cli_bench_cache_version(r, m->key, resp->record->version);
	} else if ((cli_bench_is_conflict(st) ||
	    strcmp(st->reason, "LOCKED") == 0) &&
	    cli_bench_conflict_version(st, &v)) {
		/* It exists already (an earlier run): learn its version. */
		cli_bench_cache_version(r, m->key, v);
	} else {
		cli_bench_count(&m->errors);
		cli_bench_note_error(r, "preload", st);
		atomic_store(&r->abort, true);
	}
	cli_bench_begin(m);
}

static void
cli_bench_on_update(void *arg, Datasync__V1__UpdateResponse *resp,
    const nrpc_status *st)
{
	cli_bench_machine *m = arg;
	cli_bench_run *r = m->run;
	uint64_t v;

	if (m->step == CLI_BENCH_STEP_PRELOAD) {
		cli_bench_on_preload(m, resp, st);
		goto out;
	}
	if (st->code == NRPC_OK) {
		cli_bench_count(&m->succeeded);
		if (resp->record != NULL) {
			cli_bench_cache_version(r, m->key, resp->record->version);
		}
		if (m->step == CLI_BENCH_STEP_LOCKED_UPDATE) {
			m->step = CLI_BENCH_STEP_UNLOCK;
			cli_bench_issue(m);
		} else {
			cli_bench_finish(m, true, NULL, NULL);
		}
		goto out;
	}
	if (cli_bench_outcome_unknown(st)) {
		cli_bench_count(&m->unknown);
	}
	if (m->step == CLI_BENCH_STEP_LOCKED_UPDATE) {
		/* Even a conflict is an error under the lock: nobody else
		 * could write. The lease is released all the same. */
		cli_bench_note_error(r, "Update under lock", st);
		m->op_failed = true;
		m->step = CLI_BENCH_STEP_UNLOCK;
		cli_bench_issue(m);
		goto out;
	}
	if (cli_bench_is_conflict(st) && cli_bench_conflict_version(st, &v)) {
		cli_bench_cache_version(r, m->key, v);
		if (cli_bench_conflict(m)) {
			m->if_version = v;
			cli_bench_issue(m);
		} else {
			cli_bench_begin(m); /* the run is over: it stops */
		}
		goto out;
	}
	cli_bench_finish(m, false, "Update", st);
out:
	if (resp != NULL) {
		datasync__v1__update_response__free_unpacked(resp, NULL);
	}
}

/* cli_bench_lock_key picks a key of the machine's own share (keys i with
 * i % machines == id), so lock cycles of different machines do not
 * collide; with fewer keys than machines, any key. */
static size_t
cli_bench_lock_key(cli_bench_machine *m)
{
	cli_bench_run *r = m->run;
	size_t n = r->n_machines;
	size_t share;

	if (r->n_keys < n) {
		return (size_t) (cli_bench_rand(&m->rng) % r->n_keys);
	}
	share = (r->n_keys - m->id + n - 1) / n;
	return m->id + n * (size_t) (cli_bench_rand(&m->rng) % share);
}

static void
cli_bench_on_lock(void *arg, Datasync__V1__LockResponse *resp,
    const nrpc_status *st)
{
	cli_bench_machine *m = arg;
	size_t len;

	if (st->code == NRPC_OK &&
	    (len = strlen(resp->lock_token)) < sizeof(m->token)) {
		memcpy(m->token, resp->lock_token, len + 1);
		m->if_version = resp->version;
		m->step = CLI_BENCH_STEP_LOCKED_UPDATE;
		cli_bench_issue(m);
	} else if (st->code == NRPC_OK) {
		nrpc_status bad = {0};

		nrpc_status_set(&bad, NRPC_INTERNAL, "BENCH_TOKEN_TOO_LONG",
		    NULL, "lock token longer than %zu bytes", sizeof(m->token) - 1);
		cli_bench_finish(m, false, "Lock", &bad);
	} else if (strcmp(st->reason, "LOCKED") == 0) {
		if (cli_bench_conflict(m)) {
			m->key = cli_bench_lock_key(m);
			cli_bench_issue(m);
		} else {
			cli_bench_begin(m);
		}
	} else {
		cli_bench_finish(m, false, "Lock", st);
	}
	if (resp != NULL) {
		datasync__v1__lock_response__free_unpacked(resp, NULL);
	}
}

static void
cli_bench_on_unlock(void *arg, Datasync__V1__UnlockResponse *resp,
    const nrpc_status *st)
{
	cli_bench_machine *m = arg;

	if (resp != NULL) {
		datasync__v1__unlock_response__free_unpacked(resp, NULL);
	}
	if (st->code != NRPC_OK) {
		cli_bench_finish(m, false, "Unlock", st);
	} else {
		/* A failed update was noted already; count it once, here. */
		cli_bench_finish(m, !m->op_failed, NULL, NULL);
	}
}

/* cli_bench_issue sends the call of the machine's current step. When the
 * call cannot even start (the client is closing, out of memory) the
 * machine stops rather than spin. */
static void
cli_bench_issue(cli_bench_machine *m)
{
	cli_bench_run *r = m->run;
	const char *key = cli_bench_key(r, m->key);
	nrpc_status st = {0};
	nrpc_code rc = NRPC_INTERNAL;

	switch (m->step) {
	case CLI_BENCH_STEP_GET: {
		Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;

		req.key = (char *) key;
		rc = datasync_v1_data_sync_get_async(r->rpc, &req, NULL,
		    cli_bench_on_get, m, &st);
		break;
	}
	case CLI_BENCH_STEP_PRELOAD:
	case CLI_BENCH_STEP_UPDATE:
	case CLI_BENCH_STEP_LOCKED_UPDATE: {
		Datasync__V1__UpdateRequest req =
		    DATASYNC__V1__UPDATE_REQUEST__INIT;
		Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;

		req.key = (char *) key;
		req.value.data = r->value;
		req.value.len = r->o->value_bytes;
		req.content_type = CLI_BENCH_CONTENT_TYPE;
		req.precondition = &pre;
		if (m->step == CLI_BENCH_STEP_PRELOAD || m->if_version == 0) {
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
			pre.if_absent = 1;
		} else {
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
			pre.if_version = m->if_version;
		}
		if (m->step == CLI_BENCH_STEP_LOCKED_UPDATE) {
			req.lock_token = m->token;
		}
		rc = datasync_v1_data_sync_update_async(r->rpc, &req, NULL,
		    cli_bench_on_update, m, &st);
		break;
	}
	case CLI_BENCH_STEP_LOCK: {
		Datasync__V1__LockRequest req = DATASYNC__V1__LOCK_REQUEST__INIT;

		req.key = (char *) key;
		req.owner = CLI_BENCH_OWNER;
		req.ttl_ms = CLI_BENCH_LOCK_TTL_MS;
		rc = datasync_v1_data_sync_lock_async(r->rpc, &req, NULL,
		    cli_bench_on_lock, m, &st);
		break;
	}
	case CLI_BENCH_STEP_UNLOCK: {
		Datasync__V1__UnlockRequest req =
		    DATASYNC__V1__UNLOCK_REQUEST__INIT;

		req.key = (char *) key;
		req.lock_token = m->token;
		rc = datasync_v1_data_sync_unlock_async(r->rpc, &req, NULL,
		    cli_bench_on_unlock, m, &st);
		break;
	}
	}
	if (rc != NRPC_OK) {
		cli_bench_count(&m->errors);
		cli_bench_note_error(r, "cannot start a call", &st);
		nrpc_status_fini(&st);
		cli_bench_machine_stop(m);
	}
}

static void cli_bench_echo_begin(cli_bench_machine *m);

/* cli_bench_begin starts the machine's next op, or stops it. */
static void
cli_bench_begin(cli_bench_machine *m)
{
	cli_bench_run *r = m->run;
	uint64_t now;

	if (atomic_load(&r->abort)) {
		cli_bench_machine_stop(m);
		return;
	}
	if (r->preloading) {
		size_t k = atomic_fetch_add(&r->preload_next, 1);

		if (k >= r->preload_end) {
			cli_bench_machine_stop(m);
			return;
		}
		m->key = k;
		m->step = CLI_BENCH_STEP_PRELOAD;
		cli_bench_issue(m);
		return;
	}
	if (r->o->mode == CLI_BENCH_MODE_ECHO) {
		cli_bench_echo_begin(m);
		return;
	}
	now = cli_bench_now_ns();
	if (now >= r->t_end_ns) {
		cli_bench_machine_stop(m);
		return;
	}
	m->op_start_ns = now;
	m->op_failed = false;
	switch (r->o->op) {
	case CLI_BENCH_OP_GET:
		m->key = (size_t) (cli_bench_rand(&m->rng) % r->n_keys);
		m->step = CLI_BENCH_STEP_GET;
		break;
	case CLI_BENCH_OP_MIXED:
		m->key = (size_t) (cli_bench_rand(&m->rng) % r->n_keys);
		if (cli_bench_rand(&m->rng) % 10 != 0) {
			m->step = CLI_BENCH_STEP_GET;
			break;
		}
		m->if_version = atomic_load_explicit(&r->versions[m->key],
		    memory_order_relaxed);
		m->step = CLI_BENCH_STEP_UPDATE;
		break;
	case CLI_BENCH_OP_UPDATE:
		m->key = (size_t) (cli_bench_rand(&m->rng) % r->n_keys);
		m->if_version = atomic_load_explicit(&r->versions[m->key],
		    memory_order_relaxed);
		m->step = CLI_BENCH_STEP_UPDATE;
		break;
	case CLI_BENCH_OP_UPDATE_HOT:
		m->key = r->hot;
		m->if_version = atomic_load(&r->versions[r->hot]);
		m->step = CLI_BENCH_STEP_UPDATE;
		break;
	case CLI_BENCH_OP_LOCK_CYCLE:
		m->key = cli_bench_lock_key(m);
		m->step = CLI_BENCH_STEP_LOCK;
		break;
	}
	cli_bench_issue(m);
}

/* --- echo client --- */

/* cli_bench_echo_size is the size of the envelope of an Update carrying
 * value_bytes of value (key, precondition, content type, request id,
 * client name and deadline included): the echo sends that many bytes
 * each way, what an Update sends and about what a Get of that value
 * receives. */
static size_t
cli_bench_echo_size(const cli_bench_run *r)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Nrpc__V1__Request env = NRPC__V1__REQUEST__INIT;

	req.key = (char *) cli_bench_key(r, 0);
	req.value.data = r->value;
	req.value.len = r->o->value_bytes;
	req.content_type = CLI_BENCH_CONTENT_TYPE;
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
	pre.if_version = 1;
	req.precondition = &pre;
	env.method = (char *) datasync_v1_data_sync_methods
	    [DATASYNC_V1_DATA_SYNC_METHOD_UPDATE].full_name;
	/* get_packed_size reads only the length of a bytes field. */
	env.body.len = datasync__v1__update_request__get_packed_size(&req);
	env.body.data = r->value;
	env.timeout_ms = 10000;
	env.request_id = "0123456789abcdef0123456789abcdef";
	env.client_name = CLI_BENCH_OWNER;
	return nrpc__v1__request__get_packed_size(&env);
}

static void
cli_bench_echo_begin(cli_bench_machine *m)
{
	cli_bench_run *r = m->run;
	nng_msg *msg;
	uint64_t now = cli_bench_now_ns();
	int rv;

	if (now >= r->t_end_ns || atomic_load(&r->abort)) {
		cli_bench_machine_stop(m);
		return;
	}
	m->op_start_ns = now;
	if ((rv = nng_msg_alloc(&msg, r->value_len)) != 0) {
		cli_bench_count(&m->errors);
		cli_bench_note_text(r, "echo", nng_strerror(rv));
		cli_bench_machine_stop(m);
		return;
	}
	memcpy(nng_msg_body(msg), r->value, r->value_len);
	nng_aio_set_msg(m->aio, msg);
	m->echo_sending = true;
	nng_ctx_send(m->ctx, m->aio);
}

static void
cli_bench_echo_cb(void *arg)
{
	cli_bench_machine *m = arg;
	cli_bench_run *r = m->run;
	int rv = nng_aio_result(m->aio);
	nng_msg *msg;
	uint64_t now;

	if (rv != 0) {
		if (m->echo_sending) {
			nng_msg_free(nng_aio_get_msg(m->aio));
			nng_aio_set_msg(m->aio, NULL);
		}
		cli_bench_count(&m->completed);
		cli_bench_count(&m->errors);
		cli_bench_note_text(r, "echo", nng_strerror(rv));
		if (rv == NNG_ECLOSED) {
			cli_bench_machine_stop(m);
			return;
		}
		cli_bench_echo_begin(m);
		return;
	}
	if (m->echo_sending) {
		m->echo_sending = false;
		nng_ctx_recv(m->ctx, m->aio);
		return;
	}
	msg = nng_aio_get_msg(m->aio);
	nng_aio_set_msg(m->aio, NULL);
	now = cli_bench_now_ns();
	cli_bench_count(&m->completed);
	if (nng_msg_len(msg) != r->value_len) {
		cli_bench_count(&m->errors);
		cli_bench_note_text(r, "echo", "reply of the wrong size");
	} else if (cli_bench_in_window(r, now)) {
		cli_bench_count(&m->ops);
		cli_bench_hist_record(m->hist, now - m->op_start_ns);
	}
	nng_msg_free(msg);
	cli_bench_echo_begin(m);
}

/* --- driving a run --- */

static void
cli_bench_run_fini(cli_bench_run *r)
{
	if (r->m != NULL) {
		for (unsigned i = 0; i < r->n_alloc; i++) {
			/* Every machine has stopped: no operation is pending. */
			if (r->m[i].aio != NULL) {
				nng_aio_free(r->m[i].aio);
			}
			ds_free(r->m[i].hist);
		}
	}
	if (r->o->mode == CLI_BENCH_MODE_ECHO && nng_socket_id(r->sock) > 0) {
		(void) nng_close(r->sock); /* ours; nothing to report */
	}
	datasync_close(r->ds);
	ds_free(r->m);
	ds_free(r->versions);
	ds_free(r->keys);
	ds_free(r->value);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mtx);
}

/* cli_bench_run_init allocates the keys, the value and the machines. */
static int
cli_bench_run_init(cli_bench_run *r, const cli_bench_opts *o)
{
	pthread_condattr_t ca;

	memset(r, 0, sizeof(*r));
	r->o = o;
	pthread_mutex_init(&r->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_flag_clear(&r->err_claimed);
	r->n_keys = o->keys;
	r->hot = o->keys;
	r->n_machines = o->concurrency;
	r->n_alloc = o->concurrency;
	if (o->mode == CLI_BENCH_MODE_SERVICE &&
	    r->n_alloc < CLI_BENCH_PRELOAD_MIN_INFLIGHT) {
		r->n_alloc = CLI_BENCH_PRELOAD_MIN_INFLIGHT;
	}
	if ((r->value = ds_alloc(o->value_bytes)) == NULL ||
	    (r->keys = ds_calloc(r->n_keys + 1, CLI_BENCH_KEY_STRIDE)) == NULL ||
	    (r->versions = ds_calloc(r->n_keys + 1,
	    sizeof(*r->versions))) == NULL ||
	    (r->m = ds_calloc(r->n_alloc, sizeof(*r->m))) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		return CLI_EXIT_ERROR;
	}
	/* Printable, so values read well in the demo page and curl. */
	for (size_t i = 0; i < o->value_bytes; i++) {
		r->value[i] = (uint8_t) ('a' + i % 26);
	}
	for (size_t i = 0; i < r->n_keys; i++) {
		(void) snprintf(r->keys + i * CLI_BENCH_KEY_STRIDE,
		    CLI_BENCH_KEY_STRIDE, "%s%06zu", o->prefix, i); /* fits */
	}
	(void) snprintf(r->keys + r->hot * CLI_BENCH_KEY_STRIDE,
	    CLI_BENCH_KEY_STRIDE, "%shot", o->prefix); /* fits */
	for (unsigned i = 0; i < r->n_alloc; i++) {
		cli_bench_machine *m = &r->m[i];

		m->run = r;
		m->id = i;
		m->rng = cli_bench_seed(i);
		if ((m->hist = ds_calloc(1, sizeof(*m->hist))) == NULL) {
			fprintf(stderr, "datasync bench: out of memory\n");
			return CLI_EXIT_ERROR;
		}
	}
	return CLI_EXIT_OK;
}

static uint64_t
cli_bench_sum(cli_bench_run *r, size_t offset)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < r->n_machines; i++) {
		s += cli_bench_read((atomic_uint_fast64_t *) ((char *) &r->m[i] +
		    offset));
	}
	return s;
}

#define CLI_BENCH_SUM(r, field) \
	cli_bench_sum((r), offsetof(cli_bench_machine, field))

/* cli_bench_drive starts n machines and waits for all of them to stop,
 * printing a progress line each second on stderr. */
static void
cli_bench_drive(cli_bench_run *r, unsigned n, const char *label)
{
	uint64_t t0 = cli_bench_now_ns();
	uint64_t last_t = t0;
	uint64_t last_done = CLI_BENCH_SUM(r, completed);
	struct timespec ts;

	pthread_mutex_lock(&r->mtx);
	r->active = n;
	pthread_mutex_unlock(&r->mtx);
	for (unsigned i = 0; i < n; i++) {
		cli_bench_begin(&r->m[i]);
	}
	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec++;
	pthread_mutex_lock(&r->mtx);
	while (r->active > 0) {
		uint64_t now;

		if (pthread_cond_timedwait(&r->cv, &r->mtx, &ts) != ETIMEDOUT) {
			continue;
		}
		ts.tv_sec++;
		pthread_mutex_unlock(&r->mtx);
		now = cli_bench_now_ns();
		{
			uint64_t done = CLI_BENCH_SUM(r, completed);
			uint64_t ops = CLI_BENCH_SUM(r, ops);
			double rate = (double) (done - last_done) * 1e9 /
			    (double) (now - last_t);
			const char *phase = label != NULL ? label :
			    now < r->t_begin_ns ? "warmup" :
			    now < r->t_end_ns ? "measure" : "draining";
			double in_win = now > r->t_begin_ns && label == NULL ?
			    (double) ((now < r->t_end_ns ? now : r->t_end_ns) -
			    r->t_begin_ns) / 1e9 : 0.0;

			fprintf(stderr, "bench: %5.1fs %-8s %10.0f ops/s", (double)
			    (now - t0) / 1e9, phase, rate);
			if (in_win > 0.0) {
				fprintf(stderr, " (%.0f ops/s so far)",
				    (double) ops / in_win);
			}
			fprintf(stderr, ", %" PRIu64 " errors, %" PRIu64
			    " conflicts\n", CLI_BENCH_SUM(r, errors),
			    CLI_BENCH_SUM(r, conflicts));
			last_done = done;
			last_t = now;
		}
		pthread_mutex_lock(&r->mtx);
	}
	pthread_mutex_unlock(&r->mtx);
}

/* cli_bench_window fixes the measured window from now. */
static void
cli_bench_window(cli_bench_run *r)
{
	uint64_t now = cli_bench_now_ns();

	r->t_begin_ns = now + (uint64_t) r->o->warmup_ms * 1000000u;
	r->t_end_ns = r->t_begin_ns + (uint64_t) r->o->duration_ms * 1000000u;
}

static void
cli_bench_collect(cli_bench_run *r, cli_bench_result *res, const char *op)
{
	memset(res, 0, sizeof(*res));
	(void) snprintf(res->op, sizeof(res->op), "%s", op); /* fits */
	res->url = r->o->url;
	res->concurrency = r->n_machines;
	res->seconds = (double) (r->t_end_ns - r->t_begin_ns) / 1e9;
	res->ops = CLI_BENCH_SUM(r, ops);
	res->errors = CLI_BENCH_SUM(r, errors);
	res->conflicts = CLI_BENCH_SUM(r, conflicts);
	res->retries = CLI_BENCH_SUM(r, retries);
	res->abandoned = CLI_BENCH_SUM(r, abandoned);
	for (unsigned i = 0; i < r->n_machines; i++) {
		cli_bench_hist_merge(&res->hist, r->m[i].hist);
	}
}

/* cli_bench_preload creates the keys the op uses (if_absent) or learns
 * the versions of those that exist. */
static int
cli_bench_preload(cli_bench_run *r)
{
	const cli_bench_opts *o = r->o;
	size_t begin = o->op == CLI_BENCH_OP_UPDATE_HOT ? r->hot : 0;
	size_t end = o->op == CLI_BENCH_OP_UPDATE_HOT ? r->hot + 1 : r->n_keys;
	uint64_t t0 = cli_bench_now_ns();

	/* Every allocated machine, at least a few dozen: 100,000 keys load
	 * in seconds even for a run at --concurrency 1. */
	r->preloading = true;
	atomic_store(&r->preload_next, begin);
	r->preload_end = end;
	cli_bench_drive(r, r->n_alloc, "preload");
	r->preloading = false;
	if (atomic_load(&r->abort)) {
		fprintf(stderr, "datasync bench: preload failed: %s\n",
		    r->first_err);
		return CLI_EXIT_ERROR;
	}
	fprintf(stderr, "bench: preloaded %zu keys in %.2f s\n", end - begin,
	    (double) (cli_bench_now_ns() - t0) / 1e9);
	/* Preload calls are not benchmark ops. */
	for (unsigned i = 0; i < r->n_alloc; i++) {
		atomic_store(&r->m[i].completed, 0);
		atomic_store(&r->m[i].succeeded, 0);
		atomic_store(&r->m[i].errors, 0);
	}
	return CLI_EXIT_OK;
}

/* cli_bench_check_hot verifies no increment was lost: the hot key's
 * version moved by exactly the successful updates (plus, at most, those
 * whose outcome is unknown). */
static int
cli_bench_check_hot(cli_bench_run *r, uint64_t start, bool json)
{
	Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *resp = NULL;
	nrpc_status st = {0};
	uint64_t ok = CLI_BENCH_SUM(r, succeeded);
	uint64_t unknown = CLI_BENCH_SUM(r, unknown);
	uint64_t final;
	FILE *out = json ? stderr : stdout;
	int rc = CLI_EXIT_OK;

	req.key = (char *) cli_bench_key(r, r->hot);
	if (datasync_v1_data_sync_get(r->rpc, &req, &resp, NULL, &st) !=
	    NRPC_OK) {
		fprintf(stderr, "datasync bench: cannot read %s to check the "
		    "increments: %s: %s\n", req.key, st.reason, st.message);
		nrpc_status_fini(&st);
		return CLI_EXIT_ERROR;
	}
	final = resp->record != NULL ? resp->record->version : 0;
	datasync__v1__get_response__free_unpacked(resp, NULL);
	if (final < start + ok) {
		fprintf(stderr, "datasync bench: LOST INCREMENTS on %s: start "
		    "version %" PRIu64 " + %" PRIu64 " successful increments = %"
		    PRIu64 ", but the version is %" PRIu64 "\n", req.key, start, ok,
		    start + ok, final);
		rc = CLI_EXIT_ERROR;
	} else if (final > start + ok + unknown) {
		fprintf(stderr, "datasync bench: EXTRA INCREMENTS on %s: start "
		    "version %" PRIu64 " + %" PRIu64 " successful (+ %" PRIu64
		    " unknown) increments, but the version is %" PRIu64 "\n",
		    req.key, start, ok, unknown, final);
		rc = CLI_EXIT_ERROR;
	} else {
		fprintf(out, "update-hot: %s went from version %" PRIu64 " to %"
		    PRIu64 ": %" PRIu64 " successful increments%s, none lost\n",
		    req.key, start, final, ok, unknown > 0 ?
		    " (+ some of unknown outcome)" : "");
	}
	return rc;
}

static int
cli_bench_service(const cli_bench_opts *o)
{
	cli_bench_run r;
	cli_bench_result *res = NULL;
	nrpc_status st = {0};
	const char *urls[1] = {o->url};
	uint64_t hot_start = 0;
	int rc;

	if ((rc = cli_bench_run_init(&r, o)) != CLI_EXIT_OK) {
		goto out;
	}
	if (datasync_connect(urls, 1, o->timeout_ms, CLI_BENCH_OWNER, &r.ds,
	    &st) != NRPC_OK) {
		fprintf(stderr, "datasync bench: cannot connect to %s: %s\n",
		    o->url, st.message);
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	r.rpc = datasync_rpc(r.ds);
	if (o->preload || o->preload_only) {
		if ((rc = cli_bench_preload(&r)) != CLI_EXIT_OK) {
			goto out;
		}
		if (o->preload_only) {
			goto out;
		}
	}
	hot_start = atomic_load(&r.versions[r.hot]);
	cli_bench_window(&r);
	cli_bench_drive(&r, r.n_machines, NULL);
	if ((res = ds_calloc(1, sizeof(*res))) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	cli_bench_collect(&r, res, cli_bench_op_names[o->op]);
	if (r.first_err[0] != '\0') {
		fprintf(stderr, "bench: first error: %s\n", r.first_err);
	}
	rc = cli_bench_report(o, res);
	if (o->op == CLI_BENCH_OP_UPDATE_HOT && o->preload &&
	    cli_bench_check_hot(&r, hot_start, o->json) != CLI_EXIT_OK) {
		rc = CLI_EXIT_ERROR;
	}
out:
	ds_free(res);
	nrpc_status_fini(&st);
	cli_bench_run_fini(&r);
	return rc;
}

static int
cli_bench_echo(const cli_bench_opts *o)
{
	cli_bench_run r;
	cli_bench_result *res = NULL;
	size_t len;
	uint8_t *msg;
	int rv;
	int rc;

	if ((rc = cli_bench_run_init(&r, o)) != CLI_EXIT_OK) {
		goto out;
	}
	len = cli_bench_echo_size(&r);
	if ((msg = ds_alloc(len)) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		msg[i] = (uint8_t) ('a' + i % 26);
	}
	ds_free(r.value);
	r.value = msg;
	r.value_len = len;
	rc = CLI_EXIT_ERROR;
	if ((rv = nng_req0_open(&r.sock)) != 0 ||
	    (rv = nng_socket_set_size(r.sock, NNG_OPT_RECVMAXSZ,
	    len + 1024)) != 0) {
		fprintf(stderr, "datasync bench: cannot open a REQ socket: %s\n",
		    nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_dial(r.sock, o->url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		fprintf(stderr, "datasync bench: cannot dial %s: %s\n", o->url,
		    nng_strerror(rv));
		goto out;
	}
	for (unsigned i = 0; i < r.n_machines; i++) {
		cli_bench_machine *m = &r.m[i];

		if ((rv = nng_aio_alloc(&m->aio, cli_bench_echo_cb, m)) != 0 ||
		    (rv = nng_ctx_open(&m->ctx, r.sock)) != 0) {
			fprintf(stderr, "datasync bench: cannot set up request %u: "
			    "%s\n", i, nng_strerror(rv));
			goto out;
		}
		nng_aio_set_timeout(m->aio, (nng_duration) o->timeout_ms);
	}
	if (!o->json) {
		fprintf(stderr, "bench: echo of %zu-byte messages (an Update "
		    "envelope with a %zu-byte value)\n", len, o->value_bytes);
	}
	cli_bench_window(&r);
	cli_bench_drive(&r, r.n_machines, NULL);
	if ((res = ds_calloc(1, sizeof(*res))) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		goto out;
	}
	cli_bench_collect(&r, res, "echo");
	if (r.first_err[0] != '\0') {
		fprintf(stderr, "bench: first error: %s\n", r.first_err);
	}
	rc = cli_bench_report(o, res);
out:
	ds_free(res);
	cli_bench_run_fini(&r);
	return rc;
}

/* --- servers for the baselines --- */

/* cli_bench_block_signals blocks SIGINT and SIGTERM. Call it before nng
 * creates threads, so that they inherit the mask and main alone receives
 * the signal in cli_bench_wait_signal. */
static void
cli_bench_block_signals(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
}

static void
cli_bench_wait_signal(const sigset_t *sigs)
{
	int sig;

	do {
		if (sigwait(sigs, &sig) != 0) {
			sig = SIGTERM;
		}
	} while (sig != SIGINT && sig != SIGTERM);
}

typedef struct cli_bench_echo_srv {
	nng_ctx ctx;
	nng_aio *aio; /* owned */
	bool sending;
} cli_bench_echo_srv;

static void
cli_bench_echo_srv_cb(void *arg)
{
	cli_bench_echo_srv *e = arg;
	int rv = nng_aio_result(e->aio);

	if (e->sending) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(e->aio));
			nng_aio_set_msg(e->aio, NULL);
		}
		e->sending = false;
		if (rv == NNG_ECLOSED) {
			return;
		}
		nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED) {
			nng_ctx_recv(e->ctx, e->aio);
		}
		return;
	}
	/* The request message goes back as the reply, untouched. */
	e->sending = true;
	nng_ctx_send(e->ctx, e->aio);
}

static int
cli_bench_echo_server(const cli_bench_opts *o)
{
	cli_bench_echo_srv *e;
	nng_socket sock;
	sigset_t sigs;
	int rv;
	int rc = CLI_EXIT_ERROR;
	unsigned n = 0;

	cli_bench_block_signals(&sigs);
	signal(SIGPIPE, SIG_IGN);
	if ((e = ds_calloc(o->contexts, sizeof(*e))) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		return CLI_EXIT_ERROR;
	}
	if ((rv = nng_rep0_open(&sock)) != 0) {
		fprintf(stderr, "datasync bench: cannot open a REP socket: %s\n",
		    nng_strerror(rv));
		ds_free(e);
		return CLI_EXIT_ERROR;
	}
	if ((rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ,
	    (size_t) CLI_BENCH_VALUE_BYTES_MAX + 65536)) != 0 ||
	    (rv = nng_listen(sock, o->listen, NULL, 0)) != 0) {
		fprintf(stderr, "datasync bench: cannot listen on %s: %s\n",
		    o->listen, nng_strerror(rv));
		goto out;
	}
	for (n = 0; n < o->contexts; n++) {
		if ((rv = nng_aio_alloc(&e[n].aio, cli_bench_echo_srv_cb,
		    &e[n])) != 0) {
			break;
		}
		if ((rv = nng_ctx_open(&e[n].ctx, sock)) != 0) {
			nng_aio_free(e[n].aio);
			break;
		}
	}
	if (n < o->contexts) {
		fprintf(stderr, "datasync bench: cannot set up context %u: %s\n",
		    n, nng_strerror(rv));
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		nng_ctx_recv(e[i].ctx, e[i].aio);
	}
	printf("datasync bench: echo server on %s (%u contexts)\n", o->listen,
	    n);
	fflush(stdout);
	cli_bench_wait_signal(&sigs);
	rc = CLI_EXIT_OK;
out:
	(void) nng_close(sock); /* pending operations end with ECLOSED */
	for (unsigned i = 0; i < n; i++) {
		nng_aio_free(e[i].aio); /* waits for its callback */
	}
	ds_free(e);
	return rc;
}

/* cli_bench_http_answer: libmicrohttpd's bare handler, the same fixed
 * body for every method and path, queued on the first call. */
static enum MHD_Result
cli_bench_http_answer(void *cls, struct MHD_Connection *conn,
    const char *url, const char *method, const char *version,
    const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	static int started;

	(void) url;
	(void) method;
	(void) version;
	(void) upload_data;
	if (*con_cls == NULL) {
		*con_cls = &started; /* answer on the next call: keep-alive */
		return MHD_YES;
	}
	*upload_data_size = 0;
	return MHD_queue_response(conn, MHD_HTTP_OK, cls);
}

static int
cli_bench_http_static(const cli_bench_opts *o)
{
	char body[CLI_BENCH_STATIC_BYTES], host[260];
	const char *colon = strrchr(o->listen, ':');
	struct addrinfo hints, *ai = NULL;
	struct MHD_Response *res = NULL;
	struct MHD_Daemon *mhd = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	sigset_t sigs;
	size_t hl;
	int rc = CLI_EXIT_ERROR;

	cli_bench_block_signals(&sigs);
	signal(SIGPIPE, SIG_IGN);
	memset(body, 'x', sizeof(body));
	body[sizeof(body) - 1] = '\n';
	if (colon == NULL || strlen(o->listen) > 256) {
		return cli_usage_error("--http-static wants HOST:PORT, got '%s'",
		    o->listen);
	}
	hl = (size_t) (colon - o->listen);
	memcpy(host, o->listen, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host[0] != '\0' ? host : NULL, colon + 1, &hints,
	        &ai) != 0) {
		return cli_usage_error("--http-static wants HOST:PORT, got '%s'",
		    o->listen);
	}
	if ((res = MHD_create_response_from_buffer(
	         sizeof(body), body, MHD_RESPMEM_MUST_COPY)) == NULL ||
	    MHD_add_response_header(res, "Content-Type", "text/plain") !=
	        MHD_YES) {
		fprintf(stderr, "datasync bench: out of memory\n");
		goto out;
	}
	/* The gateway's own setup: epoll, one thread per CPU. */
	mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                           (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	    0, NULL, NULL, cli_bench_http_answer, res, MHD_OPTION_SOCK_ADDR,
	    ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned) (ncpu < 1 ? 1 : ncpu > 64 ? 64 : ncpu),
	    MHD_OPTION_CONNECTION_LIMIT, 1024u,
	    MHD_OPTION_END);
	if (mhd == NULL) {
		fprintf(stderr, "datasync bench: cannot listen on %s: %s\n",
		    o->listen, strerror(errno));
		goto out;
	}
	printf("datasync bench: static HTTP (%d bytes, libmicrohttpd) on "
	       "http://%s\n",
	    CLI_BENCH_STATIC_BYTES, o->listen);
	fflush(stdout);
	cli_bench_wait_signal(&sigs);
	MHD_stop_daemon(mhd);
	rc = CLI_EXIT_OK;
out:
	if (res != NULL) {
		MHD_destroy_response(res);
	}
	freeaddrinfo(ai);
	return rc;
}

/* --- SQLite baselines --- */

/* The same per-connection settings as the store (store_sqlite.c), so the
 * baseline is what this SQLite can do with them. */
static const char cli_bench_sqlite_pragmas[] =
    "PRAGMA cache_size = -8192;"
    "PRAGMA temp_store = MEMORY;"
    "PRAGMA wal_autocheckpoint = 2000;"
    "PRAGMA journal_size_limit = 67108864;"
    "CREATE TABLE IF NOT EXISTS bench_records ("
    " key BLOB NOT NULL PRIMARY KEY,"
    " version INTEGER NOT NULL,"
    " value BLOB) WITHOUT ROWID;";

static int
cli_bench_sqlite_fail(sqlite3 *db, const char *what)
{
	fprintf(stderr, "datasync bench: sqlite: %s: %s\n", what,
	    db != NULL ? sqlite3_errmsg(db) : "out of memory");
	return CLI_EXIT_ERROR;
}

static int
cli_bench_sqlite_open(const cli_bench_opts *o, sqlite3 **out)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	char *msg = NULL;
	int rc;

	if (sqlite3_open_v2(o->db, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		rc = cli_bench_sqlite_fail(db, o->db);
		goto fail;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s,
	    NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW ||
	    sqlite3_stricmp((const char *) sqlite3_column_text(s, 0),
	    "wal") != 0) {
		rc = cli_bench_sqlite_fail(db, "cannot switch to WAL");
		goto fail;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_exec(db, o->durability_full ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL", NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(db, cli_bench_sqlite_pragmas, NULL, NULL, &msg) !=
	    SQLITE_OK) {
		fprintf(stderr, "datasync bench: sqlite: %s\n",
		    msg != NULL ? msg : "pragmas failed");
		sqlite3_free(msg);
		rc = CLI_EXIT_ERROR;
		goto fail;
	}
	*out = db;
	return CLI_EXIT_OK;
fail:
	sqlite3_finalize(s);
	(void) sqlite3_close(db); /* nothing else is open on it */
	return rc;
}

/* cli_bench_sqlite_preload inserts the keys that do not exist and reads
 * every key's version into versions[]. */
static int
cli_bench_sqlite_preload(sqlite3 *db, cli_bench_run *r)
{
	sqlite3_stmt *ins = NULL;
	sqlite3_stmt *sel = NULL;
	int rc = CLI_EXIT_ERROR;

	if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO bench_records "
	    "(key, version, value) VALUES (?1, 1, ?2)", -1, &ins, NULL) !=
	    SQLITE_OK || sqlite3_prepare_v2(db, "SELECT version FROM "
	    "bench_records WHERE key = ?1", -1, &sel, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		rc = cli_bench_sqlite_fail(db, "preload");
		goto out;
	}
	for (size_t i = 0; i < r->n_keys; i++) {
		const char *k = cli_bench_key(r, i);

		sqlite3_bind_blob(ins, 1, k, (int) strlen(k), SQLITE_STATIC);
		sqlite3_bind_blob(ins, 2, r->value, (int) r->o->value_bytes,
		    SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			rc = cli_bench_sqlite_fail(db, "preload insert");
			(void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			goto out;
		}
		sqlite3_reset(ins);
		sqlite3_bind_blob(sel, 1, k, (int) strlen(k), SQLITE_STATIC);
		if (sqlite3_step(sel) != SQLITE_ROW) {
			rc = cli_bench_sqlite_fail(db, "preload select");
			(void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			goto out;
		}
		atomic_store(&r->versions[i],
		    (uint64_t) sqlite3_column_int64(sel, 0));
		sqlite3_reset(sel);
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = cli_bench_sqlite_fail(db, "preload commit");
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(sel);
	return rc;
}

/* cli_bench_sqlite_progress prints the progress line once a second. */
static void
cli_bench_sqlite_progress(const cli_bench_run *r, uint64_t now,
    uint64_t *next, uint64_t *last_t, uint64_t done, uint64_t *last_done)
{
	if (now < *next) {
		return;
	}
	fprintf(stderr, "bench: %-8s %10.0f ops/s\n",
	    now < r->t_begin_ns ? "warmup" : "measure",
	    (double) (done - *last_done) * 1e9 / (double) (now - *last_t));
	*last_done = done;
	*last_t = now;
	*next = now + 1000000000u;
}

static int
cli_bench_sqlite(const cli_bench_opts *o)
{
	cli_bench_run r;
	cli_bench_machine *m;
	cli_bench_result *res = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	bool read = o->mode == CLI_BENCH_MODE_SQLITE_READ;
	uint64_t done = 0;
	uint64_t last_done = 0;
	uint64_t next;
	uint64_t last_t;
	int rc;

	if ((rc = cli_bench_run_init(&r, o)) != CLI_EXIT_OK) {
		goto out;
	}
	m = &r.m[0];
	if ((rc = cli_bench_sqlite_open(o, &db)) != CLI_EXIT_OK ||
	    (rc = cli_bench_sqlite_preload(db, &r)) != CLI_EXIT_OK) {
		goto out;
	}
	rc = CLI_EXIT_ERROR;
	if (sqlite3_prepare_v2(db, read ?
	    "SELECT value, version FROM bench_records WHERE key = ?1" :
	    "UPDATE bench_records SET value = ?1, version = version + 1 "
	    "WHERE key = ?2 AND version = ?3", -1, &s, NULL) != SQLITE_OK) {
		rc = cli_bench_sqlite_fail(db, "prepare");
		goto out;
	}
	cli_bench_window(&r);
	last_t = cli_bench_now_ns();
	next = last_t + 1000000000u;
	for (;;) {
		uint64_t t0 = cli_bench_now_ns();
		uint64_t t1;
		unsigned n = read ? 1 : o->batch;

		if (t0 >= r.t_end_ns) {
			break;
		}
		if (!read && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
		    NULL) != SQLITE_OK) {
			rc = cli_bench_sqlite_fail(db, "BEGIN");
			goto out;
		}
		for (unsigned i = 0; i < n; i++) {
			size_t k = (size_t) (cli_bench_rand(&m->rng) % r.n_keys);
			const char *key = cli_bench_key(&r, k);
			int step;

			if (read) {
				sqlite3_bind_blob(s, 1, key, (int) strlen(key),
				    SQLITE_STATIC);
				step = sqlite3_step(s);
				if (step == SQLITE_ROW) {
					/* Read what a Get would copy out. */
					(void) sqlite3_column_blob(s, 0);
					(void) sqlite3_column_bytes(s, 0);
					(void) sqlite3_column_int64(s, 1);
				} else {
					cli_bench_count(&m->errors);
				}
			} else {
				uint64_t v = atomic_load(&r.versions[k]);

				sqlite3_bind_blob(s, 1, r.value, (int) o->value_bytes,
				    SQLITE_STATIC);
				sqlite3_bind_blob(s, 2, key, (int) strlen(key),
				    SQLITE_STATIC);
				sqlite3_bind_int64(s, 3, (sqlite3_int64) v);
				step = sqlite3_step(s);
				if (step != SQLITE_DONE) {
					cli_bench_count(&m->errors);
				} else if (sqlite3_changes(db) == 1) {
					atomic_store(&r.versions[k], v + 1);
				} else {
					cli_bench_count(&m->conflicts);
				}
			}
			sqlite3_reset(s);
		}
		if (!read && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) !=
		    SQLITE_OK) {
			rc = cli_bench_sqlite_fail(db, "COMMIT");
			goto out;
		}
		t1 = cli_bench_now_ns();
		done += n;
		if (cli_bench_in_window(&r, t1)) {
			/* Each write of a batch waits for the whole commit. */
			for (unsigned i = 0; i < n; i++) {
				cli_bench_hist_record(m->hist, t1 - t0);
			}
			atomic_fetch_add(&m->ops, n);
		}
		cli_bench_sqlite_progress(&r, t1, &next, &last_t, done,
		    &last_done);
	}
	if ((res = ds_calloc(1, sizeof(*res))) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		goto out;
	}
	r.n_machines = 1;
	cli_bench_collect(&r, res, read ? "sqlite-read" : "sqlite-update");
	res->url = o->db;
	rc = cli_bench_report(o, res);
out:
	ds_free(res);
	sqlite3_finalize(s);
	(void) sqlite3_close(db); /* statements are finalized */
	cli_bench_run_fini(&r);
	return rc;
}

/* --- flags --- */

static int
cli_bench_parse_count(const char *flag, const char *s, uint64_t min,
    uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (cli_parse_u64(s, &v) != 0 || v < min || v > max) {
		return cli_usage_error("%s wants a number in %" PRIu64 "..%" PRIu64
		    ", got '%s'", flag, min, max, s);
	}
	*out = v;
	return CLI_EXIT_OK;
}

static int
cli_bench_parse_duration(const char *flag, const char *s, int64_t min,
    int64_t *out)
{
	int64_t v;

	if (cli_parse_duration_ms(s, &v) != 0 || v < min ||
	    v > CLI_BENCH_DURATION_MAX_MS) {
		return cli_usage_error("%s wants a duration like 500ms or 10s%s, "
		    "got '%s'", flag, min > 0 ? " (more than 0)" : "", s);
	}
	*out = v;
	return CLI_EXIT_OK;
}

/* cli_bench_set_mode records a mode flag; only one may be given. */
static int
cli_bench_set_mode(cli_bench_opts *o, bool *set, cli_bench_mode mode)
{
	if (*set && o->mode != mode) {
		return cli_usage_error("give one of --baseline, --echo-server "
		                       "and --http-static");
	}
	*set = true;
	o->mode = mode;
	return CLI_EXIT_OK;
}

static int
cli_bench_parse(int argc, char **argv, cli_bench_opts *o, bool *help)
{
	enum { O_URL = 1, O_OP, O_CONC, O_DURATION, O_WARMUP, O_KEYS,
		O_VALUE_BYTES, O_JSON, O_BASELINE, O_ECHO_SERVER, O_HTTP_STATIC,
		O_DB, O_DURABILITY, O_BATCH, O_CONTEXTS, O_TIMEOUT, O_PREFIX,
		O_NO_PRELOAD, O_PRELOAD_ONLY, O_HELP };
	static const struct option longopts[] = {
	    {"url", required_argument, NULL, O_URL},
	    {"op", required_argument, NULL, O_OP},
	    {"concurrency", required_argument, NULL, O_CONC},
	    {"duration", required_argument, NULL, O_DURATION},
	    {"warmup", required_argument, NULL, O_WARMUP},
	    {"keys", required_argument, NULL, O_KEYS},
	    {"value-bytes", required_argument, NULL, O_VALUE_BYTES},
	    {"json", no_argument, NULL, O_JSON},
	    {"baseline", required_argument, NULL, O_BASELINE},
	    {"echo-server", required_argument, NULL, O_ECHO_SERVER},
	    {"http-static", required_argument, NULL, O_HTTP_STATIC},
	    {"db", required_argument, NULL, O_DB},
	    {"durability", required_argument, NULL, O_DURABILITY},
	    {"batch", required_argument, NULL, O_BATCH},
	    {"contexts", required_argument, NULL, O_CONTEXTS},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"key-prefix", required_argument, NULL, O_PREFIX},
	    {"no-preload", no_argument, NULL, O_NO_PRELOAD},
	    {"preload-only", no_argument, NULL, O_PRELOAD_ONLY},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	bool mode_set = false;
	bool sqlite_flag = false;
	bool op_set = false;
	uint64_t v = 0;
	int c;
	int rc;

	memset(o, 0, sizeof(*o));
	o->url = DATASYNC_DEFAULT_URL;
	o->durability_full = true;
	o->batch = 1;
	o->concurrency = 8;
	o->contexts = CLI_BENCH_CONTEXTS_DEFAULT;
	o->duration_ms = 10000;
	o->warmup_ms = 1000;
	o->timeout_ms = 10000;
	o->keys = 1000;
	o->value_bytes = 100;
	o->prefix = "bench-";
	o->preload = true;
	*help = false;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		rc = CLI_EXIT_OK;
		switch (c) {
		case O_URL:
			o->url = optarg;
			break;
		case O_OP:
			op_set = true;
			for (v = 0; v < sizeof(cli_bench_op_names) /
			    sizeof(cli_bench_op_names[0]); v++) {
				if (strcmp(optarg, cli_bench_op_names[v]) == 0) {
					break;
				}
			}
			if (v == sizeof(cli_bench_op_names) /
			    sizeof(cli_bench_op_names[0])) {
				return cli_usage_error("--op wants get, update, "
				    "update-hot, lock-cycle or mixed, got '%s'", optarg);
			}
			o->op = (cli_bench_op) v;
			break;
		case O_CONC:
			rc = cli_bench_parse_count("--concurrency", optarg, 1,
			    CLI_BENCH_CONCURRENCY_MAX, &v);
			o->concurrency = (unsigned) v;
			break;
		case O_DURATION:
			rc = cli_bench_parse_duration("--duration", optarg, 1,
			    &o->duration_ms);
			break;
		case O_WARMUP:
			rc = cli_bench_parse_duration("--warmup", optarg, 0,
			    &o->warmup_ms);
			break;
		case O_TIMEOUT:
			rc = cli_bench_parse_duration("--timeout", optarg, 1,
			    &o->timeout_ms);
			if (rc == CLI_EXIT_OK && o->timeout_ms > INT32_MAX) {
				rc = cli_usage_error("--timeout is too long");
			}
			break;
		case O_KEYS:
			rc = cli_bench_parse_count("--keys", optarg, 1,
			    CLI_BENCH_KEYS_MAX, &v);
			o->keys = (size_t) v;
			break;
		case O_VALUE_BYTES:
			rc = cli_bench_parse_count("--value-bytes", optarg, 0,
			    CLI_BENCH_VALUE_BYTES_MAX, &v);
			o->value_bytes = (size_t) v;
			break;
		case O_PREFIX:
			if (strlen(optarg) > CLI_BENCH_PREFIX_MAX) {
				return cli_usage_error("--key-prefix is longer than %d "
				    "bytes", CLI_BENCH_PREFIX_MAX);
			}
			o->prefix = optarg;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_NO_PRELOAD:
			o->preload = false;
			break;
		case O_PRELOAD_ONLY:
			o->preload_only = true;
			break;
		case O_BASELINE:
			if (strcmp(optarg, "echo") == 0) {
				rc = cli_bench_set_mode(o, &mode_set,
				    CLI_BENCH_MODE_ECHO);
			} else if (strcmp(optarg, "sqlite") == 0) {
				rc = cli_bench_set_mode(o, &mode_set,
				    CLI_BENCH_MODE_SQLITE);
			} else if (strcmp(optarg, "sqlite-read") == 0) {
				rc = cli_bench_set_mode(o, &mode_set,
				    CLI_BENCH_MODE_SQLITE_READ);
			} else {
				return cli_usage_error("--baseline wants echo, sqlite "
				    "or sqlite-read, got '%s'", optarg);
			}
			break;
		case O_ECHO_SERVER:
			rc = cli_bench_set_mode(o, &mode_set,
			    CLI_BENCH_MODE_ECHO_SERVER);
			o->listen = optarg;
			break;
		case O_HTTP_STATIC:
			rc = cli_bench_set_mode(o, &mode_set,
			    CLI_BENCH_MODE_HTTP_STATIC);
			o->listen = optarg;
			break;
		case O_DB:
			o->db = optarg;
			break;
		case O_DURABILITY:
			sqlite_flag = true;
			if (strcmp(optarg, "full") == 0) {
				o->durability_full = true;
			} else if (strcmp(optarg, "normal") == 0) {
				o->durability_full = false;
			} else {
				return cli_usage_error("--durability wants full or "
				    "normal, got '%s'", optarg);
			}
			break;
		case O_BATCH:
			sqlite_flag = true;
			rc = cli_bench_parse_count("--batch", optarg, 1,
			    CLI_BENCH_BATCH_MAX, &v);
			o->batch = (unsigned) v;
			break;
		case O_CONTEXTS:
			rc = cli_bench_parse_count("--contexts", optarg, 1,
			    CLI_BENCH_CONTEXTS_MAX, &v);
			o->contexts = (unsigned) v;
			break;
		case O_HELP:
		case 'h':
			*help = true;
			break;
		default:
			return cli_usage_error("bench: unknown or incomplete option "
			    "'%s'", argv[optind - 1]);
		}
		if (rc != CLI_EXIT_OK) {
			return rc;
		}
	}
	if (*help) {
		return CLI_EXIT_OK;
	}
	if (optind < argc) {
		return cli_usage_error("bench: unexpected argument '%s'",
		    argv[optind]);
	}
	if ((o->mode == CLI_BENCH_MODE_SQLITE ||
	    o->mode == CLI_BENCH_MODE_SQLITE_READ) && o->db == NULL) {
		return cli_usage_error("--baseline sqlite and sqlite-read need "
		                       "--db PATH");
	}
	if (o->db != NULL && o->mode != CLI_BENCH_MODE_SQLITE &&
	    o->mode != CLI_BENCH_MODE_SQLITE_READ) {
		return cli_usage_error("--db goes with --baseline sqlite or "
		                       "sqlite-read");
	}
	if (sqlite_flag && o->mode != CLI_BENCH_MODE_SQLITE) {
		return cli_usage_error("--durability and --batch go with "
		                       "--baseline sqlite");
	}
	if (op_set && o->mode != CLI_BENCH_MODE_SERVICE) {
		return cli_usage_error("--op measures the service; it does not "
		                       "go with --baseline or a server mode");
	}
	if (o->preload_only && o->mode != CLI_BENCH_MODE_SERVICE) {
		return cli_usage_error("--preload-only goes with the service ops");
	}
	if (o->mode == CLI_BENCH_MODE_SQLITE_READ ||
	    o->mode == CLI_BENCH_MODE_SQLITE) {
		/* One connection, one statement at a time. */
		o->concurrency = 1;
	}
	return CLI_EXIT_OK;
}

int
cli_bench_main(int argc, char **argv)
{
	cli_bench_opts o;
	bool help;
	int rc;

	/* argv[1] is "bench": parse from there, as a command of its own. */
	if ((rc = cli_bench_parse(argc - 1, argv + 1, &o, &help)) !=
	    CLI_EXIT_OK) {
		return rc;
	}
	if (help) {
		fputs(cli_bench_usage, stdout);
		return CLI_EXIT_OK;
	}
	switch (o.mode) {
	case CLI_BENCH_MODE_SERVICE:
		return cli_bench_service(&o);
	case CLI_BENCH_MODE_ECHO:
		return cli_bench_echo(&o);
	case CLI_BENCH_MODE_SQLITE:
	case CLI_BENCH_MODE_SQLITE_READ:
		return cli_bench_sqlite(&o);
	case CLI_BENCH_MODE_ECHO_SERVER:
		return cli_bench_echo_server(&o);
	case CLI_BENCH_MODE_HTTP_STATIC:
		return cli_bench_http_static(&o);
	}
	return CLI_EXIT_USAGE;
}

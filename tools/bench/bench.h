/*
 * bench.h - private to `datasync-bench` (tools/bench): options, the
 * histogram, the run state the machines share, and the functions the
 * files of the tool call across each other.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>

#include <nng/nng.h>

#include "datasync.h"
#include "nrpc/v1/rpc.pb-c.h"

enum {
	BENCH_EXIT_OK = 0,
	BENCH_EXIT_ERROR = 1,
	BENCH_EXIT_USAGE = 2,
};

/* --- limits --- */

/* In-flight requests: each machine holds a 16 KiB histogram (only the
 * touched pages become resident), so 4096 bounds memory; nrpc's server
 * has 256 contexts by default and more in flight only queue. */
#define BENCH_CONCURRENCY_MAX 4096
/* Keys: 10 million keys of "bench-%06u" fit comfortably in memory. */
#define BENCH_KEYS_MAX 10000000u
/* Values: the server's default max_value_bytes; beyond it every write
 * fails, which measures nothing. */
#define BENCH_VALUE_BYTES_MAX (1024u * 1024u)
#define BENCH_PREFIX_MAX 64
/* Key stride: prefix, up to 10 digits or "hot", NUL. */
#define BENCH_KEY_STRIDE (BENCH_PREFIX_MAX + 16)
#define BENCH_BATCH_MAX 100000
#define BENCH_CONTEXTS_DEFAULT 256
#define BENCH_CONTEXTS_MAX 65536
#define BENCH_DURATION_MAX_MS (24 * 3600 * 1000LL)
/* Preload: at least this many in flight, so 100,000 keys load in
 * seconds even with --concurrency 1. */
#define BENCH_PRELOAD_MIN_INFLIGHT 64
/* Lease of a lock cycle: short, so a cycle cut short by a killed bench
 * blocks its key only briefly. */
#define BENCH_LOCK_TTL_MS 10000
#define BENCH_OWNER "datasync-bench"
#define BENCH_CONTENT_TYPE "application/octet-stream"
/* The bare HTTP handler's body: about a small record's JSON. */
#define BENCH_STATIC_BYTES 200

/* --- options --- */

typedef enum bench_mode {
	BENCH_MODE_SERVICE = 0, /* datasync ops against --url */
	BENCH_MODE_ECHO,        /* --baseline echo */
	BENCH_MODE_SQLITE,      /* --baseline sqlite */
	BENCH_MODE_SQLITE_READ, /* --baseline sqlite-read */
	BENCH_MODE_ECHO_SERVER, /* --echo-server URL */
	BENCH_MODE_HTTP_STATIC, /* --http-static HOST:PORT */
} bench_mode;

typedef enum bench_op {
	BENCH_OP_GET = 0,
	BENCH_OP_UPDATE,
	BENCH_OP_UPDATE_HOT,
	BENCH_OP_LOCK_CYCLE,
	BENCH_OP_MIXED,
} bench_op;

typedef struct bench_opts {
	bench_mode mode;
	bench_op op;
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
	const char *token;       /* --token or $DATASYNC_TOKEN; NULL = none */
	const char *tls_ca;      /* --tls-ca or $DATASYNC_TLS_CA */
} bench_opts;

#define BENCH_N_OPS 5
_Static_assert(BENCH_OP_MIXED + 1 == BENCH_N_OPS, "one name per op");
/* bench_op_names: --op names, by bench_op (bench_main.c). */
extern const char *const bench_op_names[BENCH_N_OPS];

/* --- histogram and results (bench_hist.c) --- */

/* Log-linear layout: values below 128 ns have a bucket each; above, each
 * power of two [2^k, 2^(k+1)) is split into 64 equal sub-buckets. Values
 * above ~68 s are clamped. */
#define BENCH_HIST_LINEAR 128
#define BENCH_HIST_SUB 64
#define BENCH_HIST_MAX_NS ((UINT64_C(1) << 36) - 1)
#define BENCH_HIST_BUCKETS 2048

typedef struct bench_hist {
	uint64_t counts[BENCH_HIST_BUCKETS];
	uint64_t n;
	uint64_t max_ns;
	uint64_t sum_ns; /* for the mean */
} bench_hist;

typedef struct bench_result {
	char op[32];          /* "get", "echo", "sqlite-update", ... */
	const char *url;      /* borrowed: URL or database path */
	unsigned concurrency;
	double seconds;       /* length of the measured window */
	uint64_t ops;         /* completed inside the window */
	uint64_t errors;      /* whole run */
	uint64_t conflicts;   /* inside the window */
	uint64_t retries;     /* inside the window */
	uint64_t abandoned;   /* retries cut off by the end of the run */
	bench_hist hist;  /* latency of the ops in the window */
	/* update-hot: the hot key's version before and after the run, the
	 * increments acknowledged (whole run) and those of unknown outcome
	 * (a timeout, a lost connection); hot_checked once it was read. */
	bool hot_checked;
	uint64_t hot_start;
	uint64_t hot_final;
	uint64_t hot_acked;
	uint64_t hot_unknown;
} bench_result;

/* --- run state shared by the machines (bench_rpc.c) --- */

typedef struct bench_run bench_run;

typedef enum bench_step {
	BENCH_STEP_PRELOAD = 0,  /* Update if_absent */
	BENCH_STEP_GET,
	BENCH_STEP_UPDATE,       /* update, update-hot, mixed */
	BENCH_STEP_LOCK,
	BENCH_STEP_LOCKED_UPDATE,
	BENCH_STEP_UNLOCK,
} bench_step;

/* bench_machine: one request in flight. Its fields are used by one
 * callback at a time (the completion of its previous call starts the
 * next), so they need no lock; the counters are atomics only because the
 * progress line reads them while the machine runs. */
typedef struct bench_machine {
	bench_run *run;
	unsigned id;
	uint64_t rng;
	bench_step step;
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
	bench_hist *hist;    /* owned */
} bench_machine;

struct bench_run {
	const bench_opts *o;
	datasync_client *ds;       /* owned; service mode */
	nrpc_client *rpc;          /* borrowed from ds */
	nng_socket sock;           /* echo mode */
	uint8_t *value;            /* owned; o->value_bytes (echo: message) */
	size_t value_len;
	char *keys;                /* owned; n_keys + 1 (the hot key) */
	size_t n_keys;
	size_t hot;                /* index of the hot key */
	atomic_uint_fast64_t *versions; /* owned; version cache per key */
	bench_machine *m;      /* owned; n_alloc */
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

/* --- flags (bench_main.c) --- */

/* bench_usage_error prints "datasync bench: <msg>" and a hint; returns 2. */
int bench_usage_error(const char *fmt, ...) DS_PRINTF(1, 2);

/* --- across files --- */

uint64_t bench_now_ns(void);

/* bench_rand is xorshift64*: fast, per machine, never zero. */
uint64_t bench_rand(uint64_t *s);

uint64_t bench_seed(unsigned id);

void bench_hist_record(bench_hist *h, uint64_t ns);

void bench_hist_merge(bench_hist *into, const bench_hist *h);

/* bench_hist_us returns the q-quantile (0 < q <= 1) in microseconds:
 * the highest value of the bucket holding it, as HdrHistogram reports,
 * but never above the largest value seen. 0 when empty. Also linked by
 * tests/bench/watch_bench.c. */
double bench_hist_us(const bench_hist *h, double q);

int bench_report(const bench_opts *o, const bench_result *r);

const char *bench_key(const bench_run *r, size_t i);

void bench_count(atomic_uint_fast64_t *c);

bool bench_in_window(const bench_run *r, uint64_t now);

void bench_run_fini(bench_run *r);

/* bench_run_init allocates the keys, the value and the machines. */
int bench_run_init(bench_run *r, const bench_opts *o);

/* bench_window fixes the measured window from now. */
void bench_window(bench_run *r);

void bench_collect(bench_run *r, bench_result *res, const char *op);

int bench_service(const bench_opts *o);

int bench_echo(const bench_opts *o);

/* bench_block_signals blocks SIGINT and SIGTERM. Call it before nng
 * creates threads, so that they inherit the mask and main alone receives
 * the signal in bench_wait_signal. */
void bench_block_signals(sigset_t *sigs);

void bench_wait_signal(const sigset_t *sigs);

int bench_echo_server(const bench_opts *o);

int bench_http_static(const bench_opts *o);

int bench_sqlite(const bench_opts *o);

#endif /* BENCH_H */

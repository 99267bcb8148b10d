/*
 * bench_main.c - `datasync-bench`, run as `datasync bench ...` (the CLI
 * execs it from its own directory): a load generator for the service and
 * the baselines it is measured against (DESIGN §5, §8). This file holds
 * the flags, the usage and the dispatch to the modes; bench_hist.c the
 * histogram and the report, bench_rpc.c the machines, bench_servers.c
 * the echo and bare-HTTP servers, bench_sqlite.c the SQLite loops.
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
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <getopt.h>
#include <stdarg.h>
#include <unistd.h>

#include "bench.h"
#include "ds_alloc.h"
#include "ds_text.h"

const char *const bench_op_names[BENCH_N_OPS] = {
    "get", "update", "update-hot", "lock-cycle", "mixed",
};

static const char bench_usage[] =
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
    "  --token T           bearer token for a server run with --auth\n"
    "                      (default $DATASYNC_TOKEN)\n"
    "  --tls-ca FILE       CA of the server's certificate, for tls+tcp://\n"
    "                      (default $DATASYNC_TLS_CA)\n"
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

/* --- flags --- */

int
bench_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("datasync bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\ntry 'datasync bench --help'\n", stderr);
	return BENCH_EXIT_USAGE;
}

static int
bench_parse_count(const char *flag, const char *s, uint64_t min,
    uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (ds_parse_u64(s, &v) != 0 || v < min || v > max) {
		return bench_usage_error("%s wants a number in %" PRIu64 "..%" PRIu64
		    ", got '%s'", flag, min, max, s);
	}
	*out = v;
	return BENCH_EXIT_OK;
}

static int
bench_parse_duration(const char *flag, const char *s, int64_t min,
    int64_t *out)
{
	int64_t v;

	if (ds_parse_duration_ms(s, &v) != 0 || v < min ||
	    v > BENCH_DURATION_MAX_MS) {
		return bench_usage_error("%s wants a duration like 500ms or 10s%s, "
		    "got '%s'", flag, min > 0 ? " (more than 0)" : "", s);
	}
	*out = v;
	return BENCH_EXIT_OK;
}

/* bench_set_mode records a mode flag; only one may be given. */
static int
bench_set_mode(bench_opts *o, bool *set, bench_mode mode)
{
	if (*set && o->mode != mode) {
		return bench_usage_error("give one of --baseline, --echo-server "
		                       "and --http-static");
	}
	*set = true;
	o->mode = mode;
	return BENCH_EXIT_OK;
}

static int
bench_parse(int argc, char **argv, bench_opts *o, bool *help)
{
	enum { O_URL = 1, O_OP, O_CONC, O_DURATION, O_WARMUP, O_KEYS,
		O_VALUE_BYTES, O_JSON, O_BASELINE, O_ECHO_SERVER, O_HTTP_STATIC,
		O_DB, O_DURABILITY, O_BATCH, O_CONTEXTS, O_TIMEOUT, O_PREFIX,
		O_NO_PRELOAD, O_PRELOAD_ONLY, O_TOKEN, O_TLS_CA, O_HELP };
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
	    {"token", required_argument, NULL, O_TOKEN},
	    {"tls-ca", required_argument, NULL, O_TLS_CA},
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
	o->contexts = BENCH_CONTEXTS_DEFAULT;
	o->duration_ms = 10000;
	o->warmup_ms = 1000;
	o->timeout_ms = 10000;
	o->keys = 1000;
	o->value_bytes = 100;
	o->prefix = "bench-";
	o->preload = true;
	o->token = getenv("DATASYNC_TOKEN");
	if (o->token != NULL && o->token[0] == '\0') {
		o->token = NULL;
	}
	o->tls_ca = getenv("DATASYNC_TLS_CA");
	if (o->tls_ca != NULL && o->tls_ca[0] == '\0') {
		o->tls_ca = NULL;
	}
	*help = false;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		rc = BENCH_EXIT_OK;
		switch (c) {
		case O_URL:
			o->url = optarg;
			break;
		case O_TOKEN:
			o->token = optarg[0] != '\0' ? optarg : NULL;
			break;
		case O_TLS_CA:
			o->tls_ca = optarg;
			break;
		case O_OP:
			op_set = true;
			for (v = 0; v < sizeof(bench_op_names) /
			    sizeof(bench_op_names[0]); v++) {
				if (strcmp(optarg, bench_op_names[v]) == 0) {
					break;
				}
			}
			if (v == sizeof(bench_op_names) /
			    sizeof(bench_op_names[0])) {
				return bench_usage_error("--op wants get, update, "
				    "update-hot, lock-cycle or mixed, got '%s'", optarg);
			}
			o->op = (bench_op) v;
			break;
		case O_CONC:
			rc = bench_parse_count("--concurrency", optarg, 1,
			    BENCH_CONCURRENCY_MAX, &v);
			o->concurrency = (unsigned) v;
			break;
		case O_DURATION:
			rc = bench_parse_duration("--duration", optarg, 1,
			    &o->duration_ms);
			break;
		case O_WARMUP:
			rc = bench_parse_duration("--warmup", optarg, 0,
			    &o->warmup_ms);
			break;
		case O_TIMEOUT:
			rc = bench_parse_duration("--timeout", optarg, 1,
			    &o->timeout_ms);
			if (rc == BENCH_EXIT_OK && o->timeout_ms > INT32_MAX) {
				rc = bench_usage_error("--timeout is too long");
			}
			break;
		case O_KEYS:
			rc = bench_parse_count("--keys", optarg, 1,
			    BENCH_KEYS_MAX, &v);
			o->keys = (size_t) v;
			break;
		case O_VALUE_BYTES:
			rc = bench_parse_count("--value-bytes", optarg, 0,
			    BENCH_VALUE_BYTES_MAX, &v);
			o->value_bytes = (size_t) v;
			break;
		case O_PREFIX:
			if (strlen(optarg) > BENCH_PREFIX_MAX) {
				return bench_usage_error("--key-prefix is longer than %d "
				    "bytes", BENCH_PREFIX_MAX);
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
				rc = bench_set_mode(o, &mode_set,
				    BENCH_MODE_ECHO);
			} else if (strcmp(optarg, "sqlite") == 0) {
				rc = bench_set_mode(o, &mode_set,
				    BENCH_MODE_SQLITE);
			} else if (strcmp(optarg, "sqlite-read") == 0) {
				rc = bench_set_mode(o, &mode_set,
				    BENCH_MODE_SQLITE_READ);
			} else {
				return bench_usage_error("--baseline wants echo, sqlite "
				    "or sqlite-read, got '%s'", optarg);
			}
			break;
		case O_ECHO_SERVER:
			rc = bench_set_mode(o, &mode_set,
			    BENCH_MODE_ECHO_SERVER);
			o->listen = optarg;
			break;
		case O_HTTP_STATIC:
			rc = bench_set_mode(o, &mode_set,
			    BENCH_MODE_HTTP_STATIC);
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
				return bench_usage_error("--durability wants full or "
				    "normal, got '%s'", optarg);
			}
			break;
		case O_BATCH:
			sqlite_flag = true;
			rc = bench_parse_count("--batch", optarg, 1,
			    BENCH_BATCH_MAX, &v);
			o->batch = (unsigned) v;
			break;
		case O_CONTEXTS:
			rc = bench_parse_count("--contexts", optarg, 1,
			    BENCH_CONTEXTS_MAX, &v);
			o->contexts = (unsigned) v;
			break;
		case O_HELP:
		case 'h':
			*help = true;
			break;
		default:
			return bench_usage_error("bench: unknown or incomplete option "
			    "'%s'", argv[optind - 1]);
		}
		if (rc != BENCH_EXIT_OK) {
			return rc;
		}
	}
	if (*help) {
		return BENCH_EXIT_OK;
	}
	if (optind < argc) {
		return bench_usage_error("bench: unexpected argument '%s'",
		    argv[optind]);
	}
	if ((o->mode == BENCH_MODE_SQLITE ||
	    o->mode == BENCH_MODE_SQLITE_READ) && o->db == NULL) {
		return bench_usage_error("--baseline sqlite and sqlite-read need "
		                       "--db PATH");
	}
	if (o->db != NULL && o->mode != BENCH_MODE_SQLITE &&
	    o->mode != BENCH_MODE_SQLITE_READ) {
		return bench_usage_error("--db goes with --baseline sqlite or "
		                       "sqlite-read");
	}
	if (sqlite_flag && o->mode != BENCH_MODE_SQLITE) {
		return bench_usage_error("--durability and --batch go with "
		                       "--baseline sqlite");
	}
	if (op_set && o->mode != BENCH_MODE_SERVICE) {
		return bench_usage_error("--op measures the service; it does not "
		                       "go with --baseline or a server mode");
	}
	if (o->preload_only && o->mode != BENCH_MODE_SERVICE) {
		return bench_usage_error("--preload-only goes with the service ops");
	}
	if (o->mode == BENCH_MODE_SQLITE_READ ||
	    o->mode == BENCH_MODE_SQLITE) {
		/* One connection, one statement at a time. */
		o->concurrency = 1;
	}
	return BENCH_EXIT_OK;
}

int
main(int argc, char **argv)
{
	bench_opts o;
	bool help;
	int rc;

	/* argv[0] is this program (the CLI passes what followed "bench"). */
	if ((rc = bench_parse(argc, argv, &o, &help)) != BENCH_EXIT_OK) {
		return rc;
	}
	if (help) {
		fputs(bench_usage, stdout);
		return BENCH_EXIT_OK;
	}
	switch (o.mode) {
	case BENCH_MODE_SERVICE:
		return bench_service(&o);
	case BENCH_MODE_ECHO:
		return bench_echo(&o);
	case BENCH_MODE_SQLITE:
	case BENCH_MODE_SQLITE_READ:
		return bench_sqlite(&o);
	case BENCH_MODE_ECHO_SERVER:
		return bench_echo_server(&o);
	case BENCH_MODE_HTTP_STATIC:
		return bench_http_static(&o);
	}
	return BENCH_EXIT_USAGE;
}

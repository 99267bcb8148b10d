/*
 * main.c - datasyncd: flags, wiring, signals. No logic of its own.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "datasync_handlers.h"
#include "ds_log.h"
#include "ds_text.h"
#include "nrpc.h"
#include "store.h"
#ifdef DATASYNC_HAVE_GATEWAY
#include "gateway.h"
#endif

#define DSD_MAX_LISTEN 16
#define DSD_STOP_GRACE_MS 10000
/* The database as logged: a PostgreSQL URI with its password hidden. */
#define DS_DB_SHOWN_MAX 512

static const char dsd_usage[] =
    "usage: datasyncd [options]\n"
    "       datasyncd token create NAME --grant G... [--db PATH|URI]\n"
    "       datasyncd token list [--db PATH|URI]\n"
    "       datasyncd token revoke NAME [--db PATH|URI]\n"
    "\n"
    "Serve the datasync record store over nng (RPC) and HTTP (gateway).\n"
    "\n"
    "  --listen URL          RPC address; repeat for several (ipc://, tcp://,\n"
    "                        inproc://). Default: ipc:///tmp/datasync.sock\n"
    "                        and tcp://127.0.0.1:7070\n"
    "  --http HOST:PORT|off  HTTP + JSON gateway and demo page\n"
    "                        (default 127.0.0.1:8080)\n"
    "  --db PATH|URI         SQLite database file (default ./datasync.db), or\n"
    "                        a PostgreSQL URI (postgresql://...): then any\n"
    "                        number of datasyncd nodes may serve the same\n"
    "                        database (DESIGN §10)\n"
    "  --workers N           run handlers on a pool of N threads (default:\n"
    "                        on nng's I/O threads, which saves two thread\n"
    "                        hand-offs per call; List and historical Gets\n"
    "                        then run on a pool of 2 reader threads)\n"
    "  --web-root DIR        static files for the gateway (default: the\n"
    "                        demo page, clients/web)\n"
    "  --cors-origin ORIGIN  allow cross-origin requests from ORIGIN;\n"
    "                        repeat for several (default: same-origin only)\n"
    "  --allow-host NAME     answer HTTP requests whose Host is NAME (besides\n"
    "                        the --http host, localhost and IP addresses;\n"
    "                        others get 421); repeat for several, * for any\n"
    "  --max-value-bytes N   largest value accepted (default 1048576)\n"
    "  --http-max-connections N  HTTP connections open at once (default\n"
    "                        1024, at most 65536)\n"
    "  --http-max-per-ip N   HTTP connections from one address (default 256)\n"
    "  --http-timeout S      close an HTTP connection idle for S seconds\n"
    "                        (default 30, at most 3600)\n"
    "  --max-sse-streams N   GET /v1/events streams open at once; more get\n"
    "                        503 (default 256)\n"
    "  --http-body-budget N  request body bytes held at once; a body that\n"
    "                        does not fit gets 503 unread (default 64 MiB)\n"
    "  --history N           versions kept readable per key (default 16)\n"
    "  --durability MODE     full: fsync every commit (default); normal:\n"
    "                        survive a process crash, not a power loss\n"
    "  --busy-timeout MS|Ns  how long a request waits for the database's\n"
    "                        lock when another process holds it (a sqlite3\n"
    "                        shell, a backup) before it fails UNAVAILABLE,\n"
    "                        reason DB_BUSY (HTTP 503 with Retry-After);\n"
    "                        0..60s, 0 = at once (default 5s)\n"
    "  --rpc-max-inflight-per-conn N\n"
    "                        requests one RPC connection may have in\n"
    "                        flight; one more closes it (default 512)\n"
    "  --watch-retain N      change-log revisions kept for watchers\n"
    "                        (default 100000); older cursors fail\n"
    "                        REVISION_COMPACTED (HTTP 410)\n"
    "  --watch-retain-time MS|Ns\n"
    "                        and kept at least this long (default 600s)\n"
    "  --rpc-max-parked N    watches and lock waits parked at once; one\n"
    "                        more fails RESOURCE_EXHAUSTED (default 8192)\n"
    "  --tls-cert FILE       PEM certificate (chain) for tls+tcp:// listeners\n"
    "                        and the gateway, which then serves HTTPS only\n"
    "  --tls-key FILE        its unencrypted PEM key\n"
    "  --tls-client-ca FILE  RPC clients on tls+tcp:// must present a\n"
    "                        certificate signed by this CA\n"
    "  --auth                every call needs a bearer token with the right\n"
    "                        for it (read, write, lock per key prefix;\n"
    "                        admin); see \"datasyncd token\" below\n"
    "  --bootstrap-token-file FILE\n"
    "                        implies --auth; FILE holds one secret (dst_ and\n"
    "                        64 hex digits): if no token has it, an admin\n"
    "                        token \"bootstrap\" is made for it; a missing\n"
    "                        FILE is created (mode 0600) with a new secret;\n"
    "                        a FILE group or other may read or write is\n"
    "                        refused (exit 2: chmod 600 it)\n"
    "  --insecure-no-auth    serve a non-loopback --listen or --http address\n"
    "                        without --auth (protected mode refuses to,\n"
    "                        exit 2)\n"
    "  --quiet               log warnings and errors only\n"
    "  --help                show this text\n"
    "\n"
    "SIGINT or SIGTERM: finish in-flight requests, close the database,\n"
    "exit 0, within 10 s (requests waiting for another process's lock on\n"
    "the database then fail DB_BUSY at once).\n"
    "\n"
    "Tokens, on the database directly (the daemon may be stopped):\n"
    "  token create NAME --grant G...  G is read:PREFIX, write:PREFIX,\n"
    "                        lock:PREFIX (PREFIX may be empty: every key) or\n"
    "                        admin; prints the secret alone on stdout, once\n"
    "  token list            name, state, creation time and grants\n"
    "  token revoke NAME     refused from then on, on every node (within a\n"
    "                        second)\n"
    "Exit codes: 0 ok, 1 error, 2 usage (or protected mode), 5 no such\n"
    "token.\n";

typedef struct dsd_opts {
	const char *listen[DSD_MAX_LISTEN];
	size_t n_listen;
	const char *http;
	const char *db;
	unsigned workers;
	const char *web_root;
	const char *cors[DSD_MAX_LISTEN];
	size_t n_cors;
	const char *allow_hosts[DSD_MAX_LISTEN];
	size_t n_allow_hosts;
	int64_t max_value_bytes;
	int64_t http_max_conns, http_max_per_ip, http_timeout, http_budget;
	int64_t max_sse_streams; /* 0 = the gateway's default */
	int64_t history;
	store_durability durability;
	int64_t busy_timeout_ms;
	int64_t max_inflight_per_conn; /* 0 = nrpc's default */
	int64_t watch_retain;
	int64_t watch_retain_ms;
	int64_t max_parked;
	const char *tls_cert, *tls_key, *tls_client_ca;
	bool auth;
	const char *bootstrap_file;
	bool insecure_no_auth;
	bool quiet;
} dsd_opts;

static int
dsd_parse_int(const char *flag, const char *s, int64_t min, int64_t max,
    int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr,
		    "datasyncd: %s must be an integer in %" PRId64 "..%" PRId64
		    ", got '%s'\n", flag, min, max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* dsd_parse_duration reads a duration in milliseconds: "500", "500ms" or
 * "5s", within min..max ms. */
static int
dsd_parse_duration(const char *flag, const char *s, int64_t min, int64_t max,
    int64_t *out)
{
	char *end;
	long long v;
	int64_t scale = 0;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == 0 && end != s && v >= 0) {
		if (*end == '\0' || strcmp(end, "ms") == 0) {
			scale = 1;
		} else if (strcmp(end, "s") == 0) {
			scale = 1000;
		}
	}
	if (scale == 0 || v > max / scale || v * scale < min) {
		fprintf(stderr,
		    "datasyncd: %s must be a duration in %" PRId64 "ms..%" PRId64
		    "ms (like 500ms or 5s), got '%s'\n", flag, min, max, s);
		return -1;
	}
	*out = v * scale;
	return 0;
}

/* --- protected mode (DESIGN §11) --- */

/* dsd_protected refuses (2) a listener beyond loopback without
 * authentication, unless --insecure-no-auth says so. */
static int
dsd_protected(const dsd_opts *o)
{
	const char *open = NULL;

	if (o->auth || o->insecure_no_auth) {
		return 0;
	}
	for (size_t i = 0; i < o->n_listen && open == NULL; i++) {
		if (!ds_url_local(o->listen[i])) {
			open = o->listen[i];
		}
	}
	if (open == NULL && strcmp(o->http, "off") != 0 &&
	    !ds_hostport_loopback(o->http)) {
		open = o->http;
	}
	if (open == NULL) {
		return 0;
	}
	fprintf(stderr, "datasyncd: protected mode: %s is reachable beyond "
	                "this machine and nobody would be asked for a token; "
	                "add --auth (or --bootstrap-token-file FILE), or "
	                "--insecure-no-auth to serve it open\n", open);
	return 2;
}

/* dsd_parse returns 0 to run, 1 to exit 0 (help), 2 on a usage error. */
static int
dsd_parse(int argc, char **argv, dsd_opts *o)
{
	enum { O_LISTEN = 1, O_HTTP, O_DB, O_WORKERS, O_WEB_ROOT, O_CORS,
		O_ALLOW_HOST, O_MAX_VALUE, O_HISTORY, O_DURABILITY,
		O_BUSY_TIMEOUT, O_WATCH_RETAIN, O_WATCH_RETAIN_TIME, O_MAX_PARKED, O_QUIET, O_HELP, O_HTTP_CONNS, O_HTTP_PER_IP,
		O_HTTP_TIMEOUT, O_HTTP_BUDGET, O_MAX_INFLIGHT, O_SSE_STREAMS,
		O_TLS_CERT, O_TLS_KEY, O_TLS_CLIENT_CA, O_AUTH, O_BOOTSTRAP,
		O_INSECURE };
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, O_LISTEN},
	    {"http", required_argument, NULL, O_HTTP},
	    {"db", required_argument, NULL, O_DB},
	    {"workers", required_argument, NULL, O_WORKERS},
	    {"web-root", required_argument, NULL, O_WEB_ROOT},
	    {"cors-origin", required_argument, NULL, O_CORS},
	    {"allow-host", required_argument, NULL, O_ALLOW_HOST},
	    {"max-value-bytes", required_argument, NULL, O_MAX_VALUE},
	    {"history", required_argument, NULL, O_HISTORY},
	    {"durability", required_argument, NULL, O_DURABILITY},
	    {"busy-timeout", required_argument, NULL, O_BUSY_TIMEOUT},
	    {"watch-retain", required_argument, NULL, O_WATCH_RETAIN},
	    {"watch-retain-time", required_argument, NULL, O_WATCH_RETAIN_TIME},
	    {"rpc-max-parked", required_argument, NULL, O_MAX_PARKED},
	    {"http-max-connections", required_argument, NULL, O_HTTP_CONNS},
	    {"http-max-per-ip", required_argument, NULL, O_HTTP_PER_IP},
	    {"http-timeout", required_argument, NULL, O_HTTP_TIMEOUT},
	    {"http-body-budget", required_argument, NULL, O_HTTP_BUDGET},
	    {"max-sse-streams", required_argument, NULL, O_SSE_STREAMS},
	    {"rpc-max-inflight-per-conn", required_argument, NULL,
	        O_MAX_INFLIGHT},
	    {"tls-cert", required_argument, NULL, O_TLS_CERT},
	    {"tls-key", required_argument, NULL, O_TLS_KEY},
	    {"tls-client-ca", required_argument, NULL, O_TLS_CLIENT_CA},
	    {"auth", no_argument, NULL, O_AUTH},
	    {"bootstrap-token-file", required_argument, NULL, O_BOOTSTRAP},
	    {"insecure-no-auth", no_argument, NULL, O_INSECURE},
	    {"quiet", no_argument, NULL, O_QUIET},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	int c;
	int64_t v;

	memset(o, 0, sizeof(*o));
	o->http = "127.0.0.1:8080";
	o->db = "./datasync.db";
	o->max_value_bytes = STORE_MAX_VALUE_BYTES_DEFAULT;
	o->history = STORE_HISTORY_DEFAULT;
	o->durability = STORE_DURABILITY_FULL;
	o->busy_timeout_ms = STORE_BUSY_TIMEOUT_DEFAULT_MS;
	o->watch_retain = DSH_WATCH_RETAIN_DEFAULT;
	o->watch_retain_ms = DSH_WATCH_RETAIN_MS_DEFAULT;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN:
			if (o->n_listen == DSD_MAX_LISTEN) {
				fprintf(stderr, "datasyncd: at most %d --listen\n",
				    DSD_MAX_LISTEN);
				return 2;
			}
			o->listen[o->n_listen++] = optarg;
			break;
		case O_HTTP:
			o->http = optarg;
			break;
		case O_DB:
			o->db = optarg;
			break;
		case O_TLS_CERT:
			o->tls_cert = optarg;
			break;
		case O_TLS_KEY:
			o->tls_key = optarg;
			break;
		case O_TLS_CLIENT_CA:
			o->tls_client_ca = optarg;
			break;
		case O_WORKERS:
			if (dsd_parse_int("--workers", optarg, 1, 256, &v) != 0) {
				return 2;
			}
			o->workers = (unsigned) v;
			break;
		case O_WEB_ROOT:
			o->web_root = optarg;
			break;
		case O_CORS:
			if (o->n_cors == DSD_MAX_LISTEN) {
				fprintf(stderr, "datasyncd: at most %d --cors-origin\n",
				    DSD_MAX_LISTEN);
				return 2;
			}
			o->cors[o->n_cors++] = optarg;
			break;
		case O_ALLOW_HOST:
			if (o->n_allow_hosts == DSD_MAX_LISTEN) {
				fprintf(stderr, "datasyncd: at most %d --allow-host\n",
				    DSD_MAX_LISTEN);
				return 2;
			}
			o->allow_hosts[o->n_allow_hosts++] = optarg;
			break;
		case O_MAX_VALUE:
			if (dsd_parse_int("--max-value-bytes", optarg, 0,
			        STORE_MAX_VALUE_BYTES_HARD, &o->max_value_bytes) != 0) {
				return 2;
			}
			break;
		case O_HISTORY:
			if (dsd_parse_int("--history", optarg, 0, STORE_HISTORY_HARD,
			        &o->history) != 0) {
				return 2;
			}
			break;
		case O_DURABILITY:
			if (strcmp(optarg, "full") == 0) {
				o->durability = STORE_DURABILITY_FULL;
			} else if (strcmp(optarg, "normal") == 0) {
				o->durability = STORE_DURABILITY_NORMAL;
			} else {
				fprintf(stderr, "datasyncd: --durability must be full "
				                "or normal, got '%s'\n", optarg);
				return 2;
			}
			break;
		case O_BUSY_TIMEOUT:
			if (dsd_parse_duration("--busy-timeout", optarg, 0,
			        STORE_BUSY_TIMEOUT_HARD_MS, &o->busy_timeout_ms) != 0) {
				return 2;
			}
			break;
		/* The gateway checks these against its hard maxima. */
		case O_HTTP_CONNS:
			if (dsd_parse_int("--http-max-connections", optarg, 1,
			        UINT32_MAX, &o->http_max_conns) != 0) {
				return 2;
			}
			break;
		case O_HTTP_PER_IP:
			if (dsd_parse_int("--http-max-per-ip", optarg, 1, UINT32_MAX,
			        &o->http_max_per_ip) != 0) {
				return 2;
			}
			break;
		case O_HTTP_TIMEOUT:
			if (dsd_parse_int("--http-timeout", optarg, 1, UINT32_MAX,
			        &o->http_timeout) != 0) {
				return 2;
			}
			break;
		case O_HTTP_BUDGET:
			if (dsd_parse_int("--http-body-budget", optarg, 1, INT64_MAX,
			        &o->http_budget) != 0) {
				return 2;
			}
			break;
		case O_SSE_STREAMS:
			if (dsd_parse_int("--max-sse-streams", optarg, 1, UINT32_MAX,
			        &o->max_sse_streams) != 0) {
				return 2;
			}
			break;
		case O_MAX_INFLIGHT:
			if (dsd_parse_int("--rpc-max-inflight-per-conn", optarg, 1,
			        NRPC_MAX_INFLIGHT_PER_CONN_HARD,
			        &o->max_inflight_per_conn) != 0) {
				return 2;
			}
			break;
		case O_WATCH_RETAIN:
			if (dsd_parse_int("--watch-retain", optarg, 1,
			        (int64_t) DSH_WATCH_RETAIN_HARD,
			        &o->watch_retain) != 0) {
				return 2;
			}
			break;
		case O_WATCH_RETAIN_TIME:
			if (dsd_parse_duration("--watch-retain-time", optarg, 0,
			        DSH_WATCH_RETAIN_MS_HARD, &o->watch_retain_ms) != 0) {
				return 2;
			}
			break;
		case O_MAX_PARKED:
			if (dsd_parse_int("--rpc-max-parked", optarg, 1,
			        NRPC_MAX_PARKED_HARD, &o->max_parked) != 0) {
				return 2;
			}
			break;
		case O_AUTH:
			o->auth = true;
			break;
		case O_BOOTSTRAP:
			o->bootstrap_file = optarg;
			o->auth = true;
			break;
		case O_INSECURE:
			o->insecure_no_auth = true;
			break;
		case O_QUIET:
			o->quiet = true;
			break;
		case O_HELP:
		case 'h':
			fputs(dsd_usage, stdout);
			return 1;
		default:
			fprintf(stderr, "datasyncd: unknown or incomplete option '%s'\n"
			                "try 'datasyncd --help'\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "datasyncd: unexpected argument '%s'\n",
		    argv[optind]);
		return 2;
	}
	if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
		fprintf(stderr, "datasyncd: --tls-cert and --tls-key go "
		                "together\n");
		return 2;
	}
	if (o->tls_client_ca != NULL && o->tls_cert == NULL) {
		fprintf(stderr, "datasyncd: --tls-client-ca needs --tls-cert "
		                "and --tls-key\n");
		return 2;
	}
	if (o->auth && o->insecure_no_auth) {
		fprintf(stderr, "datasyncd: --insecure-no-auth contradicts --auth "
		                "and --bootstrap-token-file\n");
		return 2;
	}
	if (o->n_listen == 0) {
		o->listen[o->n_listen++] = "ipc:///tmp/datasync.sock";
		o->listen[o->n_listen++] = "tcp://127.0.0.1:7070";
	}
	return dsd_protected(o);
}

/* --- datasyncd token create|list|revoke: on the store directly --- */

/* dsd_token_exit maps a token command's status to the exit code. */
static int
dsd_token_exit(const nrpc_status *st)
{
	fprintf(stderr, "datasyncd token: %s (%s)\n", st->message,
	    st->reason);
	switch (st->code) {
	case NRPC_INVALID_ARGUMENT:
		return 2;
	case NRPC_NOT_FOUND:
		return 5;
	default:
		return 1;
	}
}

static void
dsd_time_text(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t) (ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		(void) snprintf(buf, len, "%lld", (long long) ms);
	}
}

static void
dsd_token_print(const store_auth_token *t)
{
	char made[32];
	char gone[32] = "";

	dsd_time_text(t->created_at_ms, made, sizeof(made));
	if (t->revoked) {
		dsd_time_text(t->revoked_at_ms, gone, sizeof(gone));
	}
	printf("%-20s %-8s %s%s%s  ", t->name, t->revoked ? "revoked" : "active",
	    made, t->revoked ? " revoked " : "", gone);
	for (const char *c = t->grants; *c != '\0'; c++) {
		putchar(*c == '\n' ? ' ' : *c);
	}
	putchar('\n');
}

static int
dsd_token_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"grant", required_argument, NULL, 'g'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = "./datasync.db";
	const char *grants[AUTH_GRANTS_MAX];
	size_t n_grants = 0;
	const char *cmd;
	const char *name = NULL;
	store_config scfg;
	store *s = NULL;
	store_conn *c = NULL;
	store_error serr;
	nrpc_status nst;
	store_auth_token tok;
	char shown[DS_DB_SHOWN_MAX];
	int ch;
	int rc = 1;

	memset(&serr, 0, sizeof(serr));
	memset(&nst, 0, sizeof(nst));
	memset(&tok, 0, sizeof(tok));
	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			db = optarg;
			break;
		case 'g':
			if (n_grants == AUTH_GRANTS_MAX) {
				fprintf(stderr, "datasyncd token: at most %d "
				    "--grant\n", AUTH_GRANTS_MAX);
				return 2;
			}
			grants[n_grants++] = optarg;
			break;
		case 'h':
			fputs(dsd_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "datasyncd token: unknown or incomplete "
			    "option '%s'\ntry 'datasyncd --help'\n",
			    argv[optind - 1]);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "datasyncd token: create, list or revoke?\n");
		return 2;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "create") == 0 || strcmp(cmd, "revoke") == 0) {
		if (optind >= argc) {
			fprintf(stderr, "datasyncd token %s: NAME is missing\n",
			    cmd);
			return 2;
		}
		name = argv[optind++];
	} else if (strcmp(cmd, "list") != 0) {
		fprintf(stderr, "datasyncd token: unknown command '%s' (create, "
		    "list or revoke)\n", cmd);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "datasyncd token: unexpected argument '%s'\n",
		    argv[optind]);
		return 2;
	}
	if (strcmp(cmd, "create") == 0 && n_grants == 0) {
		fprintf(stderr, "datasyncd token create: give at least one "
		    "--grant (read:PREFIX, write:PREFIX, lock:PREFIX, admin)\n");
		return 2;
	}
	if (strcmp(cmd, "create") != 0 && n_grants > 0) {
		fprintf(stderr, "datasyncd token %s: --grant is for create\n",
		    cmd);
		return 2;
	}
	ds_uri_redact(db, shown, sizeof(shown));
	store_config_default(&scfg);
	scfg.path = db;
	if (store_open(&scfg, &s, &serr) != STORE_OK ||
	    store_conn_open(s, &c, &serr) != STORE_OK) {
		fprintf(stderr, "datasyncd token: cannot open database %s: %s\n",
		    shown, serr.message);
		goto out;
	}
	if (strcmp(cmd, "create") == 0) {
		char secret[AUTH_SECRET_TEXT_LEN + 1];

		if (dsh_token_create(c, name, grants, n_grants, secret, &tok,
		        &nst) != NRPC_OK) {
			rc = dsd_token_exit(&nst);
			goto out;
		}
		/* stdout: the secret alone, for a pipe or a file */
		printf("%s\n", secret);
		memset(secret, 0, sizeof(secret));
		fprintf(stderr, "datasyncd token: created \"%s\"; the secret "
		    "above is shown this once\n", tok.name);
	} else if (strcmp(cmd, "revoke") == 0) {
		if (dsh_token_revoke(c, name, &tok, &nst) != NRPC_OK) {
			rc = dsd_token_exit(&nst);
			goto out;
		}
		fprintf(stderr, "datasyncd token: revoked \"%s\"\n", tok.name);
	} else {
		store_auth_token *all = NULL;
		size_t n = 0;
		uint64_t gen;

		if (store_auth_list(c, &all, &n, &gen, &serr) != STORE_OK) {
			fprintf(stderr, "datasyncd token: %s\n", serr.message);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			dsd_token_print(&all[i]);
		}
		store_auth_tokens_free(all, n);
	}
	rc = 0;
out:
	store_auth_token_fini(&tok);
	nrpc_status_fini(&nst);
	store_conn_close(c);
	store_close(s);
	return rc;
}

int
main(int argc, char **argv)
{
	dsd_opts o;
	store_config scfg;
	char db_shown[DS_DB_SHOWN_MAX];
	store *st_store = NULL;
	store_error serr;
	dsh_service *svc = NULL;
	dsh_config dcfg;
	nrpc_server_config ncfg;
	nrpc_server *srv = NULL;
	nrpc_status nst;
	sigset_t sigs;
	int sig;
	int rc = 1;
	const char *urls[DSD_MAX_LISTEN + 1];
	size_t n_urls;
#ifdef DATASYNC_HAVE_GATEWAY
	gw_server *gw = NULL;
	char inproc[64];
#endif

	if (argc >= 2 && strcmp(argv[1], "token") == 0) {
		return dsd_token_main(argc - 1, argv + 1);
	}
	switch (dsd_parse(argc, argv, &o)) {
	case 0:
		break;
	case 1:
		return 0;
	default:
		return 2;
	}
	if (o.quiet) {
		ds_log_set_level(DS_LOG_WARN);
	}
	memset(&nst, 0, sizeof(nst));
	memset(&serr, 0, sizeof(serr));

	/* Every thread created from here on inherits the blocked signals;
	 * main alone receives them in sigwait. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	/* A client that goes away mid-reply must not kill the server. */
	signal(SIGPIPE, SIG_IGN);
	/* Every client connection is a descriptor; the default soft limit
	 * (1024) would cap the server at about a thousand clients. */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void) setrlimit(RLIMIT_NOFILE, &rl); /* best effort */
		}
	}

	ds_uri_redact(o.db, db_shown, sizeof(db_shown));
	store_config_default(&scfg);
	scfg.path = o.db;
	scfg.durability = o.durability;
	scfg.limits.max_value_bytes = (uint32_t) o.max_value_bytes;
	scfg.limits.history = (uint32_t) o.history;
	scfg.limits.busy_timeout_ms = o.busy_timeout_ms;
	if (store_open(&scfg, &st_store, &serr) != STORE_OK) {
		fprintf(stderr, "datasyncd: cannot open database %s: %s\n",
		    db_shown, serr.message);
		goto out;
	}

	if (o.bootstrap_file != NULL &&
	    dsh_token_bootstrap(st_store, o.bootstrap_file, &nst) != NRPC_OK) {
		fprintf(stderr, "datasyncd: --bootstrap-token-file: %s\n",
		    nst.message);
		rc = nst.code == NRPC_INVALID_ARGUMENT ? 2 : 1;
		goto out;
	}

	memset(&dcfg, 0, sizeof(dcfg));
	dcfg.store = st_store;
	dcfg.auth = o.auth;
	dcfg.watch_retain = (uint64_t) o.watch_retain;
	dcfg.watch_retain_ms = o.watch_retain_ms == 0 ? -1 : o.watch_retain_ms;
	/* Handlers run on nng's task threads unless --workers is given;
	 * then List and historical Gets, which may wait on the disk, go to
	 * a small reader pool instead (a worker pool may block anyway). */
	dcfg.readers = o.workers == 0 ? DSH_READERS_DEFAULT : 0;
	if (dsh_service_create(&dcfg, &svc, &nst) != NRPC_OK) {
		fprintf(stderr, "datasyncd: %s\n", nst.message);
		goto out;
	}

	n_urls = 0;
	for (size_t i = 0; i < o.n_listen; i++) {
		urls[n_urls++] = o.listen[i];
	}
#ifdef DATASYNC_HAVE_GATEWAY
	/* The embedded gateway is an ordinary client of the RPC service,
	 * over inproc://, so embedded and separate deployments run the same
	 * code (DESIGN §2). */
	(void) snprintf(inproc, sizeof(inproc), "inproc://datasyncd-%ld",
	    (long) getpid());
	if (strcmp(o.http, "off") != 0) {
		urls[n_urls++] = inproc;
	}
#endif
	nrpc_server_config_default(&ncfg);
	ncfg.urls = urls;
	ncfg.n_urls = n_urls;
	ncfg.workers = o.workers;
	if (o.max_inflight_per_conn > 0) {
		ncfg.max_inflight_per_conn = (unsigned) o.max_inflight_per_conn;
	}
	ncfg.max_message_bytes = (size_t) o.max_value_bytes + 64 * 1024;
	if (o.max_parked > 0) {
		ncfg.max_parked = (size_t) o.max_parked;
	}
	ncfg.tls_cert_file = o.tls_cert;
	ncfg.tls_key_file = o.tls_key;
	ncfg.tls_client_ca_file = o.tls_client_ca;
	ncfg.worker_init = dsh_worker_init;
	ncfg.worker_fini = dsh_worker_fini;
	ncfg.worker_arg = svc;
	/* What the handlers do on the calling thread never blocks for long
	 * (a cached point read, a queue push; List and historical Gets are
	 * handed to the reader pool above), so by default they run on the
	 * nng thread that received the call; --workers N selects a pool of N
	 * threads instead. */
	ncfg.inline_handlers = o.workers == 0;
	if (nrpc_server_create(&ncfg, &srv, &nst) != NRPC_OK ||
	    dsh_service_register(svc, srv, &nst) != NRPC_OK ||
	    nrpc_server_start(srv, &nst) != NRPC_OK) {
		fprintf(stderr, "datasyncd: %s\n", nst.message);
		goto out;
	}
	printf("datasyncd: database %s (durability %s, history %" PRId64
	       ", busy timeout %" PRId64 " ms)\n",
	    db_shown, o.durability == STORE_DURABILITY_FULL ? "full" : "normal",
	    o.history, o.busy_timeout_ms);
	printf("datasyncd: authentication %s\n",
	    o.auth ? "on: every call needs a token" :
	    o.insecure_no_auth ? "OFF (--insecure-no-auth)" : "off");
	for (size_t i = 0; i < o.n_listen; i++) {
		printf("datasyncd: listening on %s\n", o.listen[i]);
	}
#ifdef DATASYNC_HAVE_GATEWAY
	if (strcmp(o.http, "off") != 0) {
		gw_config gcfg;

		gw_config_default(&gcfg);
		gcfg.upstreams = (const char *const[]){inproc};
		gcfg.n_upstreams = 1;
		gcfg.http = o.http;
		gcfg.web_root = o.web_root;
		gcfg.cors_origins = o.cors;
		gcfg.n_cors_origins = o.n_cors;
		gcfg.allow_hosts = o.allow_hosts;
		gcfg.n_allow_hosts = o.n_allow_hosts;
		gcfg.max_value_bytes = (size_t) o.max_value_bytes;
		gcfg.max_connections = (unsigned) o.http_max_conns;
		gcfg.max_per_ip = (unsigned) o.http_max_per_ip;
		gcfg.timeout_s = (unsigned) o.http_timeout;
		gcfg.body_budget = (size_t) o.http_budget;
		gcfg.max_sse_streams = (unsigned) o.max_sse_streams;
		gcfg.tls_cert_file = o.tls_cert;
		gcfg.tls_key_file = o.tls_key;
		if (gw_start(&gcfg, &gw, &nst) != NRPC_OK) {
			fprintf(stderr, "datasyncd: %s\n", nst.message);
			goto out;
		}
		printf("datasyncd: gateway and demo page on %s://%s/\n",
		    o.tls_cert != NULL ? "https" : "http", o.http);
	}
#else
	if (strcmp(o.http, "off") != 0) {
		printf("datasyncd: HTTP gateway not built; --http %s ignored\n",
		    o.http);
	}
#endif
	fflush(stdout);

	do {
		if (sigwait(&sigs, &sig) != 0) {
			sig = SIGTERM;
		}
	} while (sig != SIGINT && sig != SIGTERM);
	printf("datasyncd: %s received, shutting down\n",
	    sig == SIGINT ? "SIGINT" : "SIGTERM");
	fflush(stdout);
	rc = 0;
	/* A write waiting for another process's lock would hold the
	 * shutdown for busy_timeout_ms per batch: from now on such waits
	 * fail DB_BUSY at once, so the grace below is spent only on work
	 * that can finish. */
	store_cancel_waits(st_store);

out:
	/* Watches and lock waits park for up to a minute: answer them now
	 * (watches with a progress reply), so neither the gateway's streams
	 * nor nrpc_server_stop wait for them. */
	dsh_service_drain(svc);
#ifdef DATASYNC_HAVE_GATEWAY
	gw_stop(gw);
#endif
	/* Order matters: the server answers in-flight calls while the writer
	 * still runs; then the writer drains; then the database closes. */
	if (srv != NULL) {
		nrpc_server_stop(srv, DSD_STOP_GRACE_MS);
	}
	if (svc != NULL) {
		dsh_stats ds;

		dsh_service_stats_get(svc, &ds);
		ds_log(DS_LOG_INFO, "datasyncd",
		    "writer: %llu batches, %llu writes, %llu conflicts (%llu "
		    "refused from the head cache without SQL)",
		    (unsigned long long) ds.batches,
		    (unsigned long long) ds.writes,
		    (unsigned long long) ds.conflicts,
		    (unsigned long long) ds.cached_conflicts);
	}
	dsh_service_destroy(svc);
	nrpc_server_destroy(srv);
	store_close(st_store);
	nrpc_status_fini(&nst);
	return rc;
}

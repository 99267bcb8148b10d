/*
 * gw_main.c - datasync-gateway: the HTTP + JSON gateway as its own
 * process, in front of one or more datasyncd. Flags, wiring, signals.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasync/v1/datasync.nrpc.h"
#include "ds_log.h"
#include "ds_text.h"
#include "gateway.h"
#include "gw_limits.h"

static const char gwm_usage[] =
    "usage: datasync-gateway --upstream URL [--upstream URL]... [options]\n"
    "\n"
    "Serve datasync to browsers: REST + JSON over HTTP, translated to RPC\n"
    "calls to the datasyncd servers at the upstream URLs.\n"
    "\n"
    "  --upstream URL        RPC address of a datasyncd (ipc://, tcp://);\n"
    "                        repeat for several (calls are spread)\n"
    "  --http HOST:PORT      where to listen (default 127.0.0.1:8080;\n"
    "                        port 0 picks a free one)\n"
    "  --web-root DIR        static files (default: the demo page,\n"
    "                        clients/web)\n"
    "  --cors-origin ORIGIN  allow cross-origin requests from ORIGIN\n"
    "                        (scheme://host[:port], or * for any); repeat\n"
    "                        for several (default: same-origin only)\n"
    "  --allow-host NAME     answer requests whose Host is NAME (besides the\n"
    "                        --http host, localhost and IP addresses;\n"
    "                        others get 421); repeat for several, * for any\n"
    "  --max-value-bytes N   largest PUT body accepted (default 1048576)\n"
    "  --timeout-ms N        deadline of each upstream call (default 10000)\n"
    "  --http-max-connections N  HTTP connections open at once (default\n"
    "                        1024, at most 65536)\n"
    "  --http-max-per-ip N   HTTP connections from one address (default 256)\n"
    "  --http-timeout S      close an HTTP connection idle for S seconds\n"
    "                        (default 30, at most 3600)\n"
    "  --http-body-budget N  request body bytes held at once; a body that\n"
    "                        does not fit gets 503 unread (default 64 MiB)\n"
    "  --max-sse-streams N   GET /v1/events streams open at once; more get\n"
    "                        503 (default 256)\n"
    "  --sse-heartbeat-ms N  a quiet event stream sends a heartbeat comment\n"
    "                        every N ms (default 15000, 10..60000)\n"
    "  --tls-cert FILE       PEM certificate: serve HTTPS only, with it\n"
    "  --tls-key FILE        its unencrypted PEM key\n"
    "  --upstream-tls-ca FILE  the CA of tls+tcp:// upstreams' certificates\n"
    "  --insecure-no-auth    serve a non-loopback --http address even when\n"
    "                        an upstream does not require tokens (without\n"
    "                        it the gateway asks each upstream (WhoAmI) at\n"
    "                        start and exits 2 unless all run with --auth)\n"
    "  --quiet               log warnings and errors only\n"
    "  --help                show this text\n"
    "\n"
    "SIGINT or SIGTERM: stop, exit 0.\n";

typedef struct gwm_opts {
	const char *upstreams[GW_MAX_UPSTREAMS];
	size_t n_upstreams;
	const char *cors[GW_MAX_CORS_ORIGINS];
	size_t n_cors;
	const char *allow_hosts[GW_MAX_ALLOW_HOSTS];
	size_t n_allow_hosts;
	const char *tls_cert, *tls_key, *upstream_ca;
	const char *http;
	const char *web_root;
	long long max_value_bytes;
	long long timeout_ms;
	long long max_conns, max_per_ip, http_timeout, budget;
	long long max_streams, heartbeat_ms;
	bool quiet;
	bool insecure_no_auth;
} gwm_opts;

/* How long the start-up WhoAmI of protected mode waits for an upstream. */
#define GWM_PROTECT_TIMEOUT_MS 5000

static int
gwm_parse_int(const char *flag, const char *s, long long min, long long max,
    long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr,
		    "datasync-gateway: %s must be an integer in %lld..%lld, "
		    "got '%s'\n",
		    flag, min, max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* gwm_parse returns 0 to run, 1 to exit 0 (help), 2 on a usage error. */
static int
gwm_parse(int argc, char **argv, gwm_opts *o)
{
	enum {
		O_UPSTREAM = 1,
		O_HTTP,
		O_WEB_ROOT,
		O_CORS,
		O_ALLOW_HOST,
		O_MAX_VALUE,
		O_TIMEOUT,
		O_HTTP_CONNS,
		O_HTTP_PER_IP,
		O_HTTP_TIMEOUT,
		O_HTTP_BUDGET,
		O_SSE_STREAMS,
		O_SSE_HEARTBEAT,
		O_TLS_CERT,
		O_TLS_KEY,
		O_UPSTREAM_TLS_CA,
		O_QUIET,
		O_INSECURE,
		O_HELP
	};
	static const struct option longopts[] = {
	    {"upstream", required_argument, NULL, O_UPSTREAM},
	    {"http", required_argument, NULL, O_HTTP},
	    {"web-root", required_argument, NULL, O_WEB_ROOT},
	    {"cors-origin", required_argument, NULL, O_CORS},
	    {"allow-host", required_argument, NULL, O_ALLOW_HOST},
	    {"max-value-bytes", required_argument, NULL, O_MAX_VALUE},
	    {"timeout-ms", required_argument, NULL, O_TIMEOUT},
	    {"http-max-connections", required_argument, NULL, O_HTTP_CONNS},
	    {"http-max-per-ip", required_argument, NULL, O_HTTP_PER_IP},
	    {"http-timeout", required_argument, NULL, O_HTTP_TIMEOUT},
	    {"http-body-budget", required_argument, NULL, O_HTTP_BUDGET},
	    {"max-sse-streams", required_argument, NULL, O_SSE_STREAMS},
	    {"sse-heartbeat-ms", required_argument, NULL, O_SSE_HEARTBEAT},
	    {"tls-cert", required_argument, NULL, O_TLS_CERT},
	    {"tls-key", required_argument, NULL, O_TLS_KEY},
	    {"upstream-tls-ca", required_argument, NULL, O_UPSTREAM_TLS_CA},
	    {"quiet", no_argument, NULL, O_QUIET},
	    {"insecure-no-auth", no_argument, NULL, O_INSECURE},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->http = "127.0.0.1:8080";
	o->max_value_bytes = GW_MAX_VALUE_BYTES_DEFAULT;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_UPSTREAM:
			if (o->n_upstreams == GW_MAX_UPSTREAMS) {
				fprintf(stderr,
				    "datasync-gateway: at most %d "
				    "--upstream\n",
				    GW_MAX_UPSTREAMS);
				return 2;
			}
			o->upstreams[o->n_upstreams++] = optarg;
			break;
		case O_HTTP:
			o->http = optarg;
			break;
		case O_WEB_ROOT:
			o->web_root = optarg;
			break;
		case O_CORS:
			if (o->n_cors == GW_MAX_CORS_ORIGINS) {
				fprintf(stderr,
				    "datasync-gateway: at most %d "
				    "--cors-origin\n",
				    GW_MAX_CORS_ORIGINS);
				return 2;
			}
			o->cors[o->n_cors++] = optarg;
			break;
		case O_ALLOW_HOST:
			if (o->n_allow_hosts == GW_MAX_ALLOW_HOSTS) {
				fprintf(stderr,
				    "datasync-gateway: at most %d --allow-host\n",
				    GW_MAX_ALLOW_HOSTS);
				return 2;
			}
			o->allow_hosts[o->n_allow_hosts++] = optarg;
			break;
		case O_MAX_VALUE:
			if (gwm_parse_int("--max-value-bytes", optarg, 1,
			        GW_MAX_VALUE_BYTES_HARD,
			        &o->max_value_bytes) != 0) {
				return 2;
			}
			break;
		case O_TIMEOUT:
			if (gwm_parse_int("--timeout-ms", optarg, 1,
			        GW_RPC_TIMEOUT_HARD_MS, &o->timeout_ms) != 0) {
				return 2;
			}
			break;
		case O_HTTP_CONNS:
			if (gwm_parse_int("--http-max-connections", optarg, 1,
			        GW_MAX_CONNECTIONS_HARD, &o->max_conns) != 0) {
				return 2;
			}
			break;
		case O_HTTP_PER_IP:
			if (gwm_parse_int("--http-max-per-ip", optarg, 1,
			        GW_MAX_PER_IP_HARD, &o->max_per_ip) != 0) {
				return 2;
			}
			break;
		case O_HTTP_TIMEOUT:
			if (gwm_parse_int("--http-timeout", optarg, 1,
			        GW_TIMEOUT_S_HARD, &o->http_timeout) != 0) {
				return 2;
			}
			break;
		case O_HTTP_BUDGET:
			if (gwm_parse_int("--http-body-budget", optarg, 1,
			        (long long) GW_BODY_BUDGET_HARD, &o->budget) != 0) {
				return 2;
			}
			break;
		case O_SSE_STREAMS:
			if (gwm_parse_int("--max-sse-streams", optarg, 1,
			        GW_SSE_MAX_STREAMS_HARD, &o->max_streams) != 0) {
				return 2;
			}
			break;
		case O_SSE_HEARTBEAT:
			if (gwm_parse_int("--sse-heartbeat-ms", optarg,
			        GW_SSE_HEARTBEAT_MS_MIN, GW_SSE_HEARTBEAT_MS_MAX,
			        &o->heartbeat_ms) != 0) {
				return 2;
			}
			break;
		case O_TLS_CERT:
			o->tls_cert = optarg;
			break;
		case O_TLS_KEY:
			o->tls_key = optarg;
			break;
		case O_UPSTREAM_TLS_CA:
			o->upstream_ca = optarg;
			break;
		case O_QUIET:
			o->quiet = true;
			break;
		case O_INSECURE:
			o->insecure_no_auth = true;
			break;
		case O_HELP:
		case 'h':
			fputs(gwm_usage, stdout);
			return 1;
		default:
			fprintf(stderr,
			    "datasync-gateway: unknown or incomplete option "
			    "'%s'\n"
			    "try 'datasync-gateway --help'\n",
			    argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "datasync-gateway: unexpected argument '%s'\n",
		    argv[optind]);
		return 2;
	}
	if (o->n_upstreams == 0) {
		fprintf(stderr,
		    "datasync-gateway: --upstream URL is required\n"
		    "try 'datasync-gateway --help'\n");
		return 2;
	}
	return 0;
}

/* gwm_upstream_requires_auth asks one upstream (WhoAmI, its own
 * short-lived client, dialled blocking so an absent server fails now).
 * 0: it requires tokens; 1: it does not (or has no WhoAmI: an older
 * datasyncd, which has no authentication either); -1: it cannot be asked
 * (st says why). */
static int
gwm_upstream_requires_auth(const gwm_opts *o, const char *url,
    nrpc_status *st)
{
	Datasync__V1__WhoAmIRequest req = DATASYNC__V1__WHO_AM_IREQUEST__INIT;
	Datasync__V1__WhoAmIResponse *resp = NULL;
	nrpc_client_config ccfg;
	nrpc_client *c = NULL;
	nrpc_call_opts co;
	int rc = -1;

	nrpc_client_config_default(&ccfg);
	ccfg.urls = &url;
	ccfg.n_urls = 1;
	ccfg.timeout_ms = GWM_PROTECT_TIMEOUT_MS;
	ccfg.client_name = "datasync-gateway";
	ccfg.dial_blocking = true;
	ccfg.tls_ca_file = o->upstream_ca;
	memset(&co, 0, sizeof(co));
	co.timeout_ms = GWM_PROTECT_TIMEOUT_MS;
	if (nrpc_client_open(&ccfg, &c, st) != NRPC_OK) {
		goto done;
	}
	switch (datasync_v1_data_sync_who_am_i(c, &req, &resp, &co, st)) {
	case NRPC_OK:
		rc = resp->auth_required ? 0 : 1;
		datasync__v1__who_am_iresponse__free_unpacked(resp, NULL);
		break;
	case NRPC_UNIMPLEMENTED:
		rc = 1;
		break;
	default:
		break;
	}
done:
	nrpc_client_close(c);
	return rc;
}

/* gwm_protected: protected mode (DESIGN §11) for the standalone gateway.
 * datasyncd cannot see that a gateway in front of its ipc:// or loopback
 * socket serves it to the network, so the gateway refuses (2) a
 * non-loopback --http address unless every upstream requires tokens, or
 * --insecure-no-auth says to serve it open. */
static int
gwm_protected(const gwm_opts *o)
{
	nrpc_status st;
	int rc = 0;

	if (o->insecure_no_auth || ds_hostport_loopback(o->http)) {
		return 0;
	}
	memset(&st, 0, sizeof(st));
	for (size_t i = 0; i < o->n_upstreams && rc == 0; i++) {
		switch (gwm_upstream_requires_auth(o, o->upstreams[i], &st)) {
		case 0:
			break;
		case 1:
			fprintf(stderr,
			    "datasync-gateway: protected mode: --http %s is "
			    "reachable beyond this machine and upstream %s does "
			    "not require tokens (auth_required is false), so "
			    "nobody would be asked for one; run datasyncd with "
			    "--auth (or --bootstrap-token-file FILE), or add "
			    "--insecure-no-auth here to serve it open\n",
			    o->http, o->upstreams[i]);
			rc = 2;
			break;
		default:
			fprintf(stderr,
			    "datasync-gateway: protected mode: --http %s is "
			    "reachable beyond this machine and the gateway cannot "
			    "verify that upstream %s requires tokens (WhoAmI: "
			    "%s); start it first, run datasyncd with --auth, or "
			    "add --insecure-no-auth here to serve it open\n",
			    o->http, o->upstreams[i],
			    st.message[0] != '\0' ? st.message : "no answer");
			rc = 2;
			break;
		}
		nrpc_status_fini(&st);
	}
	return rc;
}

int
main(int argc, char **argv)
{
	gwm_opts o;
	gw_config cfg;
	gw_server *gw = NULL;
	nrpc_status st;
	sigset_t sigs;
	int sig;

	switch (gwm_parse(argc, argv, &o)) {
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
	if (gwm_protected(&o) != 0) {
		return 2;
	}
	/* Threads created from here on inherit the blocked signals; main
	 * alone receives them in sigwait. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&st, 0, sizeof(st));
	gw_config_default(&cfg);
	cfg.upstreams = o.upstreams;
	cfg.n_upstreams = o.n_upstreams;
	cfg.http = o.http;
	cfg.web_root = o.web_root;
	cfg.cors_origins = o.cors;
	cfg.n_cors_origins = o.n_cors;
	cfg.allow_hosts = o.allow_hosts;
	cfg.n_allow_hosts = o.n_allow_hosts;
	cfg.max_value_bytes = (size_t) o.max_value_bytes;
	cfg.rpc_timeout_ms = o.timeout_ms;
	cfg.max_connections = (unsigned) o.max_conns;
	cfg.max_per_ip = (unsigned) o.max_per_ip;
	cfg.timeout_s = (unsigned) o.http_timeout;
	cfg.body_budget = (size_t) o.budget;
	cfg.max_sse_streams = (unsigned) o.max_streams;
	cfg.sse_heartbeat_ms = o.heartbeat_ms;
	cfg.tls_cert_file = o.tls_cert;
	cfg.tls_key_file = o.tls_key;
	cfg.upstream_tls_ca_file = o.upstream_ca;
	if (gw_start(&cfg, &gw, &st) != NRPC_OK) {
		fprintf(stderr, "datasync-gateway: %s\n", st.message);
		nrpc_status_fini(&st);
		return 1;
	}
	for (size_t i = 0; i < o.n_upstreams; i++) {
		printf("datasync-gateway: upstream %s\n", o.upstreams[i]);
	}
	{
		/* With port 0 the kernel picked one: show that one. */
		const char *colon = strrchr(o.http, ':');
		int hlen = colon != NULL ? (int) (colon - o.http)
		                         : (int) strlen(o.http);

		printf("datasync-gateway: listening on %s://%.*s:%d/\n",
		    o.tls_cert != NULL ? "https" : "http", hlen, o.http,
		    gw_port(gw));
	}
	fflush(stdout);

	do {
		if (sigwait(&sigs, &sig) != 0) {
			sig = SIGTERM;
		}
	} while (sig != SIGINT && sig != SIGTERM);
	printf("datasync-gateway: %s received, shutting down\n",
	    sig == SIGINT ? "SIGINT" : "SIGTERM");
	fflush(stdout);
	gw_stop(gw);
	nrpc_status_fini(&st);
	return 0;
}

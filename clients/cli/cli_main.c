/*
 * cli_main.c - the `datasync` command: flags, dispatch, output and exit
 * codes (DESIGN §7).
 *
 * stdout carries results only (a raw value, a token, a table, or JSON);
 * errors go to stderr as one line with the reason. Exit codes: 0 ok,
 * 1 error, 2 usage, 3 conflict (watch: cursor compacted), 4 locked,
 * 5 not found, 6 not authenticated or not allowed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ds_alloc.h"
#include "ds_text.h"
#include "ds_buf.h"
#include "pbjson.h"

static const char cli_usage[] =
    "usage: datasync [--url URL]... [--timeout DUR] [--json] COMMAND ...\n"
    "\n"
    "Commands:\n"
    "  get KEY [--version N]              print the value (raw) to stdout\n"
    "  put KEY [--value V] PRECONDITION   write stdin or --value\n"
    "      [--content-type T] [--lock-token T] [--author A]\n"
    "  delete KEY PRECONDITION [--lock-token T]\n"
    "  lock KEY --owner O [--ttl 30s] [--lock-token T] [--wait DUR]\n"
    "                                     take (or renew) a lease; prints "
    "the token\n"
    "  unlock KEY --lock-token T\n"
    "  list [--prefix P] [--page-size N] [--page-token T] [--all]\n"
    "  watch [--prefix P | --key K] [--after N] [--values]\n"
    "                                     one line per change until "
    "interrupted\n"
    "  whoami                             the server's auth mode and the\n"
    "                                     token's name and grants\n"
    "  token create NAME --grant G...     make a token (needs admin); G is\n"
    "                                     read:PREFIX, write:PREFIX,\n"
    "                                     lock:PREFIX or admin; prints the\n"
    "                                     secret alone, once\n"
    "  token list | token revoke NAME     (need admin)\n"
    "  bench [--op OP] [--concurrency N] [--duration DUR] ...\n"
    "                                     load generator and baselines;\n"
    "                                     see 'datasync bench --help'\n"
    "\n"
    "PRECONDITION is one of: --if-version N, --if-absent (create only),\n"
    "--if-exists (any version), --force (unconditional overwrite).\n"
    "\n"
    "Global options:\n"
    "  --url URL        service address, repeat for several\n"
    "                   (default " DATASYNC_DEFAULT_URL ")\n"
    "  --timeout DUR    per-call deadline, e.g. 500ms, 5s (default 10s)\n"
    "  --json           print the whole reply as proto3 JSON\n"
    "  --request-id ID  idempotency key for a write (default: generated)\n"
    "  --tls-ca FILE    PEM CA that signed the server's certificate, for\n"
    "                   tls+tcp:// URLs (default $DATASYNC_TLS_CA); name\n"
    "                   the host as the certificate does (localhost)\n"
    "  --tls-cert FILE, --tls-key FILE\n"
    "                   a client certificate, for servers that ask for one\n"
    "  --token T        bearer token for a server run with --auth\n"
    "                   (default $DATASYNC_TOKEN); prefer the variable: a\n"
    "                   flag shows in ps\n"
    "\n"
    "Exit codes: 0 ok (watch: interrupted by SIGINT/SIGTERM), 1 error\n"
    "(unreachable, timeout, bad reply), 2 usage, 3 conflict (watch: the\n"
    "--after revision was compacted), 4 locked, 5 not found, 6 no valid\n"
    "token (UNAUTHENTICATED, TOO_MANY_AUTH_FAILURES) or the token lacks\n"
    "the right (PERMISSION_DENIED).\n";

static const struct {
	const char *cmd;
	const char *help;
} cli_cmd_help[] = {
    {"get", "usage: datasync get KEY [--version N] [--json]\n"
            "Print the value of KEY to stdout, raw (nothing else goes to\n"
            "stdout). --version N reads an older version from the history.\n"
            "--json prints the whole record as proto3 JSON instead.\n"},
    {"put", "usage: datasync put KEY PRECONDITION [--value V] "
            "[--content-type T]\n"
            "                    [--lock-token T] [--author A] [--json]\n"
            "Write --value, or stdin when --value is absent, to KEY.\n"
            "PRECONDITION (required): --if-version N | --if-absent |\n"
            "--if-exists | --force. On a conflict (exit 3) the current\n"
            "version is reported on stderr. Prints 'KEY: version N';\n"
            "--json prints the UpdateResponse, whose record has no value\n"
            "(the server does not echo the value it was sent).\n"},
    {"delete", "usage: datasync delete KEY PRECONDITION [--lock-token T] "
               "[--json]\n"
               "Delete KEY (a tombstone keeps its version from being "
               "reused).\n"},
    {"lock", "usage: datasync lock KEY --owner O [--ttl DUR] [--lock-token "
             "T] [--json]\n"
             "Take a leased lock on KEY (default ttl 30s, 1s..1h) and print\n"
             "its secret token alone on stdout. With --lock-token, renew\n"
             "the lease held with that token. Exit 4 when someone else\n"
             "holds it (owner and expiry on stderr). With a token (--token,\n"
             "$DATASYNC_TOKEN) the owner is the token's name and --owner may\n"
             "be left out.\n"
             "--wait DUR (at most 60s): when someone else holds it, wait in\n"
             "line up to DUR for it to be released or to expire; waiters\n"
             "get it in arrival order. Exit 4 if it is still held then.\n"},
    {"unlock", "usage: datasync unlock KEY --lock-token T [--json]\n"
               "Release the lock held with token T.\n"},
    {"list", "usage: datasync list [--prefix P] [--page-size N] "
             "[--page-token T] [--all] [--json]\n"
             "Print one line per key: key, version, revision, updated_at,\n"
             "lock owner and expiry. Without --all, one page; the next\n"
             "page's token goes to stderr.\n"},
    {"watch",
        "usage: datasync watch [--prefix P | --key K] [--after N] [--values] "
        "[--json]\n"
        "Print one line per change to the keys under P (default: every\n"
        "key), or to the key K, in revision order, until interrupted:\n"
        "  rev 12 put ticket/1 v5 by alice\n"
        "  rev 13 lock ticket/1 by bob until 2026-12-02T12:00:03.000Z\n"
        "  rev 14 unlock ticket/1\n"
        "  rev 15 expire ticket/1            (a lease ran out)\n"
        "  rev 16 delete ticket/1 v6 by alice\n"
        "--after N starts after revision N (default: from now; 0 is\n"
        "everything the change log keeps, e.g. after a list of an empty\n"
        "store); to resume, pass the last revision printed. --values adds each\n"
        "value (escaped) to the line. --json prints each event as one\n"
        "line of proto3 JSON (datasync.v1.Event) instead.\n"
        "Exit codes: 0 after SIGINT or SIGTERM; 3 when revision N is\n"
        "older than the server's change log keeps (REVISION_COMPACTED:\n"
        "read the keys again, e.g. 'datasync --json list', and watch\n"
        "with --after the revision that read returned); 1 when the\n"
        "server cannot be reached within --timeout (a server restart\n"
        "inside it is ridden out); 2 usage.\n"},
};

static void
cli_print_cmd_help(const char *cmd)
{
	for (size_t i = 0; i < sizeof(cli_cmd_help) / sizeof(cli_cmd_help[0]);
	     i++) {
		if (strcmp(cli_cmd_help[i].cmd, cmd) == 0) {
			fputs(cli_cmd_help[i].help, stdout);
			return;
		}
	}
	fputs(cli_usage, stdout);
}

int
cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("datasync: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\ntry 'datasync --help'\n", stderr);
	return CLI_EXIT_USAGE;
}

/* --- output --- */

void
cli_format_time(int64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t) (ms / 1000);
	struct tm tm;

	if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
		(void) snprintf(buf, cap, "-");
		return;
	}
	(void) snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (int) (ms % 1000));
}

int
cli_print_json(const ProtobufCMessage *msg)
{
	pbjson_options o;
	pbjson_error err;
	char *text = NULL;
	size_t len = 0;

	memset(&o, 0, sizeof(o));
	memset(&err, 0, sizeof(err));
	if (pbjson_encode(msg, &o, &text, &len, &err) != PBJSON_OK) {
		fprintf(stderr, "datasync: cannot print JSON: %s\n", err.message);
		return CLI_EXIT_ERROR;
	}
	fwrite(text, 1, len, stdout);
	fputc('\n', stdout);
	ds_free(text);
	return CLI_EXIT_OK;
}

int
cli_exit_for(const nrpc_status *st)
{
	if (strcmp(st->reason, "VERSION_CONFLICT") == 0) {
		return CLI_EXIT_CONFLICT;
	}
	if (strcmp(st->reason, "LOCKED") == 0 ||
	    strcmp(st->reason, "LOCK_EXPIRED") == 0) {
		return CLI_EXIT_LOCKED;
	}
	if (st->code == NRPC_NOT_FOUND) {
		return CLI_EXIT_NOT_FOUND;
	}
	if (st->code == NRPC_UNAUTHENTICATED ||
	    strcmp(st->reason, "PERMISSION_DENIED") == 0 ||
	    strcmp(st->reason, "TOO_MANY_AUTH_FAILURES") == 0) {
		return CLI_EXIT_AUTH;
	}
	return CLI_EXIT_ERROR;
}

int
cli_fail(const nrpc_status *st)
{
	Datasync__V1__Record *rec = NULL;
	const char *reason =
	    st->reason[0] != '\0' ? st->reason : nrpc_code_name(st->code);

	fprintf(stderr, "datasync: %s: %s", reason, st->message);
	if (datasync_status_record(st, &rec) == NRPC_OK) {
		char when[40];

		if (rec->lock != NULL && strcmp(reason, "LOCKED") == 0) {
			cli_format_time(rec->lock->expires_at_ms, when, sizeof(when));
			/* The message names the holder; add the expiry in a form
			 * people read. */
			fprintf(stderr, " (expires %s)", when);
		} else if (rec->deleted) {
			fprintf(stderr, " (current: deleted at version %" PRIu64 ")",
			    rec->version);
		} else if (rec->version == 0) {
			fprintf(stderr, " (current: absent)");
		} else {
			cli_format_time(rec->updated_at_ms, when, sizeof(when));
			fprintf(stderr, " (current version %" PRIu64 ", written %s%s%s)",
			    rec->version, when, rec->updated_by[0] ? " by " : "",
			    rec->updated_by);
		}
		datasync__v1__record__free_unpacked(rec, NULL);
	}
	fputc('\n', stderr);
	return cli_exit_for(st);
}

/* --- main --- */

int
main(int argc, char **argv)
{
	enum { O_URL = 1, O_TIMEOUT, O_JSON, O_VALUE, O_CTYPE, O_IF_VERSION,
		O_IF_ABSENT, O_IF_EXISTS, O_FORCE, O_TOKEN, O_OWNER, O_TTL,
		O_VERSION, O_PREFIX, O_PAGE_SIZE, O_PAGE_TOKEN, O_ALL,
		O_REQUEST_ID, O_AUTHOR, O_KEY, O_AFTER, O_VALUES, O_WAIT,
		O_TLS_CA, O_TLS_CERT, O_TLS_KEY, O_AUTH_TOKEN, O_GRANT, O_HELP };
	static const struct option longopts[] = {
	    {"url", required_argument, NULL, O_URL},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"json", no_argument, NULL, O_JSON},
	    {"value", required_argument, NULL, O_VALUE},
	    {"content-type", required_argument, NULL, O_CTYPE},
	    {"if-version", required_argument, NULL, O_IF_VERSION},
	    {"if-absent", no_argument, NULL, O_IF_ABSENT},
	    {"if-exists", no_argument, NULL, O_IF_EXISTS},
	    {"force", no_argument, NULL, O_FORCE},
	    {"lock-token", required_argument, NULL, O_TOKEN},
	    {"owner", required_argument, NULL, O_OWNER},
	    {"ttl", required_argument, NULL, O_TTL},
	    {"version", required_argument, NULL, O_VERSION},
	    {"prefix", required_argument, NULL, O_PREFIX},
	    {"page-size", required_argument, NULL, O_PAGE_SIZE},
	    {"page-token", required_argument, NULL, O_PAGE_TOKEN},
	    {"all", no_argument, NULL, O_ALL},
	    {"request-id", required_argument, NULL, O_REQUEST_ID},
	    {"author", required_argument, NULL, O_AUTHOR},
	    {"key", required_argument, NULL, O_KEY},
	    {"after", required_argument, NULL, O_AFTER},
	    {"values", no_argument, NULL, O_VALUES},
	    {"wait", required_argument, NULL, O_WAIT},
	    {"tls-ca", required_argument, NULL, O_TLS_CA},
	    {"tls-cert", required_argument, NULL, O_TLS_CERT},
	    {"tls-key", required_argument, NULL, O_TLS_KEY},
	    {"token", required_argument, NULL, O_AUTH_TOKEN},
	    {"grant", required_argument, NULL, O_GRANT},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	cli_args a;
	int c;
	int n_pre = 0;
	bool help = false;
	const char *cmd;
	uint64_t u;

	/* bench has flags of its own: it parses them itself. */
	if (argc > 1 && strcmp(argv[1], "bench") == 0) {
		return cli_bench_main(argc, argv);
	}
	memset(&a, 0, sizeof(a));
	a.timeout_ms = 10000;
	a.tls_ca = getenv("DATASYNC_TLS_CA");
	if (a.tls_ca != NULL && a.tls_ca[0] == '\0') {
		a.tls_ca = NULL;
	}
	a.token = getenv("DATASYNC_TOKEN");
	if (a.token != NULL && a.token[0] == '\0') {
		a.token = NULL;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_TLS_CA:
			a.tls_ca = optarg;
			break;
		case O_TLS_CERT:
			a.tls_cert = optarg;
			break;
		case O_AUTH_TOKEN:
			a.token = optarg[0] != '\0' ? optarg : NULL;
			break;
		case O_GRANT:
			if (a.n_grants == sizeof(a.grants) / sizeof(a.grants[0])) {
				return cli_usage_error("at most %zu --grant",
				    sizeof(a.grants) / sizeof(a.grants[0]));
			}
			a.grants[a.n_grants++] = optarg;
			break;
		case O_TLS_KEY:
			a.tls_key = optarg;
			break;
		case O_URL:
			if (a.n_urls == CLI_MAX_URLS) {
				return cli_usage_error("at most %d --url", CLI_MAX_URLS);
			}
			a.urls[a.n_urls++] = optarg;
			break;
		case O_TIMEOUT:
			if (ds_parse_duration_ms(optarg, &a.timeout_ms) != 0 ||
			    a.timeout_ms <= 0) {
				return cli_usage_error(
				    "--timeout wants a duration like 500ms or 5s, got "
				    "'%s'", optarg);
			}
			break;
		case O_JSON:
			a.json = true;
			break;
		case O_VALUE:
			a.value = optarg;
			break;
		case O_CTYPE:
			a.content_type = optarg;
			break;
		case O_IF_VERSION:
			if (ds_parse_u64(optarg, &a.if_version) != 0 ||
			    a.if_version == 0) {
				return cli_usage_error(
				    "--if-version wants a version >= 1, got '%s'", optarg);
			}
			a.precond = CLI_PRE_IF_VERSION;
			n_pre++;
			break;
		case O_IF_ABSENT:
			a.precond = CLI_PRE_IF_ABSENT;
			n_pre++;
			break;
		case O_IF_EXISTS:
			a.precond = CLI_PRE_IF_EXISTS;
			n_pre++;
			break;
		case O_FORCE:
			a.precond = CLI_PRE_FORCE;
			n_pre++;
			break;
		case O_TOKEN:
			a.lock_token = optarg;
			break;
		case O_OWNER:
			a.owner = optarg;
			break;
		case O_TTL:
			if (ds_parse_duration_ms(optarg, &a.ttl_ms) != 0) {
				return cli_usage_error(
				    "--ttl wants a duration like 30s or 5m, got '%s'",
				    optarg);
			}
			break;
		case O_VERSION:
			if (ds_parse_u64(optarg, &a.version) != 0) {
				return cli_usage_error(
				    "--version wants a number, got '%s'", optarg);
			}
			break;
		case O_PREFIX:
			a.prefix = optarg;
			break;
		case O_PAGE_SIZE:
			if (ds_parse_u64(optarg, &u) != 0 || u > UINT32_MAX) {
				return cli_usage_error(
				    "--page-size wants a number, got '%s'", optarg);
			}
			a.page_size = (uint32_t) u;
			break;
		case O_PAGE_TOKEN:
			a.page_token = optarg;
			break;
		case O_ALL:
			a.all = true;
			break;
		case O_REQUEST_ID:
			a.request_id = optarg;
			break;
		case O_AUTHOR:
			a.author = optarg;
			break;
		case O_KEY:
			a.watch_key = optarg;
			break;
		case O_AFTER:
			if (ds_parse_u64(optarg, &a.after) != 0) {
				return cli_usage_error(
				    "--after wants a revision number, got '%s'", optarg);
			}
			a.has_after = true;
			break;
		case O_VALUES:
			a.values = true;
			break;
		case O_WAIT:
			if (ds_parse_duration_ms(optarg, &a.wait_ms) != 0 ||
			    a.wait_ms < 0 || a.wait_ms > CLI_LOCK_WAIT_MAX_MS) {
				return cli_usage_error(
				    "--wait wants a duration from 0 to 60s (wait_ms "
				    "at most %d), got '%s'",
				    CLI_LOCK_WAIT_MAX_MS, optarg);
			}
			break;
		case O_HELP:
		case 'h':
			help = true;
			break;
		default:
			return cli_usage_error("unknown or incomplete option '%s'",
			    argv[optind - 1]);
		}
	}
	if (optind >= argc) {
		if (help) {
			fputs(cli_usage, stdout);
			return CLI_EXIT_OK;
		}
		return cli_usage_error("missing command");
	}
	cmd = argv[optind++];
	if (help) {
		cli_print_cmd_help(cmd);
		return CLI_EXIT_OK;
	}
	if (n_pre > 1) {
		return cli_usage_error("give one precondition: --if-version, "
		                       "--if-absent, --if-exists or --force");
	}
	if (a.n_urls == 0) {
		a.urls[a.n_urls++] = DATASYNC_DEFAULT_URL;
	}
	a.args = (const char *const *) argv + optind;
	a.n_args = (size_t) (argc - optind);
	return cli_run(cmd, &a);
}

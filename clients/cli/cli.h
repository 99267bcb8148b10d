/*
 * cli.h - private to the `datasync` command: parsed arguments and the
 * helpers shared by its commands.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasync.h"

#define CLI_MAX_URLS 16
/* Largest value read from stdin: the server's hard maximum, so the
 * server, not the CLI, names the configured limit. */
#define CLI_MAX_STDIN_BYTES (64u * 1024 * 1024)

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_CONFLICT = 3,
	CLI_EXIT_LOCKED = 4,
	CLI_EXIT_NOT_FOUND = 5,
	/* watch: the --after cursor is older than the change log keeps
	 * (REVISION_COMPACTED). Shares 3 with a conflict: in both cases the
	 * caller's view is stale and must be read again. */
	CLI_EXIT_COMPACTED = 3,
	/* the server wants a (valid) token: UNAUTHENTICATED, or too many
	 * bad ones from here (TOO_MANY_AUTH_FAILURES); or the token lacks
	 * the right: PERMISSION_DENIED (not LOCK_TOKEN_MISMATCH, which is a
	 * lock's secret, not the caller's: 1) */
	CLI_EXIT_AUTH = 6,
};

/* One Watch call waits this long for an event before the server answers
 * with a progress reply: the server's default, and below libdatasync's
 * REQ resend time (90 s) so a parked call is never resent while it
 * waits. */
#define CLI_WATCH_WAIT_MS 30000u
/* Largest --wait for lock: the server's bound (DESIGN §9), checked there
 * too; refused here as a usage error before anything is sent. */
#define CLI_LOCK_WAIT_MAX_MS 60000

typedef enum cli_precond {
	CLI_PRE_NONE = 0,
	CLI_PRE_IF_VERSION,
	CLI_PRE_IF_ABSENT,
	CLI_PRE_IF_EXISTS,
	CLI_PRE_FORCE,
} cli_precond;

/* cli_args: every flag of every command; pointers borrow argv. */
typedef struct cli_args {
	const char *urls[CLI_MAX_URLS];
	size_t n_urls;
	int64_t timeout_ms;
	bool json;
	const char *value;
	const char *content_type;
	cli_precond precond;
	uint64_t if_version;
	const char *lock_token;
	const char *owner;
	int64_t ttl_ms;
	uint64_t version;
	const char *prefix;
	uint32_t page_size;
	const char *page_token;
	bool all;
	const char *request_id;
	const char *author;
	const char *watch_key;  /* watch --key */
	uint64_t after;         /* watch --after N */
	bool has_after;         /* --after given (0 included); else from now */
	bool values;            /* watch --values */
	int64_t wait_ms;        /* lock --wait */
	const char *tls_ca;     /* --tls-ca or $DATASYNC_TLS_CA */
	const char *tls_cert;   /* --tls-cert */
	const char *tls_key;    /* --tls-key */
	const char *token;      /* --token or $DATASYNC_TOKEN */
	const char *grants[64]; /* token create --grant G (AUTH_GRANTS_MAX) */
	size_t n_grants;
	const char *const *args; /* positional arguments after the command */
	size_t n_args;
} cli_args;

/* cli_run runs cmd and returns the process exit code. */
int cli_run(const char *cmd, const cli_args *a);

/* cli_watch runs `datasync watch` (cli_watch.c): Watch calls in a loop,
 * one line per event, until SIGINT or SIGTERM (exit 0) or an error (its
 * exit code; CLI_EXIT_COMPACTED for REVISION_COMPACTED). *cp as for every
 * command: closed by cli_run. */
int cli_watch(datasync_client **cp, const cli_args *a, const char *key,
    nrpc_status *st);

/* cli_auth_run runs `datasync whoami` and `datasync token ...`
 * (cli_auth.c); *cp as for every command. */
int cli_auth_run(datasync_client **cp, const char *cmd, const cli_args *a,
    nrpc_status *st);

/* cli_bench_main runs `datasync bench ...` (argv[1] is "bench") by exec-ing
 * datasync-bench from this executable's directory with what follows; it
 * returns only if that fails, with the exit code (cli_bench.c). */
int cli_bench_main(int argc, char **argv);

/* cli_connect dials the service into *cp (closed by cli_run, also on
 * failure). Returns 0 or the exit code of the failure (already reported
 * on stderr). */
int cli_connect(datasync_client **cp, const cli_args *a, nrpc_status *st);

/* cli_usage_error prints "datasync: <msg>" and a hint; returns 2. */
int cli_usage_error(const char *fmt, ...) DS_PRINTF(1, 2);

/* cli_fail prints st as one line on stderr (with the current record of a
 * conflict or the holder of a lock) and returns the exit code for it. */
int cli_fail(const nrpc_status *st);

/* cli_exit_for maps a status to an exit code without printing. */
int cli_exit_for(const nrpc_status *st);

/* cli_print_json prints msg as proto3 JSON and a newline on stdout. */
int cli_print_json(const ProtobufCMessage *msg);

/* cli_format_time writes ms since the epoch as ISO 8601 UTC, or "-". */
void cli_format_time(int64_t ms, char *buf, size_t cap);

#endif /* CLI_H */

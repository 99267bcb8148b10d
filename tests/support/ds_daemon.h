/*
 * ds_daemon.h - start and stop a real datasyncd for integration tests.
 *
 * Each daemon gets its own temporary directory (database, ipc socket) and
 * free TCP ports, so tests can run in parallel. The binary's path comes
 * from the DATASYNCD environment variable or the compile-time
 * DS_DATASYNCD_PATH.
 */
#ifndef DS_DAEMON_H
#define DS_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct ds_daemon {
	pid_t pid;
	char dir[256];      /* temporary directory, removed by fini */
	char db[300];       /* dir/datasync.db */
	char ipc_url[320];  /* ipc://dir/ds.sock */
	char tcp_url[64];   /* tcp://127.0.0.1:<port> */
	int http_port;      /* 0 when started with --http off */
	char http_addr[64]; /* 127.0.0.1:<port> */
	char log[300];      /* dir/datasyncd.log: its stdout and stderr */
} ds_daemon;

/* ds_daemon_start creates the directory and ports, starts datasyncd with
 * them plus extra arguments (NULL-terminated, may be NULL), and waits up
 * to 10 s until it prints that it listens. http = false passes --http off.
 * Returns 0, or -1 with a message on stderr. */
int ds_daemon_start(ds_daemon *d, bool http, const char *const *extra);

/* ds_daemon_restart starts the daemon again on the same directory,
 * database and addresses (after a stop or a kill). */
int ds_daemon_restart(ds_daemon *d, bool http, const char *const *extra);

/* ds_daemon_stop sends SIGTERM and waits; returns the exit status (0 on a
 * clean shutdown), or -1 if it had to be killed after 20 s. */
int ds_daemon_stop(ds_daemon *d);

/* ds_daemon_failures returns how many ds_daemon_stop calls in this
 * process did not end in exit status 0 (a leak reported by LSan in a
 * sanitizer build, a crash, a hang at shutdown); each one also printed
 * the end of the daemon's log to stderr. cmocka 1.1.5 reports a failed
 * group teardown but does not count it in cmocka_run_group_tests()'s
 * result, so every integration test's main returns
 *   cmocka_run_group_tests(...) + ds_daemon_failures()
 * and a daemon that leaks fails the test. */
int ds_daemon_failures(void);

/* ds_daemon_kill9 kills the daemon with SIGKILL and reaps it. */
void ds_daemon_kill9(ds_daemon *d);

/* ds_daemon_alive is true while the process runs. */
bool ds_daemon_alive(ds_daemon *d);

/* ds_daemon_rss_kib returns the daemon's resident set size, or -1. */
long ds_daemon_rss_kib(const ds_daemon *d);

/* ds_pid_rss_kib returns any process's resident set size (VmRSS), or -1. */
long ds_pid_rss_kib(long pid);

/* ds_daemon_fini stops the daemon if it still runs and removes the
 * directory (unless DS_KEEP_TMP is set, for post-mortems). */
void ds_daemon_fini(ds_daemon *d);

#endif /* DS_DAEMON_H */

/*
 * ds_daemon.c - spawn, watch and stop datasyncd for integration tests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ds_daemon.h"
#include "ds_test.h"

extern char **environ;

#ifndef DS_DATASYNCD_PATH
#define DS_DATASYNCD_PATH "datasyncd"
#endif

/* ds_daemon_ready: the log says it listens on every address. */
static bool
ds_daemon_ready(const ds_daemon *d, bool http)
{
	char buf[8192];
	FILE *f = fopen(d->log, "r");
	size_t n;
	bool ok;

	if (f == NULL) {
		return false;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	ok = strstr(buf, d->tcp_url) != NULL && strstr(buf, d->ipc_url) != NULL;
	if (http) {
		ok = ok && strstr(buf, "gateway") != NULL;
	}
	return ok;
}

static int
ds_daemon_spawn(ds_daemon *d, bool http, const char *const *extra)
{
	const char *bin = getenv("DATASYNCD");
	const char *argv[64];
	char http_arg[64];
	size_t n = 0;
	posix_spawn_file_actions_t fa;
	int rv;

	if (bin == NULL || bin[0] == '\0') {
		bin = DS_DATASYNCD_PATH;
	}
	argv[n++] = bin;
	argv[n++] = "--db";
	argv[n++] = d->db;
	argv[n++] = "--listen";
	argv[n++] = d->ipc_url;
	argv[n++] = "--listen";
	argv[n++] = d->tcp_url;
	argv[n++] = "--http";
	if (http) {
		(void) snprintf(http_arg, sizeof(http_arg), "%s", d->http_addr);
		argv[n++] = http_arg;
	} else {
		argv[n++] = "off";
	}
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 62; i++) {
		argv[n++] = extra[i];
	}
	argv[n] = NULL;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, d->log,
	    O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
	rv = posix_spawn(&d->pid, bin, &fa, NULL, (char *const *) argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rv != 0) {
		fprintf(stderr, "ds_daemon: cannot start %s: %s\n", bin,
		    strerror(rv));
		d->pid = 0;
		return -1;
	}
	for (int i = 0; i < 1000; i++) {
		if (ds_daemon_ready(d, http)) {
			return 0;
		}
		if (!ds_daemon_alive(d)) {
			break;
		}
		ds_test_sleep_ms(10);
	}
	fprintf(stderr, "ds_daemon: %s did not come up; its log (%s):\n", bin,
	    d->log);
	{
		char cmd[400];

		(void) snprintf(cmd, sizeof(cmd), "cat '%s' >&2", d->log);
		(void) !system(cmd);
	}
	ds_daemon_kill9(d);
	return -1;
}

#define DS_DAEMON_START_ATTEMPTS 5

/* ds_daemon_log_has: the daemon's log contains text. */
static bool
ds_daemon_log_has(const ds_daemon *d, const char *text)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(d->log, "r");

	if (f == NULL) {
		return false;
	}
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		found = strstr(line, text) != NULL;
	}
	fclose(f);
	return found;
}

int
ds_daemon_start(ds_daemon *d, bool http, const char *const *extra)
{
	int tcp;

	memset(d, 0, sizeof(*d));
	if (ds_test_tmpdir(d->dir, sizeof(d->dir)) != 0) {
		fprintf(stderr, "ds_daemon: cannot create a temp dir\n");
		return -1;
	}
	(void) snprintf(d->db, sizeof(d->db), "%s/datasync.db", d->dir);
	(void) snprintf(d->ipc_url, sizeof(d->ipc_url), "ipc://%s/ds.sock",
	    d->dir);
	(void) snprintf(d->log, sizeof(d->log), "%s/datasyncd.log", d->dir);
	/* A port free when picked can be taken before the daemon binds it
	 * (another test's outgoing connection gets it as its ephemeral
	 * port): on "Address in use", pick again. */
	for (int attempt = 1;; attempt++) {
		FILE *f;

		if ((tcp = ds_free_port()) < 0) {
			return -1;
		}
		(void) snprintf(d->tcp_url, sizeof(d->tcp_url),
		    "tcp://127.0.0.1:%d", tcp);
		if (http) {
			do {
				d->http_port = ds_free_port();
			} while (d->http_port == tcp);
			(void) snprintf(d->http_addr, sizeof(d->http_addr),
			    "127.0.0.1:%d", d->http_port);
		}
		if (ds_daemon_spawn(d, http, extra) == 0) {
			return 0;
		}
		if (attempt == DS_DAEMON_START_ATTEMPTS || !ds_daemon_log_has(d,
		        "Address in use")) {
			return -1;
		}
		fprintf(stderr, "ds_daemon: a port was taken; trying others\n");
		if ((f = fopen(d->log, "w")) != NULL) {
			fclose(f);
		}
	}
}

int
ds_daemon_restart(ds_daemon *d, bool http, const char *const *extra)
{
	/* Truncate the log so readiness is judged on the new process. */
	FILE *f = fopen(d->log, "w");

	if (f != NULL) {
		fclose(f);
	}
	return ds_daemon_spawn(d, http, extra);
}

bool
ds_daemon_alive(ds_daemon *d)
{
	int status;

	if (d->pid <= 0) {
		return false;
	}
	if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
		d->pid = 0;
		return false;
	}
	return true;
}

static atomic_int ds_daemon_bad_stops;

int
ds_daemon_failures(void)
{
	return atomic_load(&ds_daemon_bad_stops);
}

/* ds_daemon_stopped_badly counts a stop that was not a clean exit 0 and
 * shows why: under ASan the leak report is at the end of the log. */
static int
ds_daemon_stopped_badly(const ds_daemon *d, pid_t pid, int rc)
{
	char cmd[400];

	atomic_fetch_add(&ds_daemon_bad_stops, 1);
	fprintf(stderr, "ds_daemon: datasyncd (pid %d) %s %d on SIGTERM; the end "
	                "of its log (%s):\n", (int) pid,
	    rc < 0 ? "was killed after 20 s, rc" : "exited with", rc, d->log);
	(void) snprintf(cmd, sizeof(cmd), "tail -40 '%s' >&2", d->log);
	(void) !system(cmd);
	return rc;
}

int
ds_daemon_stop(ds_daemon *d)
{
	pid_t pid = d->pid;
	int status;

	if (d->pid <= 0) {
		return -1;
	}
	kill(d->pid, SIGTERM);
	for (int i = 0; i < 2000; i++) {
		pid_t r = waitpid(d->pid, &status, WNOHANG);

		if (r == d->pid) {
			int rc;

			d->pid = 0;
			rc = WIFEXITED(status) ? WEXITSTATUS(status)
			     : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
			return rc == 0 ? 0 : ds_daemon_stopped_badly(d, pid, rc);
		}
		ds_test_sleep_ms(10);
	}
	ds_daemon_kill9(d);
	return ds_daemon_stopped_badly(d, pid, -1);
}

void
ds_daemon_kill9(ds_daemon *d)
{
	if (d->pid <= 0) {
		return;
	}
	kill(d->pid, SIGKILL);
	(void) waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

long
ds_pid_rss_kib(long pid)
{
	char path[64];
	char line[256];
	long kib = -1;
	FILE *f;

	if (pid <= 0) {
		return -1;
	}
	(void) snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

long
ds_daemon_rss_kib(const ds_daemon *d)
{
	return ds_pid_rss_kib((long) d->pid);
}

void
ds_daemon_fini(ds_daemon *d)
{
	if (d->pid > 0) {
		(void) ds_daemon_stop(d);
	}
	if (d->dir[0] != '\0' && getenv("DS_KEEP_TMP") == NULL) {
		ds_test_rmdir(d->dir);
	}
	d->dir[0] = '\0';
}

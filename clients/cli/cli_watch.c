/*
 * cli_watch.c - `datasync watch`: the change feed on the command line
 * (DESIGN §9).
 *
 * A loop of Watch calls, each resuming from the revision the previous
 * reply named, so every change after the cursor is printed exactly once
 * and in revision order. Progress replies (no events) print nothing.
 *
 * SIGINT and SIGTERM end it with exit 0. A blocking call cannot be woken
 * by a signal, so each Watch goes out with the async stub and the thread
 * waits in poll() on two descriptors: a signalfd for the two signals
 * (blocked before the client starts nng's threads, so none of them takes
 * the signal instead) and a pipe the reply callback writes one byte to.
 * On a signal, closing the client cancels the call in flight; its
 * callback runs once (CANCELLED) before datasync_close returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "ds_assert.h"

/* How many bytes of a value --values shows on a human line; the rest is
 * elided ("..."), --json carries it whole. */
#define CLI_WATCH_VALUE_SHOWN 200

/* cli_watch_call: the outcome of one async Watch, handed from the nng
 * callback thread to the watching thread. */
typedef struct cli_watch_call {
	pthread_mutex_t mu;
	bool done;                         /* guarded by mu */
	Datasync__V1__WatchResponse *resp; /* guarded by mu; owned, or NULL */
	nrpc_status st;                    /* guarded by mu; owned (detail) */
	int wake_fd;                       /* the pipe's write end */
} cli_watch_call;

static void
cli_watch_cb(void *arg, Datasync__V1__WatchResponse *resp,
    const nrpc_status *st)
{
	cli_watch_call *w = arg;
	char one = 1;

	pthread_mutex_lock(&w->mu);
	w->resp = resp;
	w->st = *st;
	w->st.detail = NULL;
	w->st.detail_len = 0;
	if (st->detail != NULL) {
		/* Out of memory here only loses the detail: the status says
		 * what happened either way. */
		(void) nrpc_status_set_detail_bytes(&w->st, st->detail_type,
		    st->detail, st->detail_len);
	}
	w->done = true;
	pthread_mutex_unlock(&w->mu);
	/* One byte per call into a drained pipe cannot block or fail; if
	 * it did, the watcher would wait for a signal. */
	(void) DS_NEVER(write(w->wake_fd, &one, 1) != 1);
}

/* cli_watch_escape appends n bytes of value to out (cap bytes) with
 * anything but printable ASCII as \xNN, so one event stays one line. */
static void
cli_watch_escape(const uint8_t *v, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	size_t shown = n < CLI_WATCH_VALUE_SHOWN ? n : CLI_WATCH_VALUE_SHOWN;

	for (size_t i = 0; i < shown && o + 5 < cap; i++) {
		if (v[i] >= 0x20 && v[i] < 0x7f && v[i] != '\\') {
			out[o++] = (char) v[i];
		} else {
			o += (size_t) snprintf(out + o, cap - o, "\\x%02x", v[i]);
		}
	}
	if (shown < n && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void
cli_watch_print_human(const Datasync__V1__Event *ev, bool values)
{
	static const char *const names[] = {
	    [DATASYNC__V1__EVENT_TYPE__EVENT_PUT] = "put",
	    [DATASYNC__V1__EVENT_TYPE__EVENT_DELETE] = "delete",
	    [DATASYNC__V1__EVENT_TYPE__EVENT_LOCK] = "lock",
	    [DATASYNC__V1__EVENT_TYPE__EVENT_UNLOCK] = "unlock",
	    [DATASYNC__V1__EVENT_TYPE__EVENT_EXPIRE] = "expire",
	};
	const Datasync__V1__Record *r = ev->record;
	const char *key = r != NULL ? r->key : "";
	const char *name = (ev->type > 0 &&
	                       (size_t) ev->type < sizeof(names) / sizeof(names[0]))
	    ? names[ev->type]
	    : "event";
	char when[40];
	char shown[CLI_WATCH_VALUE_SHOWN * 4 + 8];

	printf("rev %" PRIu64 " %s %s", ev->revision, name, key);
	switch (ev->type) {
	case DATASYNC__V1__EVENT_TYPE__EVENT_PUT:
	case DATASYNC__V1__EVENT_TYPE__EVENT_DELETE:
		if (r != NULL) {
			printf(" v%" PRIu64, r->version);
			if (r->updated_by[0] != '\0') {
				printf(" by %s", r->updated_by);
			}
		}
		break;
	case DATASYNC__V1__EVENT_TYPE__EVENT_LOCK:
		if (r != NULL && r->lock != NULL) {
			cli_format_time(r->lock->expires_at_ms, when, sizeof(when));
			printf(" by %s until %s", r->lock->owner, when);
		}
		break;
	default:
		break;
	}
	if (values && ev->type == DATASYNC__V1__EVENT_TYPE__EVENT_PUT) {
		if (ev->value_omitted) {
			fputs(" (value no longer in the history)", stdout);
		} else if (r != NULL) {
			cli_watch_escape(r->value.data, r->value.len, shown,
			    sizeof(shown));
			printf(" value %s", shown);
		}
	}
	fputc('\n', stdout);
}

/* cli_watch_compacted reports REVISION_COMPACTED with what to do next;
 * the status detail is a WatchResponse naming the oldest revision kept. */
static int
cli_watch_compacted(const nrpc_status *st, uint64_t after)
{
	Datasync__V1__WatchResponse *d = NULL;

	if (st->detail != NULL &&
	    strcmp(st->detail_type, "datasync.v1.WatchResponse") == 0) {
		d = datasync__v1__watch_response__unpack(NULL, st->detail_len,
		    st->detail);
	}
	fprintf(stderr, "datasync: REVISION_COMPACTED: %s; revision %" PRIu64
	    " is older than the change log keeps: read the keys again "
	    "(datasync --json list prints the revision it read at) and watch "
	    "with --after that revision", st->message, after);
	if (d != NULL) {
		fprintf(stderr, " (the oldest a watch may start from is now %"
		    PRIu64 ")", d->compact_revision);
		datasync__v1__watch_response__free_unpacked(d, NULL);
	}
	fputc('\n', stderr);
	return CLI_EXIT_COMPACTED;
}

/* cli_watch_wait blocks until the call in w finishes (0) or SIGINT or
 * SIGTERM arrives (1); -1 when poll fails. */
static int
cli_watch_wait(int sig_fd, int wake_fd)
{
	struct pollfd p[2];
	char buf[16];

	for (;;) {
		p[0].fd = sig_fd;
		p[0].events = POLLIN;
		p[1].fd = wake_fd;
		p[1].events = POLLIN;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) {
				continue;
			}
			perror("datasync: poll");
			return -1;
		}
		if (p[0].revents != 0) {
			return 1;
		}
		if (p[1].revents != 0) {
			/* Drain the wake-up byte; the outcome is in w. */
			if (read(wake_fd, buf, sizeof(buf)) < 0 && errno != EAGAIN) {
				perror("datasync: read");
				return -1;
			}
			return 0;
		}
	}
}

int
cli_watch(datasync_client **cp, const cli_args *a, const char *key,
    nrpc_status *st)
{
	Datasync__V1__WatchRequest req = DATASYNC__V1__WATCH_REQUEST__INIT;
	nrpc_call_opts o;
	cli_watch_call w;
	sigset_t mask;
	int sig_fd = -1;
	int pipe_fd[2] = {-1, -1};
	uint64_t after = a->after;
	bool anchored = false; /* a reply has set the cursor */
	int rc = CLI_EXIT_OK;
	int rv;

	(void) key;
	if (a->watch_key != NULL && a->prefix != NULL) {
		return cli_usage_error("watch takes --prefix P or --key K, not "
		                       "both");
	}
	if (a->watch_key != NULL && a->watch_key[0] == '\0') {
		return cli_usage_error("watch --key wants a key (for every key, "
		                       "use --prefix '')");
	}
	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mu, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	/* Before cli_connect: nng's threads inherit the mask, so the
	 * signals stay pending for the signalfd. */
	if ((rv = pthread_sigmask(SIG_BLOCK, &mask, NULL)) != 0) {
		fprintf(stderr, "datasync: pthread_sigmask: %s\n", strerror(rv));
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	if ((sig_fd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0 ||
	    pipe2(pipe_fd, O_CLOEXEC | O_NONBLOCK) != 0) {
		perror("datasync: watch");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	w.wake_fd = pipe_fd[1];
	if ((rc = cli_connect(cp, a, st)) != 0) {
		goto out;
	}
	req.key = (char *) (a->watch_key != NULL ? a->watch_key : "");
	req.prefix = (char *) (a->prefix != NULL ? a->prefix : "");
	req.timeout_ms = CLI_WATCH_WAIT_MS;
	req.with_values = a->values;
	memset(&o, 0, sizeof(o));
	/* The server holds the call up to the wait: the usual deadline comes
	 * on top, so a server restarted within it is ridden out (the REQ
	 * socket resends the call when its pipe drops). */
	o.timeout_ms = (int64_t) CLI_WATCH_WAIT_MS + a->timeout_ms;
	for (;;) {
		Datasync__V1__WatchResponse *resp;
		uint64_t cursor = after;

		/* From now only until the first reply names a cursor. */
		req.from_now = !a->has_after && !anchored;
		req.after_revision = req.from_now ? 0 : after;
		w.done = false;
		if (datasync_v1_data_sync_watch_async(datasync_rpc(*cp), &req, &o,
		        cli_watch_cb, &w, st) != NRPC_OK) {
			rc = cli_fail(st);
			goto out;
		}
		if ((rv = cli_watch_wait(sig_fd, pipe_fd[0])) != 0) {
			/* Interrupted (or poll broke): cancel the call; its
			 * callback has run when datasync_close returns. */
			datasync_close(*cp);
			*cp = NULL;
			rc = rv > 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
			goto out;
		}
		pthread_mutex_lock(&w.mu);
		(void) DS_ALWAYS(w.done);
		resp = w.resp;
		w.resp = NULL;
		pthread_mutex_unlock(&w.mu);
		if (resp == NULL) {
			rc = strcmp(w.st.reason, "REVISION_COMPACTED") == 0
			    ? cli_watch_compacted(&w.st, after)
			    : cli_fail(&w.st);
			goto out;
		}
		nrpc_status_fini(&w.st);
		for (size_t i = 0; i < resp->n_events && rc == CLI_EXIT_OK; i++) {
			const Datasync__V1__Event *ev = resp->events[i];

			/* The server never repeats an event after the cursor;
			 * this guards the promise against a resent call. */
			if (ev->revision <= cursor) {
				continue;
			}
			if (a->json) {
				rc = cli_print_json(&ev->base);
			} else {
				cli_watch_print_human(ev, a->values);
			}
			if (ev->revision > after) {
				after = ev->revision;
			}
		}
		/* A progress reply moves the cursor to where the wait ended;
		 * never backwards. */
		if (resp->revision > after) {
			after = resp->revision;
		}
		anchored = true;
		datasync__v1__watch_response__free_unpacked(resp, NULL);
		if (rc == CLI_EXIT_OK && (fflush(stdout) != 0 || ferror(stdout))) {
			perror("datasync: stdout");
			rc = CLI_EXIT_ERROR;
		}
		if (rc != CLI_EXIT_OK) {
			goto out;
		}
	}
out:
	/* w.resp is NULL here except after a cancelled call that still got
	 * its reply. */
	if (w.resp != NULL) {
		datasync__v1__watch_response__free_unpacked(w.resp, NULL);
	}
	nrpc_status_fini(&w.st);
	if (pipe_fd[0] >= 0) {
		(void) close(pipe_fd[0]); /* nothing to flush */
		(void) close(pipe_fd[1]);
	}
	if (sig_fd >= 0) {
		(void) close(sig_fd);
	}
	/* The mask stays: after an interrupt the signal is still pending
	 * (never read from the signalfd), and unblocking it would end the
	 * process by the signal instead of with exit 0. */
	pthread_mutex_destroy(&w.mu);
	return rc;
}

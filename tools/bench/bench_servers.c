/*
 * bench_servers.c - the raw limits served for tests/bench/run.sh:
 * an nng REP echo server (--echo-server) and libmicrohttpd's bare
 * handler (--http-static).
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

#include <netdb.h>
#include <signal.h>
#include <unistd.h>

#include <microhttpd.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "bench.h"
#include "ds_alloc.h"

/* --- servers for the baselines --- */

void
bench_block_signals(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
}

void
bench_wait_signal(const sigset_t *sigs)
{
	int sig;

	do {
		if (sigwait(sigs, &sig) != 0) {
			sig = SIGTERM;
		}
	} while (sig != SIGINT && sig != SIGTERM);
}

typedef struct bench_echo_srv {
	nng_ctx ctx;
	nng_aio *aio; /* owned */
	bool sending;
} bench_echo_srv;

static void
bench_echo_srv_cb(void *arg)
{
	bench_echo_srv *e = arg;
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

int
bench_echo_server(const bench_opts *o)
{
	bench_echo_srv *e;
	nng_socket sock;
	sigset_t sigs;
	int rv;
	int rc = BENCH_EXIT_ERROR;
	unsigned n = 0;

	bench_block_signals(&sigs);
	signal(SIGPIPE, SIG_IGN);
	if ((e = ds_calloc(o->contexts, sizeof(*e))) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		return BENCH_EXIT_ERROR;
	}
	if ((rv = nng_rep0_open(&sock)) != 0) {
		fprintf(stderr, "datasync bench: cannot open a REP socket: %s\n",
		    nng_strerror(rv));
		ds_free(e);
		return BENCH_EXIT_ERROR;
	}
	if ((rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ,
	    (size_t) BENCH_VALUE_BYTES_MAX + 65536)) != 0 ||
	    (rv = nng_listen(sock, o->listen, NULL, 0)) != 0) {
		fprintf(stderr, "datasync bench: cannot listen on %s: %s\n",
		    o->listen, nng_strerror(rv));
		goto out;
	}
	for (n = 0; n < o->contexts; n++) {
		if ((rv = nng_aio_alloc(&e[n].aio, bench_echo_srv_cb,
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
	bench_wait_signal(&sigs);
	rc = BENCH_EXIT_OK;
out:
	(void) nng_close(sock); /* pending operations end with ECLOSED */
	for (unsigned i = 0; i < n; i++) {
		nng_aio_free(e[i].aio); /* waits for its callback */
	}
	ds_free(e);
	return rc;
}

/* bench_http_answer: libmicrohttpd's bare handler, the same fixed
 * body for every method and path, queued on the first call. */
static enum MHD_Result
bench_http_answer(void *cls, struct MHD_Connection *conn,
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

int
bench_http_static(const bench_opts *o)
{
	char body[BENCH_STATIC_BYTES], host[260];
	const char *colon = strrchr(o->listen, ':');
	struct addrinfo hints, *ai = NULL;
	struct MHD_Response *res = NULL;
	struct MHD_Daemon *mhd = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	sigset_t sigs;
	size_t hl;
	int rc = BENCH_EXIT_ERROR;

	bench_block_signals(&sigs);
	signal(SIGPIPE, SIG_IGN);
	memset(body, 'x', sizeof(body));
	body[sizeof(body) - 1] = '\n';
	if (colon == NULL || strlen(o->listen) > 256) {
		return bench_usage_error("--http-static wants HOST:PORT, got '%s'",
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
		return bench_usage_error("--http-static wants HOST:PORT, got '%s'",
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
	    0, NULL, NULL, bench_http_answer, res, MHD_OPTION_SOCK_ADDR,
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
	    BENCH_STATIC_BYTES, o->listen);
	fflush(stdout);
	bench_wait_signal(&sigs);
	MHD_stop_daemon(mhd);
	rc = BENCH_EXIT_OK;
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

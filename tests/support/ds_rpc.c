/*
 * ds_rpc.c - see ds_rpc.h.
 */
#include "ds_rpc.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

int
ds_rpc_raw(const char *url, const void *buf, size_t len, int timeout_ms,
    Nrpc__V1__Response **out)
{
	nng_socket s;
	void *reply = NULL;
	size_t rlen = 0;
	int rv = DS_RPC_RAW_BAD;

	*out = NULL;
	if (nng_req0_open(&s) != 0) {
		return DS_RPC_RAW_BAD;
	}
	/* REQ resends after RESENDTIME; one try is what a test of one
	 * message means, and resending into a closed pipe churns nng. */
	if (nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms) != 0 ||
	    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms) != 0 ||
	    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, 600000) != 0 ||
	    nng_dial(s, url, NULL, 0) != 0) {
		goto done;
	}
	rv = DS_RPC_RAW_NOREPLY;
	if (nng_send(s, (void *) buf, len, 0) == 0 &&
	    nng_recv(s, &reply, &rlen, NNG_FLAG_ALLOC) == 0) {
		*out = nrpc__v1__response__unpack(NULL, rlen, reply);
		rv = *out != NULL ? DS_RPC_RAW_REPLY : DS_RPC_RAW_BAD;
		nng_free(reply, rlen);
	}
done:
	(void) nng_close(s);
	return rv;
}

int
ds_rpc_increment(
    void *ctx, const Datasync__V1__Record *cur, uint8_t **v, size_t *len)
{
	char t[32];
	long long n = 0;

	(void) ctx;
	if (cur != NULL && cur->value.len < sizeof(t)) {
		memcpy(t, cur->value.data, cur->value.len);
		t[cur->value.len] = '\0';
		n = atoll(t);
	}
	*len = (size_t) snprintf(t, sizeof(t), "%lld", n + 1);
	if ((*v = malloc(*len)) == NULL) {
		return -1;
	}
	memcpy(*v, t, *len);
	return 0;
}

/* --- a raw SP peer --- */

static void
ds_sp_put_be(uint8_t *o, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) {
		o[i] = (uint8_t) (v & 0xff);
		v >>= 8;
	}
}

static int
ds_sp_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return errno == EWOULDBLOCK ? EAGAIN : errno;
		}
		p += n;
		len -= (size_t) n;
	}
	return 0;
}

int
ds_sp_dial(ds_sp_conn *c, const char *url, int timeout_ms,
    int send_timeout_ms)
{
	static const uint8_t mine[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	uint8_t theirs[8];
	size_t got = 0;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	struct timeval stv = {send_timeout_ms / 1000,
	    (send_timeout_ms % 1000) * 1000};
	int rc;

	c->fd = -1;
	c->ipc = strncmp(url, "ipc://", 6) == 0;
	if (c->ipc) {
		struct sockaddr_un sa;

		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		if (strlen(url + 6) >= sizeof(sa.sun_path)) {
			return -1;
		}
		strcpy(sa.sun_path, url + 6);
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		rc = c->fd < 0 ? -1 :
		    connect(c->fd, (struct sockaddr *) &sa, sizeof(sa));
	} else {
		struct sockaddr_in sa;
		const char *colon = strrchr(url, ':');

		if (strncmp(url, "tcp://", 6) != 0 || colon == NULL) {
			return -1;
		}
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t) atoi(colon + 1));
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		rc = c->fd < 0 ? -1 :
		    connect(c->fd, (struct sockaddr *) &sa, sizeof(sa));
	}
	if (rc != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    ds_sp_write_all(c->fd, mine, sizeof(mine)) != 0) {
		goto fail;
	}
	while (got < sizeof(theirs)) {
		ssize_t n = recv(c->fd, theirs + got, sizeof(theirs) - got, 0);

		if (n <= 0) {
			goto fail;
		}
		got += (size_t) n;
	}
	if (theirs[0] != 0 || theirs[1] != 'S' || theirs[2] != 'P' ||
	    theirs[5] != 0x31 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof(stv)) != 0) {
		goto fail;
	}
	return 0;
fail:
	ds_sp_close(c);
	return -1;
}

int
ds_sp_send(const ds_sp_conn *c, uint32_t id, const void *body, size_t len)
{
	uint8_t hdr[9 + 4];
	size_t hn = c->ipc ? 9 : 8;
	int rc;

	hdr[0] = 1; /* ipc: a message; overwritten for tcp */
	ds_sp_put_be(hdr + hn - 8, (uint64_t) len + 4, 8);
	ds_sp_put_be(hdr + hn, id | 0x80000000u, 4);
	if ((rc = ds_sp_write_all(c->fd, hdr, hn + 4)) != 0) {
		return rc;
	}
	return ds_sp_write_all(c->fd, body, len);
}

int
ds_sp_wait_closed(const ds_sp_conn *c, int timeout_ms)
{
	struct pollfd pfd = {c->fd, POLLRDHUP, 0};

	if (poll(&pfd, 1, timeout_ms) <= 0) {
		return 0;
	}
	return (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

int
ds_sp_drain_closed(const ds_sp_conn *c, int timeout_ms)
{
	static uint8_t sink[64 * 1024];
	struct timespec now;
	int64_t end;

	clock_gettime(CLOCK_MONOTONIC, &now);
	end = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
	for (;;) {
		struct pollfd pfd = {c->fd, POLLIN, 0};
		int64_t left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = end - ((int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000);
		if (left <= 0 || poll(&pfd, 1, (int) left) <= 0) {
			return 0;
		}
		n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			return 1;
		}
	}
}

void
ds_sp_close(ds_sp_conn *c)
{
	if (c->fd >= 0) {
		(void) close(c->fd);
	}
	c->fd = -1;
}

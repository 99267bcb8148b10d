/*
 * nrpc_probe.c - see nrpc_probe.h. The SP wire format it speaks (nng's
 * sp/transport docs): both sides send an 8-byte header 00 'S' 'P' 00
 * <protocol, 16-bit big-endian> 00 00 (REQ = 0x30, REP = 0x31); then each
 * message is a 64-bit big-endian length (over ipc:// after a type byte 1)
 * and the payload, whose first 4 bytes for REQ/REP are the request id
 * with its high bit set.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ds_clock.h"
#include "nrpc_probe.h"

#define PROBE_PROTO_REQ 0x30
#define PROBE_PROTO_REP 0x31
#define PROBE_REQUEST_ID 0x80000001u
#define PROBE_HOST_MAX 256

typedef struct probe_conn {
	int fd;
	bool ipc;    /* ipc framing: a type byte before each length */
	int64_t end; /* CLOCK_MONOTONIC deadline, ms */
} probe_conn;

/* probe_wait polls fd for events until the deadline; true when ready. */
static bool
probe_wait(const probe_conn *pc, short events)
{
	for (;;) {
		struct pollfd pfd = {.fd = pc->fd, .events = events};
		int64_t left = pc->end - ds_clock_now_ms(ds_clock_monotonic());
		int rv;

		if (left <= 0) {
			return false;
		}
		rv = poll(&pfd, 1, (int) left);
		if (rv > 0) {
			return true;
		}
		if (rv < 0 && errno != EINTR) {
			return false;
		}
	}
}

static bool
probe_write(const probe_conn *pc, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(pc->fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t) n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!probe_wait(pc, POLLOUT)) {
				return false;
			}
		} else {
			return false;
		}
	}
	return true;
}

static bool
probe_read(const probe_conn *pc, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(pc->fd, p, len, 0);

		if (n > 0) {
			p += n;
			len -= (size_t) n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!probe_wait(pc, POLLIN)) {
				return false;
			}
		} else {
			return false; /* closed, or an error */
		}
	}
	return true;
}

static void
probe_put_be(uint8_t *o, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) {
		o[i] = (uint8_t) v;
		v >>= 8;
	}
}

static uint64_t
probe_get_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++) {
		v = v << 8 | p[i];
	}
	return v;
}

/* probe_connect starts a non-blocking connect to addr and waits for it. */
static bool
probe_connect(probe_conn *pc, int family, const struct sockaddr *addr,
    socklen_t addrlen)
{
	int err = 0;
	socklen_t elen = sizeof(err);

	pc->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pc->fd < 0) {
		return false;
	}
	if (connect(pc->fd, addr, addrlen) == 0) {
		return true;
	}
	if (errno != EINPROGRESS && errno != EAGAIN) {
		return false;
	}
	if (!probe_wait(pc, POLLOUT) ||
	    getsockopt(pc->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) {
		return false;
	}
	return err == 0;
}

/* probe_dial_tcp resolves "HOST:PORT" (HOST may be [v6]); a wildcard or
 * empty host is the loopback of its family. */
static nrpc_probe_result
probe_dial_tcp(probe_conn *pc, const char *hostport)
{
	char host[PROBE_HOST_MAX];
	const char *colon = strrchr(hostport, ':');
	const char *port;
	size_t hlen;
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	bool ok;

	if (colon == NULL) {
		return NRPC_PROBE_UNSUPPORTED;
	}
	port = colon + 1;
	hlen = (size_t) (colon - hostport);
	if (hlen >= 2 && hostport[0] == '[' && hostport[hlen - 1] == ']') {
		hostport++;
		hlen -= 2;
	}
	if (hlen >= sizeof(host)) {
		return NRPC_PROBE_UNSUPPORTED;
	}
	memcpy(host, hostport, hlen);
	host[hlen] = '\0';
	if (hlen == 0 || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
		(void) snprintf(host, sizeof(host), "127.0.0.1");
	} else if (strcmp(host, "::") == 0) {
		(void) snprintf(host, sizeof(host), "::1");
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
		return NRPC_PROBE_UNSUPPORTED;
	}
	ok = probe_connect(pc, res->ai_family, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return ok ? NRPC_PROBE_ANSWERED : NRPC_PROBE_NO_ANSWER;
}

static nrpc_probe_result
probe_dial(probe_conn *pc, const char *url)
{
	if (strncmp(url, "ipc://", 6) == 0) {
		struct sockaddr_un sa;
		size_t plen = strlen(url + 6);

		if (plen == 0 || plen >= sizeof(sa.sun_path)) {
			return NRPC_PROBE_UNSUPPORTED;
		}
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		memcpy(sa.sun_path, url + 6, plen + 1);
		pc->ipc = true;
		return probe_connect(pc, AF_UNIX, (struct sockaddr *) &sa,
		           sizeof(sa)) ?
		    NRPC_PROBE_ANSWERED :
		    NRPC_PROBE_NO_ANSWER;
	}
	if (strncmp(url, "tcp://", 6) == 0) {
		return probe_dial_tcp(pc, url + 6);
	}
	return NRPC_PROBE_UNSUPPORTED;
}

/* probe_exchange does the handshake, sends one request and reads the
 * reply frame that carries our request id. */
static bool
probe_exchange(const probe_conn *pc, const uint8_t *body, size_t len)
{
	uint8_t mine[8] = {0, 'S', 'P', 0, 0, PROBE_PROTO_REQ, 0, 0};
	uint8_t theirs[8];
	uint8_t hdr[9 + 4];
	size_t hn = pc->ipc ? 9 : 8;
	uint8_t reply[NRPC_PROBE_MAX_REPLY];
	uint64_t rlen;

	if (!probe_write(pc, mine, sizeof(mine)) ||
	    !probe_read(pc, theirs, sizeof(theirs)) || theirs[0] != 0 ||
	    theirs[1] != 'S' || theirs[2] != 'P' ||
	    probe_get_be(theirs + 4, 2) != PROBE_PROTO_REP) {
		return false;
	}
	hdr[0] = 1; /* ipc: a message; overwritten below for tcp */
	probe_put_be(hdr + hn - 8, (uint64_t) len + 4, 8);
	probe_put_be(hdr + hn, PROBE_REQUEST_ID, 4);
	if (!probe_write(pc, hdr, hn + 4) || !probe_write(pc, body, len) ||
	    !probe_read(pc, hdr, hn)) {
		return false;
	}
	rlen = probe_get_be(hdr + hn - 8, 8);
	if (rlen < 4 || rlen > sizeof(reply)) {
		return rlen > sizeof(reply); /* something long came back */
	}
	return probe_read(pc, reply, (size_t) rlen) &&
	       probe_get_be(reply, 4) == PROBE_REQUEST_ID;
}

nrpc_probe_result
nrpc_probe_url(const char *url, const uint8_t *body, size_t len,
    int timeout_ms)
{
	probe_conn pc = {.fd = -1, .ipc = false};
	nrpc_probe_result r;

	pc.end = ds_clock_now_ms(ds_clock_monotonic()) +
	         (timeout_ms > 0 ? timeout_ms : 0);
	r = probe_dial(&pc, url);
	if (r == NRPC_PROBE_ANSWERED) {
		r = probe_exchange(&pc, body, len) ? NRPC_PROBE_ANSWERED :
		                                       NRPC_PROBE_NO_ANSWER;
	}
	if (pc.fd >= 0) {
		(void) close(pc.fd);
	}
	return r;
}

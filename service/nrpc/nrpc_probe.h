/*
 * nrpc_probe.h - one REQ/REP round trip over a plain OS socket, for the
 * listener watchdog (nrpc.h, NRPC_PING_METHOD).
 *
 * Why not an nng REQ socket: the watchdog probes a listener of its own
 * process that nng 1.5.2 may have broken (#1518), and closing an nng
 * socket whose dialer met that listener can hang for good inside
 * nng_close (seen under the socket fuzzer: the watchdog thread stuck in
 * the probe's nng_close, so SIGTERM never finished). A file descriptor
 * always closes. The probe speaks the SP wire protocol itself: the 8-byte
 * handshake as a REQ peer, then one length-prefixed message carrying a
 * 32-bit request id, the way nng's req0 frames it.
 *
 * Thread-safe; no state. The caller owns everything it passes.
 */
#ifndef NRPC_PROBE_H
#define NRPC_PROBE_H

#include <stddef.h>
#include <stdint.h>

typedef enum nrpc_probe_result {
	NRPC_PROBE_ANSWERED = 0, /* a reply to our request id came back */
	NRPC_PROBE_NO_ANSWER,    /* refused, no handshake or no reply in time */
	NRPC_PROBE_UNSUPPORTED,  /* not an ipc:// or tcp:// URL we can reach */
} nrpc_probe_result;

/* NRPC_PROBE_MAX_REPLY bounds what the probe reads back: a ping's reply
 * is a few bytes; anything longer still counts as an answer. */
#define NRPC_PROBE_MAX_REPLY 4096

/* nrpc_probe_url connects to url (ipc://PATH or tcp://HOST:PORT; a
 * wildcard host such as *, 0.0.0.0 or [::] means this machine), sends
 * body (a packed nrpc.v1.Request) as a REQ request and waits at most
 * timeout_ms in all for the reply. */
nrpc_probe_result nrpc_probe_url(const char *url, const uint8_t *body,
    size_t len, int timeout_ms);

#endif /* NRPC_PROBE_H */

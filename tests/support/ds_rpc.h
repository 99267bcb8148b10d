/*
 * ds_rpc.h - RPC helpers the integration tests and sockfuzz share: a raw
 * one-shot REQ call (to send envelopes the typed stubs would never build)
 * and the counter mutator of the checked increment workloads.
 * Tests only; nothing in service/ or clients/ includes it.
 */
#ifndef DS_RPC_H
#define DS_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "datasync/v1/datasync.pb-c.h"
#include "nrpc/v1/rpc.pb-c.h"

/* Results of ds_rpc_raw. */
enum {
	DS_RPC_RAW_BAD = -1, /* no socket, or a reply that is not a Response */
	DS_RPC_RAW_REPLY = 0, /* *out holds the decoded reply */
	DS_RPC_RAW_NOREPLY =
	    1, /* the server closed the pipe or said nothing */
};

/* ds_rpc_raw sends len bytes of buf as one message on a fresh REQ socket
 * dialled to url, once (no REQ resend into a pipe the server closed), and
 * waits up to timeout_ms for the reply. On DS_RPC_RAW_REPLY the caller
 * owns *out (nrpc__v1__response__free_unpacked); otherwise *out is NULL. */
int ds_rpc_raw(const char *url, const void *buf, size_t len, int timeout_ms,
    Nrpc__V1__Response **out);

/* A raw SP peer over a plain OS socket (the SP wire format: see
 * service/nrpc/nrpc_probe.c), for peers nng's own REQ socket would never
 * be: one that sends and never reads. */
typedef struct ds_sp_conn {
	int fd;   /* -1 when not connected */
	int ipc;  /* ipc:// framing: a type byte before each length */
} ds_sp_conn;

/* ds_sp_dial connects to url (ipc://PATH or tcp://127.0.0.1:PORT) and
 * does the handshake as a REQ peer, waiting at most timeout_ms. Sends on
 * the connection then block at most send_timeout_ms each (SO_SNDTIMEO).
 * Returns 0, or -1 (c->fd is then -1). */
int ds_sp_dial(ds_sp_conn *c, const char *url, int timeout_ms,
    int send_timeout_ms);

/* ds_sp_send writes one REQ message: request id (its high bit is set
 * here) and body. Returns 0, or errno when the write failed (EPIPE or
 * ECONNRESET: the server closed the connection; EAGAIN: the send
 * timeout passed). */
int ds_sp_send(const ds_sp_conn *c, uint32_t id, const void *body,
    size_t len);

/* ds_sp_wait_closed waits up to timeout_ms, without reading anything,
 * for the server to close the connection (POLLHUP or POLLRDHUP); true
 * when it did. */
int ds_sp_wait_closed(const ds_sp_conn *c, int timeout_ms);

/* ds_sp_drain_closed reads and discards whatever arrives for up to
 * timeout_ms; true when the connection ended (end of stream or reset).
 * A server that closes a connection while its replies fill the socket
 * buffers sends its FIN behind them, so a peer that reads nothing may
 * never see the end without this. */
int ds_sp_drain_closed(const ds_sp_conn *c, int timeout_ms);

/* ds_sp_close closes the socket; a closed connection is a no-op. */
void ds_sp_close(ds_sp_conn *c);

/* ds_rpc_increment is a datasync_update_with_retry mutator: the record's
 * value read as a decimal integer (absent: 0), plus one. *v is malloc'd
 * for the caller. Returns 0, or -1 when out of memory. ctx is unused. */
int ds_rpc_increment(
    void *ctx, const Datasync__V1__Record *cur, uint8_t **v, size_t *len);

#endif /* DS_RPC_H */

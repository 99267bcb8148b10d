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

/* ds_rpc_increment is a datasync_update_with_retry mutator: the record's
 * value read as a decimal integer (absent: 0), plus one. *v is malloc'd
 * for the caller. Returns 0, or -1 when out of memory. ctx is unused. */
int ds_rpc_increment(
    void *ctx, const Datasync__V1__Record *cur, uint8_t **v, size_t *len);

#endif /* DS_RPC_H */

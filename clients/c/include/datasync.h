/*
 * datasync.h - libdatasync: the C client of the datasync record store.
 *
 * Connect with datasync_connect(), then call the service through the
 * generated, typed stubs of datasync/v1/datasync.nrpc.h with
 * datasync_rpc(client) as their first argument:
 *
 *     Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
 *     Datasync__V1__GetResponse *resp = NULL;
 *     nrpc_status st = {0};
 *     req.key = "greeting";
 *     if (datasync_v1_data_sync_get(datasync_rpc(c), &req, &resp, NULL,
 *             &st) == NRPC_OK) { ... resp->record->value ...;
 *         datasync__v1__get_response__free_unpacked(resp, NULL); }
 *     else fprintf(stderr, "%s: %s\n", st.reason, st.message);
 *     nrpc_status_fini(&st);
 *
 * Optimistic writers use datasync_update_with_retry(), the
 * read-modify-write loop that turns VERSION_CONFLICT into a retry against
 * the record the conflict carries.
 *
 * Thread-safety: a datasync_client may be used by any number of threads at
 * once. Blocking calls must not be made from nng callback threads; use the
 * *_async stubs there.
 */
#ifndef DATASYNC_H
#define DATASYNC_H

#include <stddef.h>
#include <stdint.h>

#include "datasync/v1/datasync.nrpc.h"
#include "nrpc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct datasync_client datasync_client;

/* The CLI's and the example's default address (datasyncd's default). */
#define DATASYNC_DEFAULT_URL "ipc:///tmp/datasync.sock"

/* datasync_connect dials every URL in urls[0..n_urls) (nng's REQ spreads
 * calls over those that answer) with a default per-call deadline of
 * timeout_ms (0 = 10 s). client_name (may be NULL) is sent with every call
 * and recorded as the author of writes that name none. *out is owned:
 * datasync_close. Returns NRPC_OK, or the code also written to st. */
nrpc_code datasync_connect(const char *const *urls, size_t n_urls,
    int64_t timeout_ms, const char *client_name, datasync_client **out,
    nrpc_status *st);

/* datasync_options: datasync_connect's arguments and the rest. Zero it
 * (or use datasync_options_default), then set what you need. Every
 * pointer is borrowed during datasync_connect_opts only. */
typedef struct datasync_options {
	const char *const *urls;   /* tls+tcp://, tcp://, ipc://, inproc:// */
	size_t n_urls;
	int64_t timeout_ms;        /* default per-call deadline; 0 = 10 s */
	const char *client_name;   /* may be NULL */
	/* TLS (tls+tcp:// URLs): the PEM file of the CA that signed the
	 * servers' certificates (required for such a URL; a certificate
	 * must also name the URL's host: with Debian 12's mbed TLS, by a DNS
	 * name or CN, so dial tls+tcp://localhost:7443 rather than the IP),
	 * and a client certificate and key for servers that ask for one. */
	const char *tls_ca_file;
	const char *tls_cert_file;
	const char *tls_key_file;
	/* A bearer token ("dst_" and 64 hex digits) for a server run with
	 * --auth: sent as metadata "authorization: Bearer <token>" with every
	 * call (a call's own "authorization" metadata wins). NULL = none.
	 * Without it such a server answers UNAUTHENTICATED, reason
	 * TOKEN_MISSING. Over anything but ipc:// or loopback, use
	 * tls+tcp:// so that the token does not cross the network in clear. */
	const char *token;
} datasync_options;

/* datasync_options_default zeroes o. */
void datasync_options_default(datasync_options *o);

/* datasync_connect_opts is datasync_connect with options. Bad TLS files
 * fail here (INVALID_ARGUMENT naming the option); an untrusted server is
 * found when the connection is made, so calls then fail UNAVAILABLE
 * after their deadline. */
nrpc_code datasync_connect_opts(const datasync_options *o,
    datasync_client **out, nrpc_status *st);

/* datasync_rpc returns the RPC client for the generated stubs; borrowed,
 * valid until datasync_close. */
nrpc_client *datasync_rpc(datasync_client *c);

/* datasync_close waits for calls in flight to end and frees c; NULL is a
 * no-op. */
void datasync_close(datasync_client *c);

/* datasync_status_record decodes the record a VERSION_CONFLICT or LOCKED
 * status carries. NRPC_OK and *out (owned; free with
 * datasync__v1__record__free_unpacked(*out, NULL)); NRPC_NOT_FOUND when st
 * has no record detail; NRPC_INTERNAL when it does not decode. */
nrpc_code datasync_status_record(const nrpc_status *st,
    Datasync__V1__Record **out);

/* datasync_mutate_fn computes the next value from the current record
 * (borrowed; NULL when the key does not exist). It writes a value it
 * allocated with malloc into *value / *len (taken by the library), and
 * returns 0 to write it or non-zero to stop without writing. It may be
 * called several times, once per attempt, so it must not have side
 * effects beyond computing the value. */
typedef int (*datasync_mutate_fn)(void *ctx,
    const Datasync__V1__Record *current, uint8_t **value, size_t *len);

typedef struct datasync_retry_stats {
	unsigned attempts;  /* Update calls made */
	unsigned conflicts; /* VERSION_CONFLICTs met and retried */
	uint64_t version;   /* the version written, on success */
} datasync_retry_stats;

/* datasync_update_with_retry reads key, calls fn, and writes the result
 * with if_version (or if_absent when the key is absent), retrying up to
 * max_attempts times when another writer got there first. A retry uses
 * the current record carried by the conflict, so it costs no extra Get.
 * Returns NRPC_OK when a value was written; NRPC_ABORTED with reason
 * VERSION_CONFLICT when every attempt conflicted; NRPC_CANCELLED with
 * reason MUTATE_DECLINED when fn declined; any other code from the
 * service (LOCKED, ...). stats (may be NULL) is filled in every case. */
nrpc_code datasync_update_with_retry(datasync_client *c, const char *key,
    datasync_mutate_fn fn, void *ctx, unsigned max_attempts,
    datasync_retry_stats *stats, nrpc_status *st);

#ifdef __cplusplus
}
#endif

#endif /* DATASYNC_H */

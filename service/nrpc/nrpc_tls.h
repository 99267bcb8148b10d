/*
 * nrpc_tls.h - TLS for nrpc's tls+tcp:// listeners and dialers (DESIGN
 * §11), over nng's TLS engine (mbed TLS in Debian 12's nng 1.5.2: TLS 1.2
 * only, no peer-name option, so a client certificate proves "signed by
 * our CA" and identity travels in a token).
 *
 * Private to service/nrpc: nrpc_server.c, nrpc_watchdog.c and
 * nrpc_client.c use it; callers of nrpc.h only name files.
 */
#ifndef NRPC_TLS_H
#define NRPC_TLS_H

#include <stdbool.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "nrpc.h"

/* The largest certificate, key or CA file read (a chain of a few
 * certificates is a few KiB). */
#define NRPC_TLS_FILE_MAX (1024 * 1024)

/* nrpc_url_is_tls: url names the tls+tcp transport (tls+tcp://,
 * tls+tcp4://, tls+tcp6://). */
bool nrpc_url_is_tls(const char *url);

/* nrpc_tls_server makes a server configuration from PEM files: the
 * certificate (chain) and its key, and, when client_ca_file is not NULL,
 * the CA that must have signed every client's certificate (clients
 * without one are refused in the handshake). *out is owned
 * (nng_tls_config_free). Errors name the file and what is wrong with it:
 * INVALID_ARGUMENT, field "tls_cert_file", "tls_key_file" or
 * "tls_client_ca_file". */
nrpc_code nrpc_tls_server(const char *cert_file, const char *key_file,
    const char *client_ca_file, nng_tls_config **out, nrpc_status *st);

/* nrpc_tls_client makes a client configuration that trusts the CAs in
 * ca_file (PEM) and checks that the server's certificate names host
 * (the URL's host; a name or an IP address). When cert_file is given the
 * client presents it (and key_file) to a server that asks. *out is owned.
 * Errors as for nrpc_tls_server, fields "tls_ca_file", "tls_cert_file",
 * "tls_key_file". */
nrpc_code nrpc_tls_client(const char *ca_file, const char *cert_file,
    const char *key_file, const char *host, nng_tls_config **out,
    nrpc_status *st);

/* nrpc_url_host copies url's host (without brackets or port) into out;
 * false when it does not fit or url has no "//". */
bool nrpc_url_host(const char *url, char *out, size_t cap);

/* nrpc_tls_dial_error: a status for a dial of url that failed with nng
 * error rv, telling a TLS failure (untrusted or expired certificate, not
 * a TLS server) apart from an unreachable address. */
nrpc_code nrpc_tls_dial_error(const char *url, int rv, nrpc_status *st);

#endif /* NRPC_TLS_H */

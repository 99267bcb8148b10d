/*
 * nrpc_tls.c - TLS configurations for tls+tcp:// from PEM files.
 *
 * nng_tls_config_own_cert wants the certificate and key as PEM text (the
 * file shortcut wants both in one file), so both files are read here,
 * each bounded by NRPC_TLS_FILE_MAX, and every failure names the file.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_buf.h"
#include "nrpc_tls.h"

bool
nrpc_url_is_tls(const char *url)
{
	return strncmp(url, "tls+tcp://", 10) == 0 ||
	    strncmp(url, "tls+tcp4://", 11) == 0 ||
	    strncmp(url, "tls+tcp6://", 11) == 0;
}

bool
nrpc_url_host(const char *url, char *out, size_t cap)
{
	const char *p = strstr(url, "//"), *end;
	size_t n;

	if (p == NULL || cap == 0) {
		return false;
	}
	p += 2;
	if (*p == '[') { /* [v6]:port */
		p++;
		end = strchr(p, ']');
	} else {
		end = p + strcspn(p, ":/");
	}
	if (end == NULL || (n = (size_t) (end - p)) >= cap) {
		return false;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

/* nrpc_tls_read reads a PEM file into b for the option named field. */
static nrpc_code
nrpc_tls_read(const char *field, const char *path, ds_buf *b,
    nrpc_status *st)
{
	ds_err rv;

	ds_buf_init(b, NRPC_TLS_FILE_MAX);
	if ((rv = ds_buf_read_file(b, path)) == DS_OK && b->len > 0) {
		return NRPC_OK;
	}
	if (rv == DS_EIO) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "TLS_FILE", field,
		    "cannot read %s %s: %s", field, path, strerror(errno));
	} else if (rv == DS_ETOOLARGE) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "TLS_FILE", field,
		    "%s %s is larger than %d bytes: not a certificate or key",
		    field, path, NRPC_TLS_FILE_MAX);
	} else if (rv == DS_OK) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "TLS_FILE", field,
		    "%s %s is empty", field, path);
	} else {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY",
		    field, "out of memory reading %s", path);
	}
	ds_buf_fini(b);
	return st->code;
}

/* nrpc_tls_own sets the certificate and key of cfg from their files. */
static nrpc_code
nrpc_tls_own(nng_tls_config *cfg, const char *cert_file,
    const char *key_file, nrpc_status *st)
{
	ds_buf cert, key;
	int rv;

	if (nrpc_tls_read("tls_cert_file", cert_file, &cert, st) != NRPC_OK) {
		return st->code;
	}
	if (nrpc_tls_read("tls_key_file", key_file, &key, st) != NRPC_OK) {
		ds_buf_fini(&cert);
		return st->code;
	}
	if ((rv = nng_tls_config_own_cert(cfg, (const char *) cert.ptr,
	         (const char *) key.ptr, NULL)) != 0) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "TLS_FILE",
		    "tls_cert_file", "tls_cert_file %s and tls_key_file %s are "
		    "not a PEM certificate and its unencrypted key: %s",
		    cert_file, key_file, nng_strerror(rv));
	}
	/* The key is secret: do not leave it in freed memory. */
	if (key.ptr != NULL) {
		memset(key.ptr, 0, key.len);
	}
	ds_buf_fini(&key);
	ds_buf_fini(&cert);
	return rv == 0 ? NRPC_OK : st->code;
}

static nrpc_code
nrpc_tls_ca(nng_tls_config *cfg, const char *field, const char *ca_file,
    nrpc_status *st)
{
	ds_buf ca;
	int rv;

	if (nrpc_tls_read(field, ca_file, &ca, st) != NRPC_OK) {
		return st->code;
	}
	rv = nng_tls_config_ca_chain(cfg, (const char *) ca.ptr, NULL);
	ds_buf_fini(&ca);
	if (rv != 0) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "TLS_FILE", field,
		    "%s %s holds no PEM certificate: %s", field, ca_file,
		    nng_strerror(rv));
		return st->code;
	}
	return NRPC_OK;
}

static nrpc_code
nrpc_tls_alloc(nng_tls_mode mode, nng_tls_config **out, nrpc_status *st)
{
	int rv;

	if ((rv = nng_tls_config_alloc(out, mode)) != 0) {
		nrpc_status_set(st, rv == NNG_ENOMEM ? NRPC_RESOURCE_EXHAUSTED
		                                     : NRPC_UNIMPLEMENTED,
		    "TLS_UNAVAILABLE", NULL,
		    "cannot make a TLS configuration (nng's TLS engine: %s): %s",
		    nng_tls_engine_name(), nng_strerror(rv));
		return st->code;
	}
	return NRPC_OK;
}

nrpc_code
nrpc_tls_server(const char *cert_file, const char *key_file,
    const char *client_ca_file, nng_tls_config **out, nrpc_status *st)
{
	nng_tls_config *cfg = NULL;
	int rv;

	if (cert_file == NULL || key_file == NULL) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    cert_file == NULL ? "tls_cert_file" : "tls_key_file",
		    "a tls+tcp:// listener needs tls_cert_file and "
		    "tls_key_file (--tls-cert, --tls-key)");
		return st->code;
	}
	if (nrpc_tls_alloc(NNG_TLS_MODE_SERVER, &cfg, st) != NRPC_OK) {
		return st->code;
	}
	if (nrpc_tls_own(cfg, cert_file, key_file, st) != NRPC_OK) {
		goto fail;
	}
	if (client_ca_file != NULL) {
		if (nrpc_tls_ca(cfg, "tls_client_ca_file", client_ca_file, st) !=
		    NRPC_OK) {
			goto fail;
		}
		if ((rv = nng_tls_config_auth_mode(cfg,
		         NNG_TLS_AUTH_MODE_REQUIRED)) != 0) {
			nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
			    "cannot require client certificates: %s",
			    nng_strerror(rv));
			goto fail;
		}
	}
	*out = cfg;
	return NRPC_OK;
fail:
	nng_tls_config_free(cfg);
	return st->code;
}

nrpc_code
nrpc_tls_client(const char *ca_file, const char *cert_file,
    const char *key_file, const char *host, nng_tls_config **out,
    nrpc_status *st)
{
	nng_tls_config *cfg = NULL;
	int rv;

	if (ca_file == NULL) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "tls_ca_file", "a tls+tcp:// address needs the CA that "
		    "signed the server's certificate (tls_ca_file, --tls-ca)");
		return st->code;
	}
	if ((cert_file == NULL) != (key_file == NULL)) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    cert_file == NULL ? "tls_cert_file" : "tls_key_file",
		    "a client certificate needs both tls_cert_file and "
		    "tls_key_file");
		return st->code;
	}
	if (nrpc_tls_alloc(NNG_TLS_MODE_CLIENT, &cfg, st) != NRPC_OK) {
		return st->code;
	}
	if (nrpc_tls_ca(cfg, "tls_ca_file", ca_file, st) != NRPC_OK ||
	    (cert_file != NULL &&
	        nrpc_tls_own(cfg, cert_file, key_file, st) != NRPC_OK)) {
		goto fail;
	}
	/* The server's certificate must name the host dialed. */
	if ((rv = nng_tls_config_server_name(cfg, host)) != 0 ||
	    (rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) !=
	        0) {
		nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
		    "cannot configure TLS for %s: %s", host, nng_strerror(rv));
		goto fail;
	}
	*out = cfg;
	return NRPC_OK;
fail:
	nng_tls_config_free(cfg);
	return st->code;
}

nrpc_code
nrpc_tls_dial_error(const char *url, int rv, nrpc_status *st)
{
	bool bad = rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ||
	    rv == NNG_EINVAL;

	if (rv == NNG_EPEERAUTH || rv == NNG_ECRYPTO) {
		/* Not retryable as is: the certificate will not change by
		 * itself. */
		nrpc_status_set(st, NRPC_UNAVAILABLE, "TLS_HANDSHAKE_FAILED",
		    "urls", "TLS handshake with %s failed: %s (is the "
		    "server's certificate signed by tls_ca_file's CA, valid "
		    "now, and for this host name (mbed TLS 2.28 matches DNS "
		    "names and the CN, not IP addresses)? is it a TLS "
		    "server?)", url,
		    nng_strerror(rv));
		return st->code;
	}
	nrpc_status_set(st, bad ? NRPC_INVALID_ARGUMENT : NRPC_UNAVAILABLE,
	    bad ? "INVALID_URL" : "DIAL_FAILED", "urls", "cannot dial %s: %s",
	    url, nng_strerror(rv));
	return st->code;
}

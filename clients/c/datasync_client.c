/*
 * datasync_client.c - libdatasync: connect, conflict details, and the
 * optimistic read-modify-write loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasync.h"
#include "ds_alloc.h"

/* nng's REQ resend time for every client: above the longest wait a call
 * may spend parked in the service (a Watch's timeout_ms or a Lock's
 * wait_ms, both <= 60 s, DESIGN §9), so a call that is simply waiting is
 * never sent a second time. nng's default is exactly 60 s. A dropped
 * connection still resends at once (nng reschedules on pipe removal). */
#define DATASYNC_RESEND_MS 90000
/* The scheme of the authorization metadata (DESIGN §11). */
#define DATASYNC_BEARER "Bearer "

struct datasync_client {
	nrpc_client *rpc; /* owned */
};

void
datasync_options_default(datasync_options *o)
{
	memset(o, 0, sizeof(*o));
}

nrpc_code
datasync_connect(const char *const *urls, size_t n_urls, int64_t timeout_ms,
    const char *client_name, datasync_client **out, nrpc_status *st)
{
	datasync_options o;

	datasync_options_default(&o);
	o.urls = urls;
	o.n_urls = n_urls;
	o.timeout_ms = timeout_ms;
	o.client_name = client_name;
	return datasync_connect_opts(&o, out, st);
}

nrpc_code
datasync_connect_opts(const datasync_options *o, datasync_client **out,
    nrpc_status *st)
{
	nrpc_client_config cfg;
	datasync_client *c;
	char *bearer = NULL;
	nrpc_code rc;

	if ((c = ds_calloc(1, sizeof(*c))) == NULL) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED",
		    NULL, "out of memory");
		return st->code;
	}
	nrpc_client_config_default(&cfg);
	cfg.urls = o->urls;
	cfg.n_urls = o->n_urls;
	cfg.timeout_ms = o->timeout_ms;
	cfg.client_name = o->client_name;
	cfg.resend_ms = DATASYNC_RESEND_MS;
	cfg.tls_ca_file = o->tls_ca_file;
	cfg.tls_cert_file = o->tls_cert_file;
	cfg.tls_key_file = o->tls_key_file;
	if (o->token != NULL) {
		size_t n = strlen(o->token) + sizeof(DATASYNC_BEARER);

		if ((bearer = ds_alloc(n)) == NULL) {
			ds_free(c);
			nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED,
			    "RESOURCE_EXHAUSTED", NULL, "out of memory");
			return st->code;
		}
		(void) snprintf(bearer, n, DATASYNC_BEARER "%s", o->token);
		cfg.authorization = bearer;
	}
	rc = nrpc_client_open(&cfg, &c->rpc, st);
	if (bearer != NULL) {
		memset(bearer, 0, strlen(bearer)); /* the client has its copy */
		ds_free(bearer);
	}
	if (rc != NRPC_OK) {
		ds_free(c);
		return st->code;
	}
	*out = c;
	return NRPC_OK;
}

nrpc_client *
datasync_rpc(datasync_client *c)
{
	return c->rpc;
}

void
datasync_close(datasync_client *c)
{
	if (c == NULL) {
		return;
	}
	nrpc_client_close(c->rpc);
	ds_free(c);
}

nrpc_code
datasync_status_record(const nrpc_status *st, Datasync__V1__Record **out)
{
	Datasync__V1__Record *r;

	if (st->detail == NULL ||
	    strcmp(st->detail_type, datasync__v1__record__descriptor.name) != 0) {
		return NRPC_NOT_FOUND;
	}
	r = datasync__v1__record__unpack(NULL, st->detail_len, st->detail);
	if (r == NULL) {
		return NRPC_INTERNAL;
	}
	*out = r;
	return NRPC_OK;
}

/* datasync_read fetches the current record; *cur stays NULL when the key
 * does not exist. */
static nrpc_code
datasync_read(datasync_client *c, const char *key, Datasync__V1__Record **cur,
    nrpc_status *st)
{
	Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *resp = NULL;
	nrpc_code rv;

	*cur = NULL;
	req.key = (char *) key;
	rv = datasync_v1_data_sync_get(c->rpc, &req, &resp, NULL, st);
	if (rv == NRPC_NOT_FOUND) {
		nrpc_status_fini(st);
		return NRPC_OK;
	}
	if (rv != NRPC_OK) {
		return rv;
	}
	/* Keep only the record: detach it from the response. */
	*cur = resp->record;
	resp->record = NULL;
	datasync__v1__get_response__free_unpacked(resp, NULL);
	return NRPC_OK;
}

nrpc_code
datasync_update_with_retry(datasync_client *c, const char *key,
    datasync_mutate_fn fn, void *ctx, unsigned max_attempts,
    datasync_retry_stats *stats, nrpc_status *st)
{
	Datasync__V1__Record *cur = NULL;
	datasync_retry_stats s = {0, 0, 0};
	nrpc_code rv;

	if (max_attempts == 0) {
		max_attempts = 1;
	}
	if ((rv = datasync_read(c, key, &cur, st)) != NRPC_OK) {
		goto out;
	}
	for (;;) {
		Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
		Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
		Datasync__V1__UpdateResponse *resp = NULL;
		Datasync__V1__Record *next = NULL;
		uint8_t *value = NULL;
		size_t len = 0;

		if (fn(ctx, cur, &value, &len) != 0) {
			free(value);
			nrpc_status_set(st, NRPC_CANCELLED, "MUTATE_DECLINED", NULL,
			    "the mutate function declined to write");
			rv = st->code;
			goto out;
		}
		req.key = (char *) key;
		req.value.data = value;
		req.value.len = len;
		req.content_type = cur != NULL ? cur->content_type : (char *) "";
		if (cur != NULL) {
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
			pre.if_version = cur->version;
		} else {
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
			pre.if_absent = 1;
		}
		req.precondition = &pre;
		s.attempts++;
		rv = datasync_v1_data_sync_update(c->rpc, &req, &resp, NULL, st);
		free(value);
		if (rv == NRPC_OK) {
			/* The reply's record has no value (return_value unset):
			 * only its version is kept. */
			s.version = resp->record != NULL ? resp->record->version : 0;
			datasync__v1__update_response__free_unpacked(resp, NULL);
			goto out;
		}
		if (strcmp(st->reason, "VERSION_CONFLICT") != 0 ||
		    s.attempts >= max_attempts) {
			goto out;
		}
		s.conflicts++;
		/* The conflict carries the current record: retry against it
		 * without another round trip. A tombstone means "absent". */
		if (datasync_status_record(st, &next) != NRPC_OK) {
			next = NULL;
			if ((rv = datasync_read(c, key, &next, st)) != NRPC_OK) {
				goto out;
			}
		} else if (next->deleted || next->version == 0) {
			datasync__v1__record__free_unpacked(next, NULL);
			next = NULL;
		}
		nrpc_status_fini(st);
		if (cur != NULL) {
			datasync__v1__record__free_unpacked(cur, NULL);
		}
		cur = next;
	}
out:
	if (cur != NULL) {
		datasync__v1__record__free_unpacked(cur, NULL);
	}
	if (stats != NULL) {
		*stats = s;
	}
	return rv;
}

/*
 * dsh_status.c - store errors -> nrpc status with reason and detail.
 */
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "dsh_int.h"

/* The code of each store error (DESIGN §4; grpc-gateway then maps codes to
 * HTTP). The reason travels beside it, so clients never parse messages. */
static nrpc_code
dsh_code_of(store_err e)
{
	switch (e) {
	case STORE_OK:
		return NRPC_OK;
	case STORE_EPRECONDITION_REQUIRED:
	case STORE_ELOCKED:
	case STORE_ELOCK_EXPIRED:
	case STORE_ENOT_LOCKED:
		return NRPC_FAILED_PRECONDITION;
	case STORE_ECONFLICT:
		return NRPC_ABORTED;
	case STORE_ETOKEN_MISMATCH:
		return NRPC_PERMISSION_DENIED;
	case STORE_ENOTFOUND:
		return NRPC_NOT_FOUND;
	case STORE_ECOMPACTED:
	case STORE_EREV_COMPACTED:
		return NRPC_OUT_OF_RANGE;
	case STORE_EINVAL:
	case STORE_ETOOLARGE:
	case STORE_EREQUEST_ID_REUSED:
		/* A field over its limit is a bad argument, not an exhausted
		 * server resource; the reason TOO_LARGE tells them apart. */
		return NRPC_INVALID_ARGUMENT;
	case STORE_ENOMEM:
		return NRPC_RESOURCE_EXHAUSTED;
	case STORE_ECLOSED:
	case STORE_EBUSY:
	case STORE_EUNAVAILABLE:
		/* DB_BUSY: another process holds the database's lock; the
		 * write was not applied and a retry later may succeed (the
		 * gateway adds Retry-After to every 503). */
		return NRPC_UNAVAILABLE;
	case STORE_EIO:
		return NRPC_INTERNAL;
	}
	return NRPC_INTERNAL;
}

nrpc_code
dsh_status_from_store(const store_error *err, const store_record *rec,
    bool reader, nrpc_status *st)
{
	nrpc_code code = dsh_code_of(err->code);

	nrpc_status_set(st, code, store_reason(err->code),
	    err->field[0] != '\0' ? err->field : NULL, "%s",
	    err->message[0] != '\0' ? err->message : store_strerror(err->code));
	if (err->code == STORE_EBUSY || err->code == STORE_EUNAVAILABLE) {
		st->retry_after_ms = DSH_RETRY_AFTER_MS;
	}
	if (rec != NULL &&
	    (err->code == STORE_ECONFLICT || err->code == STORE_ELOCKED)) {
		Datasync__V1__Record view;
		Datasync__V1__LockInfo lock;
		size_t n;
		uint8_t *buf;

		dsh_record_view(rec, reader && err->code == STORE_ECONFLICT,
		    &view, &lock);
		if (!reader) {
			/* A write-only token learns no more than a CAS retry
			 * needs: a Get would be refused to it. */
			view.content_type = (char *) "";
			view.updated_by = (char *) "";
			view.created_at_ms = 0;
			view.updated_at_ms = 0;
		}
		n = datasync__v1__record__get_packed_size(&view);
		/* Without memory for the detail the status still says what
		 * happened; the client can Get the record itself. */
		if ((buf = ds_alloc(n)) != NULL) {
			(void) datasync__v1__record__pack(&view, buf);
			st->detail = buf;
			st->detail_len = n;
			(void) snprintf(st->detail_type, sizeof(st->detail_type),
			    "%s", datasync__v1__record__descriptor.name);
		}
	}
	return code;
}

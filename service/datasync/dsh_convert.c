/*
 * dsh_convert.c - protobuf messages <-> store structs; pure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dsh_int.h"

void
dsh_store_error(store_error *err, store_err code, const char *field,
    const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	(void) snprintf(err->field, sizeof(err->field), "%s",
	    field != NULL ? field : "");
	va_start(ap, fmt);
	(void) vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

void
dsh_record_view(const store_record *rec, bool include_value,
    Datasync__V1__Record *out, Datasync__V1__LockInfo *lock)
{
	datasync__v1__record__init(out);
	out->key = rec->key != NULL ? rec->key : (char *) "";
	if (include_value && rec->value_len > 0) {
		out->value.data = rec->value;
		out->value.len = rec->value_len;
	}
	out->content_type =
	    rec->content_type != NULL ? rec->content_type : (char *) "";
	out->updated_by = rec->updated_by != NULL ? rec->updated_by : (char *) "";
	out->version = rec->version;
	out->revision = rec->revision;
	out->created_at_ms = rec->created_at_ms;
	out->updated_at_ms = rec->updated_at_ms;
	out->deleted = rec->deleted;
	if (rec->locked) {
		datasync__v1__lock_info__init(lock);
		lock->owner =
		    rec->lock.owner != NULL ? rec->lock.owner : (char *) "";
		lock->expires_at_ms = rec->lock.expires_at_ms;
		lock->fencing_token = rec->lock.fencing_token;
		out->lock = lock;
	}
}

/* dsh_str: a protobuf-c string as (ptr, len); protobuf-c never leaves a
 * string field NULL, but a hand-built message might. */
static size_t
dsh_len(const char *s)
{
	return s != NULL ? strlen(s) : 0;
}

static store_err
dsh_precond(const Datasync__V1__Precondition *p, store_precond *out,
    store_error *err)
{
	out->kind = STORE_PRECOND_NONE;
	out->version = 0;
	out->versions = NULL;
	out->n_versions = 0;
	if (p == NULL) {
		return STORE_OK; /* the store refuses: PRECONDITION_REQUIRED */
	}
	switch (p->kind_case) {
	case DATASYNC__V1__PRECONDITION__KIND__NOT_SET:
		return STORE_OK;
	case DATASYNC__V1__PRECONDITION__KIND_IF_VERSION:
		if (p->if_version == 0) {
			dsh_store_error(err, STORE_EINVAL, "precondition.if_version",
			    "precondition.if_version must be >= 1 (versions "
			    "start at 1; use if_absent to create)");
			return STORE_EINVAL;
		}
		out->kind = STORE_PRECOND_IF_VERSION;
		out->version = p->if_version;
		return STORE_OK;
	case DATASYNC__V1__PRECONDITION__KIND_IF_VERSION_IN:
		/* The store checks the list (length, zeros) in store_validate,
		 * against the limits in force. */
		out->kind = STORE_PRECOND_IF_VERSION_IN;
		if (p->if_version_in != NULL) {
			out->versions = p->if_version_in->versions;
			out->n_versions = p->if_version_in->n_versions;
		}
		return STORE_OK;
	case DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT:
		out->kind = STORE_PRECOND_IF_ABSENT;
		if (!p->if_absent) {
			break;
		}
		return STORE_OK;
	case DATASYNC__V1__PRECONDITION__KIND_IF_EXISTS:
		out->kind = STORE_PRECOND_IF_EXISTS;
		if (!p->if_exists) {
			break;
		}
		return STORE_OK;
	case DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL:
		out->kind = STORE_PRECOND_UNCONDITIONAL;
		if (!p->unconditional) {
			break;
		}
		return STORE_OK;
	default:
		dsh_store_error(err, STORE_EINVAL, "precondition",
		    "precondition has an unknown kind (%d)", (int) p->kind_case);
		return STORE_EINVAL;
	}
	/* A oneof member set to false ("if_absent": false) says nothing
	 * about what the writer expects: refuse rather than guess. */
	out->kind = STORE_PRECOND_NONE;
	dsh_store_error(err, STORE_EINVAL, "precondition",
	    "a precondition flag must be true when it is set");
	return STORE_EINVAL;
}

static store_err
dsh_token(const char *text, store_write *w, store_error *err)
{
	size_t n = dsh_len(text);

	w->has_token = false;
	if (n == 0) {
		return STORE_OK;
	}
	if (store_token_parse(text, n, &w->token, err) != STORE_OK) {
		return err->code;
	}
	w->has_token = true;
	return STORE_OK;
}

static void
dsh_ids(const char *request_id, const char *author, const dsh_call_ids *ids,
    store_write *w)
{
	if (dsh_len(request_id) == 0 && ids != NULL) {
		request_id = ids->request_id;
	}
	if (dsh_len(author) == 0 && ids != NULL) {
		author = ids->client_name;
	}
	w->request_id = request_id;
	w->request_id_len = dsh_len(request_id);
	w->caller = ids != NULL ? ids->caller : NULL;
	w->caller_len = dsh_len(w->caller);
	w->author = author;
	w->author_len = dsh_len(author);
}

store_err
dsh_write_from_update(const Datasync__V1__UpdateRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err)
{
	store_err rv;

	memset(w, 0, sizeof(*w));
	w->op = STORE_OP_UPDATE;
	w->key = req->key;
	w->key_len = dsh_len(req->key);
	w->value = req->value.data;
	w->value_len = req->value.len;
	w->content_type = req->content_type;
	w->content_type_len = dsh_len(req->content_type);
	dsh_ids(req->request_id, req->author, ids, w);
	if ((rv = dsh_precond(req->precondition, &w->precond, err)) != STORE_OK) {
		return rv;
	}
	return dsh_token(req->lock_token, w, err);
}

store_err
dsh_write_from_delete(const Datasync__V1__DeleteRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err)
{
	store_err rv;

	memset(w, 0, sizeof(*w));
	w->op = STORE_OP_DELETE;
	w->key = req->key;
	w->key_len = dsh_len(req->key);
	dsh_ids(req->request_id, req->author, ids, w);
	if ((rv = dsh_precond(req->precondition, &w->precond, err)) != STORE_OK) {
		return rv;
	}
	return dsh_token(req->lock_token, w, err);
}

store_err
dsh_write_from_lock(const Datasync__V1__LockRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err)
{
	memset(w, 0, sizeof(*w));
	w->op = STORE_OP_LOCK;
	w->key = req->key;
	w->key_len = dsh_len(req->key);
	w->owner = req->owner;
	w->owner_len = dsh_len(req->owner);
	w->ttl_ms = req->ttl_ms;
	dsh_ids(req->request_id, NULL, ids, w);
	w->author = NULL; /* a lock's author is its owner */
	w->author_len = 0;
	return dsh_token(req->lock_token, w, err);
}

store_err
dsh_write_from_unlock(const Datasync__V1__UnlockRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err)
{
	store_err rv;

	memset(w, 0, sizeof(*w));
	w->op = STORE_OP_UNLOCK;
	w->key = req->key;
	w->key_len = dsh_len(req->key);
	dsh_ids(req->request_id, NULL, ids, w);
	w->author = NULL;
	w->author_len = 0;
	if ((rv = dsh_token(req->lock_token, w, err)) != STORE_OK) {
		return rv;
	}
	if (!w->has_token) {
		dsh_store_error(err, STORE_EINVAL, "lock_token",
		    "lock_token is required to unlock");
		return STORE_EINVAL;
	}
	return STORE_OK;
}

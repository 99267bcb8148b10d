/*
 * dsh_int.h - private to service/datasync: the pure request -> store_write
 * conversions shared by the handlers, the writer and the fuzz harness.
 */
#ifndef DSH_INT_H
#define DSH_INT_H

#include "datasync_handlers.h"

/* dsh_call_ids: identity that the envelope supplies when the message does
 * not (request_id, author), and the caller that scopes request ids.
 * Borrowed strings, never NULL. */
typedef struct dsh_call_ids {
	const char *request_id;
	const char *client_name;
	const char *caller; /* the envelope's client name today; the
	                     * authenticated principal once there is one */
} dsh_call_ids;

/* The dsh_write_from_* functions fill *w to borrow from the request (and
 * ids), valid while they are. They check what the store cannot see in a
 * store_write (the precondition oneof, the token's text form) and return
 * STORE_OK or the error also written to err. */
store_err dsh_write_from_update(const Datasync__V1__UpdateRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err);
store_err dsh_write_from_delete(const Datasync__V1__DeleteRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err);
store_err dsh_write_from_lock(const Datasync__V1__LockRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err);
store_err dsh_write_from_unlock(const Datasync__V1__UnlockRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err);

/* dsh_store_error sets err to code with a field and formatted message. */
void dsh_store_error(store_error *err, store_err code, const char *field,
    const char *fmt, ...) DS_PRINTF(4, 5);

#endif /* DSH_INT_H */

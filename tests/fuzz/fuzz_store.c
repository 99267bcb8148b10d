/*
 * fuzz_store.c - store input validation: bytes -> a store_write (and a
 * List request, and a token) -> store_validate -> when valid, the write
 * applied to an in-memory store. Nothing may crash, leak or trip a
 * sanitizer; a write the validator accepts must never make SQL fail.
 *
 * Input layout: byte 0 = op and flags, byte 1 = precondition kind, then
 * fields separated by 0xFF bytes (which UTF-8 never contains): key, value,
 * content_type, owner, author, request_id, token text, list prefix, list
 * page token.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static store *fz_store;
static store_conn *fz_conn;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	store_config cfg;
	store_error err;

	(void) argc;
	(void) argv;
	store_config_default(&cfg);
	cfg.path = ":memory:";
	cfg.limits.max_value_bytes = 4096;
	cfg.limits.history = 2;
	if (store_open(&cfg, &fz_store, &err) != STORE_OK ||
	    store_conn_open(fz_store, &fz_conn, &err) != STORE_OK) {
		fprintf(stderr, "fuzz_store: %s\n", err.message);
		abort();
	}
	return 0;
}

typedef struct fz_field {
	const char *p;
	size_t n;
} fz_field;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_field f[9];
	size_t nf = 0;
	size_t start = 2;
	store_write w;
	store_write_result r;
	store_error err;
	store_limits lim;
	store_list_req lr;
	store_list_page page;
	uint64_t vs[40]; /* over the default max_if_version_in (32) */
	size_t n_vs;

	if (size < 2) {
		return 0;
	}
	memset(f, 0, sizeof(f));
	for (size_t i = 2; i <= size && nf < 9; i++) {
		if (i == size || data[i] == 0xff) {
			f[nf].p = (const char *) data + start;
			f[nf].n = i - start;
			nf++;
			start = i + 1;
		}
	}
	memset(&w, 0, sizeof(w));
	w.op = (store_op) (1 + (data[0] & 3));
	w.key = f[0].p;
	w.key_len = f[0].n;
	w.value = (const uint8_t *) f[1].p;
	w.value_len = f[1].n;
	w.content_type = f[2].p;
	w.content_type_len = f[2].n;
	w.owner = f[3].p;
	w.owner_len = f[3].n;
	w.author = f[4].p;
	w.author_len = f[4].n;
	w.request_id = f[5].p;
	w.request_id_len = f[5].n;
	w.precond.kind = (store_precond_kind) (data[1] % 6);
	w.precond.version = data[1] >> 3;
	/* if_version_in: the page token's bytes as small versions (0 and
	 * over-long lists included); the List prefix doubles as caller. */
	n_vs = f[8].n < sizeof(vs) / sizeof(vs[0]) ? f[8].n
	                                           : sizeof(vs) / sizeof(vs[0]);
	for (size_t i = 0; i < n_vs; i++) {
		vs[i] = (uint8_t) f[8].p[i] % 8;
	}
	w.precond.versions = vs;
	w.precond.n_versions = n_vs;
	w.caller = f[7].p;
	w.caller_len = f[7].n;
	w.ttl_ms = (int64_t) (data[0] >> 2) * 97 - 500;
	if (f[6].n > 0 &&
	    store_token_parse(f[6].p, f[6].n, &w.token, &err) == STORE_OK) {
		w.has_token = true;
	}

	/* The validator alone, with the defaults and with tight limits. */
	lim = store_limits_default();
	(void) store_validate(&lim, &w, &err);
	lim.max_key_bytes = 4;
	lim.max_value_bytes = 4;
	lim.max_owner_bytes = 2;
	(void) store_validate(&lim, &w, &err);

	/* Through the store: the validator runs again inside, and whatever
	 * it accepts must apply or be refused by a rule, never by SQL. */
	memset(&r, 0, sizeof(r));
	if (store_apply(fz_conn, &w, &r) == STORE_EIO) {
		fprintf(stderr, "fuzz_store: a validated write failed in SQL: %s\n",
		    r.error.message);
		abort();
	}
	store_write_result_fini(&r);
	if (w.key_len > 0) {
		store_record rec;

		memset(&rec, 0, sizeof(rec));
		(void) store_get(fz_conn, w.key, w.key_len, data[1] & 7, &rec, &err);
		store_record_fini(&rec);
	}
	memset(&lr, 0, sizeof(lr));
	memset(&page, 0, sizeof(page));
	lr.prefix = f[7].p;
	lr.prefix_len = f[7].n;
	lr.page_token = f[8].p;
	lr.page_token_len = f[8].n;
	lr.page_size = data[0];
	if (store_list(fz_conn, &lr, &page, &err) == STORE_EIO) {
		fprintf(stderr, "fuzz_store: List failed in SQL: %s\n", err.message);
		abort();
	}
	store_list_page_fini(&page);
	return 0;
}

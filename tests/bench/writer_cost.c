/*
 * writer_cost.c - the writer thread's work per Update, for callgrind.
 *
 * Runs BATCHES+1 batches of BATCH CAS Updates (if_version, a request id
 * each, VALUE_BYTES bytes) through store_apply_batch on DB, preparing each
 * write first as the RPC handlers do on the receiving thread
 * (store_prepare). Batch 0 creates the keys. Under
 *   valgrind --tool=callgrind --toggle-collect=store_apply_batch
 * the collected instructions are the writer's; run with BATCHES = 0 and
 * N, and divide the difference by N * BATCH (tests/bench/writer_cost.sh).
 *
 * usage: writer_cost DB VALUE_BYTES BATCHES BATCH
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_alloc.h"
#include "store.h"

#define WC_KEY_BYTES 32

int
main(int argc, char **argv)
{
	store_config cfg;
	store *s = NULL;
	store_conn *c = NULL;
	store_error err;
	size_t vb;
	long nb, bs;
	uint8_t *val = NULL;
	uint64_t *ver = NULL;
	store_write *ws = NULL;
	store_write_result *rs = NULL;
	char *keys = NULL;
	char *rids = NULL;
	int rc = 1;

	if (argc != 5) {
		fprintf(stderr,
		    "usage: writer_cost DB VALUE_BYTES BATCHES BATCH\n");
		return 2;
	}
	vb = (size_t) strtoul(argv[2], NULL, 10);
	nb = strtol(argv[3], NULL, 10);
	bs = strtol(argv[4], NULL, 10);
	if (nb < 0 || bs < 1 || bs > 4096) {
		fprintf(stderr, "writer_cost: BATCHES >= 0, BATCH 1..4096\n");
		return 2;
	}
	if ((val = ds_alloc(vb > 0 ? vb : 1)) == NULL ||
	    (ver = ds_calloc((size_t) bs, sizeof(*ver))) == NULL ||
	    (ws = ds_calloc((size_t) bs, sizeof(*ws))) == NULL ||
	    (rs = ds_calloc((size_t) bs, sizeof(*rs))) == NULL ||
	    (keys = ds_calloc((size_t) bs, WC_KEY_BYTES)) == NULL ||
	    (rids = ds_calloc((size_t) bs, WC_KEY_BYTES)) == NULL) {
		fprintf(stderr, "writer_cost: out of memory\n");
		goto out;
	}
	memset(val, 'x', vb);
	store_config_default(&cfg);
	cfg.path = argv[1];
	cfg.durability = STORE_DURABILITY_NORMAL;
	if (store_open(&cfg, &s, &err) != STORE_OK ||
	    store_conn_open(s, &c, &err) != STORE_OK) {
		fprintf(stderr, "writer_cost: %s\n", err.message);
		goto out;
	}
	for (long b = 0; b <= nb; b++) {
		for (long i = 0; i < bs; i++) {
			store_write *w = &ws[i];
			char *key = keys + i * WC_KEY_BYTES;
			char *rid = rids + i * WC_KEY_BYTES;

			memset(w, 0, sizeof(*w));
			(void) snprintf(key, WC_KEY_BYTES, "k%06ld", i);
			(void) snprintf(rid, WC_KEY_BYTES, "r%ld-%ld", b, i);
			w->op = STORE_OP_UPDATE;
			w->key = key;
			w->key_len = strlen(key);
			w->value = val;
			w->value_len = vb;
			w->content_type = "application/octet-stream";
			w->content_type_len = strlen(w->content_type);
			w->precond.kind = b == 0 ? STORE_PRECOND_UNCONDITIONAL
			                         : STORE_PRECOND_IF_VERSION;
			w->precond.version = ver[i];
			w->request_id = rid;
			w->request_id_len = strlen(rid);
			w->caller = "writer_cost";
			w->caller_len = strlen(w->caller);
			/* The receiving thread's part (dsh_submit). */
			if (store_prepare(store_limits_of(s), w, &err) !=
			    STORE_OK) {
				fprintf(stderr, "writer_cost: %s\n", err.message);
				goto out;
			}
			memset(&rs[i], 0, sizeof(rs[i]));
		}
		if (store_apply_batch(c, ws, (size_t) bs, rs) != STORE_OK) {
			fprintf(stderr, "writer_cost: the batch failed\n");
			goto out;
		}
		for (long i = 0; i < bs; i++) {
			if (rs[i].error.code != STORE_OK) {
				fprintf(stderr, "writer_cost: write %ld: %s\n", i,
				    rs[i].error.message);
				goto out;
			}
			ver[i] = rs[i].record.version;
			store_write_result_fini(&rs[i]);
		}
	}
	printf("writer_cost: %ld batches of %ld Updates of %zu bytes\n", nb,
	    bs, vb);
	rc = 0;
out:
	for (long i = 0; rs != NULL && i < bs; i++) {
		store_write_result_fini(&rs[i]);
	}
	store_conn_close(c);
	store_close(s);
	ds_free(val);
	ds_free(ver);
	ds_free(ws);
	ds_free(rs);
	ds_free(keys);
	ds_free(rids);
	return rc;
}

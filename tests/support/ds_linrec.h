/*
 * ds_linrec.h - record a concurrent history of Get, CAS-Update and Delete
 * on a few keys of live datasyncd nodes and check each key's history with
 * ds_lincheck (DESIGN §4 rule 8). Thread i dials urls[i % n_urls], so a
 * history can span several nodes of one database (DESIGN §10).
 * Tests only; nothing in service/ or clients/ includes it.
 */
#ifndef DS_LINREC_H
#define DS_LINREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DS_LINREC_MAX_THREADS 16
#define DS_LINREC_MAX_KEYS 8
#define DS_LINREC_MAX_OPS 20000 /* per thread and key; more are dropped */

typedef struct ds_linrec_config {
	const char *const *urls; /* borrowed; thread i dials urls[i % n] */
	size_t n_urls;
	int threads;             /* 1..DS_LINREC_MAX_THREADS */
	int keys;                /* 1..DS_LINREC_MAX_KEYS */
	int seconds;             /* how long the threads run */
	uint64_t seed;           /* the random choices (ds_test_seed) */
	const char *key_prefix;  /* keys are <prefix>k<n> */
	uint64_t max_states;     /* per key; 0 = ds_lin_check's default */
} ds_linrec_config;

typedef struct ds_linrec_report {
	size_t ops;              /* operations recorded, all keys */
	size_t pending;          /* of which outcome unknown (no answer) */
	uint64_t states;         /* states the checker explored, all keys */
	int keys_linearizable;   /* keys whose history is linearizable */
	int keys_gave_up;        /* keys the checker could not decide */
	int connect_failures;    /* threads that could not connect */
} ds_linrec_report;

/* ds_linrec_run runs the threads, checks every key and prints one line
 * per key. Returns 0 with *out filled, or -1 when out of memory or a
 * thread could not start. */
int ds_linrec_run(const ds_linrec_config *cfg, ds_linrec_report *out);

#endif /* DS_LINREC_H */

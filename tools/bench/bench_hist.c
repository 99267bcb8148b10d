/*
 * bench_hist.c - the clock, random numbers, the latency histogram
 * and the report (table or one JSON object).
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bench.h"
#include "ds_alloc.h"

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail */
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* bench_rand is xorshift64*: fast, per machine, never zero. */
uint64_t
bench_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * UINT64_C(0x2545F4914F6CDD1D);
}

uint64_t
bench_seed(unsigned id)
{
	uint64_t s = (uint64_t) (id + 1) * UINT64_C(0x9E3779B97F4A7C15) ^
	    bench_now_ns();

	return s != 0 ? s : 1;
}

static size_t
bench_hist_index(uint64_t v)
{
	unsigned e;

	if (v > BENCH_HIST_MAX_NS) {
		v = BENCH_HIST_MAX_NS;
	}
	if (v < BENCH_HIST_LINEAR) {
		return (size_t) v;
	}
	e = (unsigned) (63 - __builtin_clzll(v)) - 6;
	return (size_t) e * BENCH_HIST_SUB + (size_t) (v >> e);
}

/* bench_hist_upper is the highest value of bucket i. */
static uint64_t
bench_hist_upper(size_t i)
{
	unsigned e;
	uint64_t m;

	if (i < BENCH_HIST_LINEAR) {
		return i;
	}
	e = (unsigned) (i / BENCH_HIST_SUB) - 1;
	m = i - (uint64_t) e * BENCH_HIST_SUB;
	return ((m + 1) << e) - 1;
}

void
bench_hist_record(bench_hist *h, uint64_t ns)
{
	h->counts[bench_hist_index(ns)]++;
	h->n++;
	h->sum_ns += ns;
	if (ns > h->max_ns) {
		h->max_ns = ns;
	}
}

void
bench_hist_merge(bench_hist *into, const bench_hist *h)
{
	for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
		into->counts[i] += h->counts[i];
	}
	into->n += h->n;
	into->sum_ns += h->sum_ns;
	if (h->max_ns > into->max_ns) {
		into->max_ns = h->max_ns;
	}
}

/* bench_hist_us: see bench.h. */
double
bench_hist_us(const bench_hist *h, double q)
{
	uint64_t rank;
	uint64_t seen = 0;

	if (h->n == 0) {
		return 0.0;
	}
	rank = (uint64_t) (q * (double) h->n + 0.999999);
	if (rank < 1) {
		rank = 1;
	}
	for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = bench_hist_upper(i);

			return (double) (v < h->max_ns ? v : h->max_ns) / 1000.0;
		}
	}
	return (double) h->max_ns / 1000.0;
}

/* --- results --- */

static int
bench_print_json(const bench_result *r)
{
	json_t *o;
	char *text;
	int rc = BENCH_EXIT_ERROR;

	o = json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:I, s:I}", "op",
	    r->op, "url", r->url, "concurrency", (json_int_t) r->concurrency,
	    "ops_per_sec", r->seconds > 0 ? (double) r->ops / r->seconds : 0.0,
	    "p50_us", bench_hist_us(&r->hist, 0.50), "p99_us",
	    bench_hist_us(&r->hist, 0.99), "p999_us",
	    bench_hist_us(&r->hist, 0.999), "errors",
	    (json_int_t) r->errors, "conflicts", (json_int_t) r->conflicts);
	if (o == NULL) {
		fprintf(stderr, "datasync bench: cannot build the JSON result\n");
		return rc;
	}
	/* update-hot: the figures of the no-lost-increment check. */
	if (r->hot_checked && json_object_set_new(o, "increments",
	    json_pack("{s:I, s:I, s:I, s:I}", "start", (json_int_t) r->hot_start,
	    "final", (json_int_t) r->hot_final, "acknowledged",
	    (json_int_t) r->hot_acked, "unknown",
	    (json_int_t) r->hot_unknown)) != 0) {
		fprintf(stderr, "datasync bench: cannot build the JSON result\n");
		json_decref(o);
		return rc;
	}
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
	    JSON_REAL_PRECISION(10));
	if (text != NULL) {
		printf("%s\n", text);
		free(text); /* jansson's allocator */
		rc = BENCH_EXIT_OK;
	}
	json_decref(o);
	return rc;
}

static void
bench_print_table(const bench_result *r)
{
	double mean = r->hist.n > 0 ?
	    (double) r->hist.sum_ns / (double) r->hist.n / 1000.0 : 0.0;

	printf("%-14s %5s %11s %9s %9s %9s %9s %9s %7s %9s %8s\n", "op",
	    "conc", "ops/s", "mean us", "p50 us", "p99 us", "p99.9 us",
	    "max us", "errors", "conflicts", "retries");
	printf("%-14s %5u %11.1f %9.1f %9.1f %9.1f %9.1f %9.1f %7" PRIu64
	       " %9" PRIu64 " %8" PRIu64 "\n",
	    r->op, r->concurrency,
	    r->seconds > 0 ? (double) r->ops / r->seconds : 0.0, mean,
	    bench_hist_us(&r->hist, 0.50), bench_hist_us(&r->hist, 0.99),
	    bench_hist_us(&r->hist, 0.999), (double) r->hist.max_ns / 1000.0,
	    r->errors, r->conflicts, r->retries);
	printf("(%s; %" PRIu64 " ops in %.2f s", r->url, r->ops, r->seconds);
	if (r->abandoned > 0) {
		printf("; %" PRIu64 " retries cut off at the end", r->abandoned);
	}
	printf(")\n");
}

int
bench_report(const bench_opts *o, const bench_result *r)
{
	if (o->json) {
		return bench_print_json(r);
	}
	bench_print_table(r);
	return BENCH_EXIT_OK;
}

/* --- run state shared by the machines --- */

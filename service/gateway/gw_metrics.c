/*
 * gw_metrics.c - request counters and latency histograms, rendered in the
 * Prometheus text format. Lock-free: every counter is a relaxed atomic,
 * so counting costs a few uncontended increments per request.
 */
#include <inttypes.h>
#include <string.h>

#include "gw_int.h"

/* The statuses the gateway answers; anything else counts as "other". */
static const int gw_metrics_codes[GW_METRICS_N_CODES - 1] = {
    200,
    201,
    204,
    304,
    400,
    401,
    403,
    404,
    405,
    409,
    410,
    411,
    412,
    413,
    414,
    415,
    421,
    422,
    423,
    428,
    429,
    499,
    500,
    501,
    502,
    503,
    504,
};

/* Upper bounds of the latency buckets, µs, and their labels: from a
 * cached GET over inproc:// (~100 µs) to the RPC deadline (10 s). */
static const int64_t gw_metrics_bounds_us[GW_METRICS_N_BUCKETS] = {
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    25000,
    50000,
    100000,
    250000,
    1000000,
    2500000,
    10000000,
};
static const char *const gw_metrics_bounds_s[GW_METRICS_N_BUCKETS] = {
    "0.0001",
    "0.00025",
    "0.0005",
    "0.001",
    "0.0025",
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.1",
    "0.25",
    "1",
    "2.5",
    "10",
};

void
gw_metrics_init(gw_metrics *m)
{
	memset(m, 0, sizeof(*m));
}

void
gw_metrics_begin(gw_metrics *m)
{
	atomic_fetch_add_explicit(&m->in_flight, 1, memory_order_relaxed);
}

static size_t
gw_metrics_code_index(int status)
{
	for (size_t i = 0; i < GW_METRICS_N_CODES - 1; i++) {
		if (gw_metrics_codes[i] == status) {
			return i;
		}
	}
	return GW_METRICS_N_CODES - 1;
}

void
gw_metrics_end(gw_metrics *m, gw_route route, gw_method method, int status,
    int64_t latency_us, unsigned events)
{
	size_t b = 0;

	if ((unsigned) route >= GW_ROUTE_COUNT) {
		route = GW_ROUTE_OTHER;
	}
	if ((unsigned) method >= GW_M_COUNT) {
		method = GW_M_OTHER;
	}
	if (latency_us < 0) {
		latency_us = 0;
	}
	while (
	    b < GW_METRICS_N_BUCKETS && latency_us > gw_metrics_bounds_us[b]) {
		b++;
	}
	atomic_fetch_add_explicit(
	    &m->requests[route][method][gw_metrics_code_index(status)], 1,
	    memory_order_relaxed);
	atomic_fetch_add_explicit(
	    &m->bucket[route][b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(
	    &m->sum_us[route], (uint64_t) latency_us, memory_order_relaxed);
	if (events & GW_EV_CONFLICT) {
		atomic_fetch_add_explicit(
		    &m->conflicts, 1, memory_order_relaxed);
	}
	if (events & GW_EV_LOCK_ACQUIRED) {
		atomic_fetch_add_explicit(
		    &m->lock_acquired, 1, memory_order_relaxed);
	}
	if (events & GW_EV_LOCK_RENEWED) {
		atomic_fetch_add_explicit(
		    &m->lock_renewed, 1, memory_order_relaxed);
	}
	if (events & GW_EV_LOCK_REFUSED) {
		atomic_fetch_add_explicit(
		    &m->lock_refused, 1, memory_order_relaxed);
	}
	atomic_fetch_sub_explicit(&m->in_flight, 1, memory_order_relaxed);
}

static uint64_t
gw_metrics_load(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static ds_err
gw_metrics_counter(ds_buf *out, const char *name, const char *help, uint64_t v)
{
	return ds_buf_printf(out,
	    "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help,
	    name, name, v);
}

ds_err
gw_metrics_render(gw_metrics *m, ds_buf *out)
{
	ds_err rv;

	rv = ds_buf_appends(out,
	    "# HELP datasync_gateway_requests_total HTTP requests answered "
	    "by the gateway, by route, method and status code.\n"
	    "# TYPE datasync_gateway_requests_total counter\n");
	for (int r = 0; r < GW_ROUTE_COUNT && rv == DS_OK; r++) {
		for (int me = 0; me < GW_M_COUNT && rv == DS_OK; me++) {
			for (int c = 0; c < GW_METRICS_N_CODES && rv == DS_OK;
			     c++) {
				uint64_t v =
				    gw_metrics_load(&m->requests[r][me][c]);
				char code[8];

				if (v == 0) {
					continue;
				}
				if (c == GW_METRICS_N_CODES - 1) {
					memcpy(code, "other", 6);
				} else {
					(void) snprintf(code, sizeof(code),
					    "%d", gw_metrics_codes[c]);
				}
				rv = ds_buf_printf(out,
				    "datasync_gateway_requests_total{route=\"%"
				    "s\","
				    "method=\"%s\",code=\"%s\"} %" PRIu64 "\n",
				    gw_route_name((gw_route) r),
				    gw_method_name((gw_method) me), code, v);
			}
		}
	}
	if (rv == DS_OK) {
		rv = ds_buf_appends(out,
		    "# HELP datasync_gateway_request_duration_seconds Time "
		    "from "
		    "a request's headers to its answer, by route.\n"
		    "# TYPE datasync_gateway_request_duration_seconds "
		    "histogram\n");
	}
	for (int r = 0; r < GW_ROUTE_COUNT && rv == DS_OK; r++) {
		uint64_t cum = 0;
		uint64_t counts[GW_METRICS_N_BUCKETS + 1];
		const char *rn = gw_route_name((gw_route) r);

		/* Load the buckets once, so _count is their sum even
		 * while requests are being counted. */
		for (int b = 0; b <= GW_METRICS_N_BUCKETS; b++) {
			counts[b] = gw_metrics_load(&m->bucket[r][b]);
			cum += counts[b];
		}
		if (cum == 0) {
			continue;
		}
		cum = 0;
		for (int b = 0; b <= GW_METRICS_N_BUCKETS && rv == DS_OK;
		     b++) {
			cum += counts[b];
			rv = ds_buf_printf(out,
			    "datasync_gateway_request_duration_seconds_bucket{"
			    "route=\"%s\",le=\"%s\"} %" PRIu64 "\n",
			    rn,
			    b < GW_METRICS_N_BUCKETS ? gw_metrics_bounds_s[b]
			                             : "+Inf",
			    cum);
		}
		if (rv == DS_OK) {
			uint64_t us = gw_metrics_load(&m->sum_us[r]);

			rv = ds_buf_printf(out,
			    "datasync_gateway_request_duration_seconds_sum{"
			    "route=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n"
			    "datasync_gateway_request_duration_seconds_count{"
			    "route=\"%s\"} %" PRIu64 "\n",
			    rn, us / 1000000, us % 1000000, rn, cum);
		}
	}
	if (rv == DS_OK) {
		rv = gw_metrics_counter(out,
		    "datasync_gateway_conflicts_total",
		    "Writes refused with VERSION_CONFLICT (HTTP 412 or 409).",
		    gw_metrics_load(&m->conflicts));
	}
	if (rv == DS_OK) {
		rv = gw_metrics_counter(out,
		    "datasync_gateway_lock_acquisitions_total",
		    "Locks taken (new leases).",
		    gw_metrics_load(&m->lock_acquired));
	}
	if (rv == DS_OK) {
		rv = gw_metrics_counter(out,
		    "datasync_gateway_lock_renewals_total",
		    "Leases renewed by their holder.",
		    gw_metrics_load(&m->lock_renewed));
	}
	if (rv == DS_OK) {
		rv = gw_metrics_counter(out,
		    "datasync_gateway_lock_refusals_total",
		    "Requests refused because another client holds the lock "
		    "(HTTP 423).",
		    gw_metrics_load(&m->lock_refused));
	}
	if (rv == DS_OK) {
		rv = ds_buf_printf(out,
		    "# HELP datasync_gateway_requests_in_flight HTTP requests "
		    "received and not yet answered.\n"
		    "# TYPE datasync_gateway_requests_in_flight gauge\n"
		    "datasync_gateway_requests_in_flight %" PRId64 "\n",
		    atomic_load_explicit(&m->in_flight, memory_order_relaxed));
	}
	if (rv == DS_OK) {
		rv = ds_buf_printf(out,
		    "# HELP datasync_gateway_sse_streams Server-Sent Events "
		    "streams open now (GET /v1/events).\n"
		    "# TYPE datasync_gateway_sse_streams gauge\n"
		    "datasync_gateway_sse_streams %" PRId64 "\n",
		    atomic_load_explicit(&m->sse_streams, memory_order_relaxed));
	}
	if (rv == DS_OK) {
		rv = gw_metrics_counter(out,
		    "datasync_gateway_sse_streams_opened_total",
		    "Server-Sent Events streams opened.",
		    gw_metrics_load(&m->sse_opened));
	}
	if (rv == DS_OK) {
		rv = gw_metrics_counter(out,
		    "datasync_gateway_sse_streams_refused_total",
		    "Event streams refused with 503: max_sse_streams open.",
		    gw_metrics_load(&m->sse_refused));
	}
	return rv;
}

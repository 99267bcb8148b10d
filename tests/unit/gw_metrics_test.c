/*
 * gw_metrics_test.c - counters and the Prometheus text format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_int.h"

static char *
render(gw_metrics *m)
{
	ds_buf b;
	size_t len;

	ds_buf_init(&b, 1 << 20);
	assert_int_equal(gw_metrics_render(m, &b), DS_OK);
	return (char *) ds_buf_take(&b, &len);
}

static void
assert_line(const char *text, const char *line)
{
	const char *p = strstr(text, line);

	if (p == NULL || (p != text && p[-1] != '\n') ||
	    p[strlen(line)] != '\n') {
		fail_msg("missing line '%s' in:\n%s", line, text);
	}
}

static void
test_empty_metrics_have_help_type_and_zero_counters(void **state)
{
	gw_metrics *m = malloc(sizeof(*m));
	char *t;

	(void) state;
	gw_metrics_init(m);
	t = render(m);
	assert_line(t, "# TYPE datasync_gateway_requests_total counter");
	assert_line(t, "# TYPE datasync_gateway_request_duration_seconds "
	               "histogram");
	assert_line(t, "datasync_gateway_conflicts_total 0");
	assert_line(t, "datasync_gateway_lock_acquisitions_total 0");
	assert_line(t, "datasync_gateway_lock_refusals_total 0");
	assert_line(t, "datasync_gateway_requests_in_flight 0");
	assert_null(strstr(t, "datasync_gateway_requests_total{"));
	free(t);
	free(m);
}

static void
test_requests_are_counted_by_route_method_and_code(void **state)
{
	gw_metrics *m = malloc(sizeof(*m));
	char *t;

	(void) state;
	gw_metrics_init(m);
	for (int i = 0; i < 3; i++) {
		gw_metrics_begin(m);
		gw_metrics_end(m, GW_ROUTE_RECORD, GW_M_GET, 200, 50, 0);
	}
	gw_metrics_begin(m);
	gw_metrics_end(
	    m, GW_ROUTE_RECORD, GW_M_PUT, 412, 3000, GW_EV_CONFLICT);
	gw_metrics_begin(m);
	gw_metrics_end(
	    m, GW_ROUTE_LOCK, GW_M_POST, 200, 700, GW_EV_LOCK_ACQUIRED);
	gw_metrics_begin(m);
	gw_metrics_end(
	    m, GW_ROUTE_LOCK, GW_M_POST, 423, 700, GW_EV_LOCK_REFUSED);
	gw_metrics_begin(m);
	gw_metrics_end(m, GW_ROUTE_STATIC, GW_M_GET, 418, 20000000, 0);
	gw_metrics_begin(m); /* still in flight */
	t = render(m);
	assert_line(t, "datasync_gateway_requests_total{route=\"record\","
	               "method=\"GET\",code=\"200\"} 3");
	assert_line(t, "datasync_gateway_requests_total{route=\"record\","
	               "method=\"PUT\",code=\"412\"} 1");
	assert_line(t, "datasync_gateway_requests_total{route=\"static\","
	               "method=\"GET\",code=\"other\"} 1");
	assert_line(t, "datasync_gateway_conflicts_total 1");
	assert_line(t, "datasync_gateway_lock_acquisitions_total 1");
	assert_line(t, "datasync_gateway_lock_refusals_total 1");
	assert_line(t, "datasync_gateway_requests_in_flight 1");
	free(t);
	free(m);
}

static void
test_histogram_is_cumulative_with_sum_and_count(void **state)
{
	gw_metrics *m = malloc(sizeof(*m));
	char *t;

	(void) state;
	gw_metrics_init(m);
	gw_metrics_begin(m);
	gw_metrics_end(m, GW_ROUTE_LIST, GW_M_GET, 200, 100, 0); /* le 1e-4 */
	gw_metrics_begin(m);
	gw_metrics_end(m, GW_ROUTE_LIST, GW_M_GET, 200, 101, 0);
	gw_metrics_begin(m);
	gw_metrics_end(m, GW_ROUTE_LIST, GW_M_GET, 200, 60000000, 0);
	t = render(m);
	assert_line(t, "datasync_gateway_request_duration_seconds_bucket{"
	               "route=\"list\",le=\"0.0001\"} 1");
	assert_line(t, "datasync_gateway_request_duration_seconds_bucket{"
	               "route=\"list\",le=\"0.00025\"} 2");
	assert_line(t, "datasync_gateway_request_duration_seconds_bucket{"
	               "route=\"list\",le=\"10\"} 2");
	assert_line(t, "datasync_gateway_request_duration_seconds_bucket{"
	               "route=\"list\",le=\"+Inf\"} 3");
	assert_line(t, "datasync_gateway_request_duration_seconds_sum{"
	               "route=\"list\"} 60.000201");
	assert_line(t, "datasync_gateway_request_duration_seconds_count{"
	               "route=\"list\"} 3");
	assert_null(strstr(t, "route=\"record\",le="));
	free(t);
	free(m);
}

static void
test_render_into_a_full_buffer_fails_cleanly(void **state)
{
	gw_metrics *m = malloc(sizeof(*m));
	ds_buf b;

	(void) state;
	gw_metrics_init(m);
	ds_buf_init(&b, 64);
	assert_int_equal(gw_metrics_render(m, &b), DS_ETOOLARGE);
	ds_buf_fini(&b);
	free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_empty_metrics_have_help_type_and_zero_counters),
	    cmocka_unit_test(
	        test_requests_are_counted_by_route_method_and_code),
	    cmocka_unit_test(test_histogram_is_cumulative_with_sum_and_count),
	    cmocka_unit_test(test_render_into_a_full_buffer_fails_cleanly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

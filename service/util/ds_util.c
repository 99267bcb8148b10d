/*
 * ds_util.c - the util base: errors, clocks, allocator, logging.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ds_alloc.h"
#include "ds_clock.h"
#include "ds_err.h"
#include "ds_log.h"

/* --- errors --- */

const char *
ds_strerror(ds_err e)
{
	switch (e) {
	case DS_OK:
		return "ok";
	case DS_ENOMEM:
		return "out of memory";
	case DS_ETOOLARGE:
		return "too large";
	case DS_EINVAL:
		return "invalid argument";
	case DS_EIO:
		return "I/O error";
	}
	return "unknown error";
}

/* --- clocks --- */

static int64_t
ds_clock_read(clockid_t id)
{
	struct timespec ts;

	/* clock_gettime cannot fail for these ids on Linux; a zero time
	 * would make every lease look expired, which is the safe side. */
	if (clock_gettime(id, &ts) != 0) {
		return 0;
	}
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
ds_clock_wall_now(const ds_clock *self)
{
	(void) self;
	return ds_clock_read(CLOCK_REALTIME);
}

static int64_t
ds_clock_mono_now(const ds_clock *self)
{
	(void) self;
	return ds_clock_read(CLOCK_MONOTONIC);
}

static const ds_clock ds_clock_wall_obj = {ds_clock_wall_now, NULL};
static const ds_clock ds_clock_mono_obj = {ds_clock_mono_now, NULL};

const ds_clock *
ds_clock_wall(void)
{
	return &ds_clock_wall_obj;
}

const ds_clock *
ds_clock_monotonic(void)
{
	return &ds_clock_mono_obj;
}

/* --- allocator --- */

/* ds_alloc_countdown: allocations left before injected failures start;
 * negative = injection off. The one documented global of ds_alloc.h. */
static atomic_long ds_alloc_countdown = -1;

static int
ds_alloc_should_fail(void)
{
	long v = atomic_load_explicit(&ds_alloc_countdown, memory_order_relaxed);

	while (v >= 0) {
		if (v == 0) {
			return 1;
		}
		if (atomic_compare_exchange_weak(&ds_alloc_countdown, &v, v - 1)) {
			return 0;
		}
	}
	return 0;
}

void *
ds_alloc(size_t n)
{
	if (ds_alloc_should_fail()) {
		return NULL;
	}
	return malloc(n == 0 ? 1 : n);
}

void *
ds_calloc(size_t count, size_t size)
{
	if (ds_alloc_should_fail()) {
		return NULL;
	}
	if (count == 0 || size == 0) {
		return calloc(1, 1);
	}
	/* calloc checks the product for overflow itself. */
	return calloc(count, size);
}

void *
ds_realloc(void *p, size_t n)
{
	if (ds_alloc_should_fail()) {
		return NULL;
	}
	return realloc(p, n == 0 ? 1 : n);
}

void
ds_free(void *p)
{
	free(p);
}

char *
ds_memdup(const void *p, size_t n)
{
	char *s;

	if (n == SIZE_MAX || (s = ds_alloc(n + 1)) == NULL) {
		return NULL;
	}
	if (n > 0) {
		memcpy(s, p, n);
	}
	s[n] = '\0';
	return s;
}

char *
ds_strdup(const char *s)
{
	return ds_memdup(s, strlen(s));
}

void
ds_alloc_fail_after(long n)
{
	atomic_store(&ds_alloc_countdown, n < 0 ? 0 : n);
}

void
ds_alloc_fail_reset(void)
{
	atomic_store(&ds_alloc_countdown, -1);
}

/* --- logging --- */

/* ds_log_threshold: documented in ds_log.h; set at startup. */
static atomic_int ds_log_threshold = DS_LOG_INFO;

void
ds_log_set_level(ds_log_level l)
{
	atomic_store(&ds_log_threshold, (int) l);
}

void
ds_log(ds_log_level l, const char *module, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	char line[1100];
	int n;
	int m;
	va_list ap;

	if ((int) l < atomic_load(&ds_log_threshold) || l >= DS_LOG_OFF) {
		return;
	}
	n = snprintf(line, 64, "datasync %s %s: ", names[l], module);
	if (n < 0 || n >= 64) {
		return;
	}
	va_start(ap, fmt);
	m = vsnprintf(line + n, 1024, fmt, ap);
	va_end(ap);
	if (m < 0) {
		return;
	}
	n += m < 1024 ? m : 1023;
	line[n++] = '\n';
	/* Best effort: a log line that cannot be written is dropped rather
	 * than turned into an error for the operation being logged. */
	(void) !write(STDERR_FILENO, line, (size_t) n);
}

void
ds_clock_abstime(clockid_t clk, int64_t ms, struct timespec *ts)
{
	(void) clock_gettime(clk, ts);
	ts->tv_sec += (time_t) (ms / 1000);
	ts->tv_nsec += (long) (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

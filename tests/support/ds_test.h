/*
 * ds_test.h - support shared by the tests: a fake clock and temporary
 * directories. Tests only; nothing in service/ or clients/ includes it.
 */
#ifndef DS_TEST_H
#define DS_TEST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "ds_clock.h"

/* ds_fake_clock is a clock that moves only when told to. Its base is a
 * ds_clock, so &fc->base is what the code under test gets. Thread-safe. */
typedef struct ds_fake_clock {
	ds_clock base;
	_Atomic int64_t now_ms;
} ds_fake_clock;

/* ds_fake_clock_init starts fc at start_ms. */
void ds_fake_clock_init(ds_fake_clock *fc, int64_t start_ms);

/* ds_fake_clock_advance moves fc forward by ms (may be negative). */
void ds_fake_clock_advance(ds_fake_clock *fc, int64_t ms);

/* ds_test_tmpdir creates a fresh directory under $TMPDIR (or /tmp) and
 * writes its path into out (cap bytes). Returns 0 or -1. The directory
 * and its content are removed by ds_test_rmdir. */
int ds_test_tmpdir(char *out, size_t cap);

/* ds_test_rmdir removes dir and everything in it (like rm -rf). */
void ds_test_rmdir(const char *dir);

/* ds_test_seed returns the seed for randomized tests: $DS_TEST_SEED when
 * set, else a time-based value. It prints "seed=<n>" to stderr so a
 * failing run can be replayed. */
uint64_t ds_test_seed(void);

/* ds_test_now_ms is CLOCK_MONOTONIC in milliseconds. */
int64_t ds_test_now_ms(void);

/* ds_test_send_all writes len bytes to a socket (retrying short writes
 * and EINTR, without SIGPIPE); false when the peer closed or on error. */
bool ds_test_send_all(int fd, const void *buf, size_t len);

/* ds_test_str returns n copies of c and a NUL (malloc'd; the caller
 * frees). Aborts when out of memory: a test cannot go on without it. */
char *ds_test_str(size_t n, char c);

/* ds_free_port returns a TCP port on 127.0.0.1 that was free just now
 * (another process may take it before the caller binds it), or -1. */
int ds_free_port(void);

/* ds_test_sleep_ms sleeps ms milliseconds, through signals. */
void ds_test_sleep_ms(long ms);

#endif /* DS_TEST_H */

/*
 * ds_alloc.h - the allocator every module goes through.
 *
 * It is malloc with one addition: tests can make the Nth allocation from
 * now fail, to prove that every call site handles failure and leaks
 * nothing (STYLE rules 24 and 34). The failure counter is the single
 * documented global of util: a process-wide atomic, reset by
 * ds_alloc_fail_reset(). Production code never touches it.
 */
#ifndef DS_ALLOC_H
#define DS_ALLOC_H

#include <stddef.h>

#include "ds_assert.h"

/* ds_alloc returns n bytes (owned; free with ds_free) or NULL. n == 0 is
 * treated as 1 so that NULL always means failure. Thread-safe. */
DS_WUR void *ds_alloc(size_t n);

/* ds_calloc returns zeroed memory for count * size bytes, or NULL on
 * failure or multiplication overflow. Owned; free with ds_free. */
DS_WUR void *ds_calloc(size_t count, size_t size);

/* ds_realloc is realloc: on failure it returns NULL and p is untouched
 * (still owned by the caller). */
DS_WUR void *ds_realloc(void *p, size_t n);

/* ds_free releases memory from the functions above; NULL is a no-op. */
void ds_free(void *p);

/* ds_memdup returns an owned copy of n bytes plus a terminating NUL
 * (so text can be used as a C string), or NULL. */
DS_WUR char *ds_memdup(const void *p, size_t n);

/* ds_strdup is ds_memdup(s, strlen(s)); s must be a C string. */
DS_WUR char *ds_strdup(const char *s);

/* ds_alloc_fail_after makes the allocation n calls from now (0 = the next
 * one) and every one after it fail, until ds_alloc_fail_reset(). Tests
 * only. */
void ds_alloc_fail_after(long n);

/* ds_alloc_fail_reset turns fault injection off. */
void ds_alloc_fail_reset(void);

#endif /* DS_ALLOC_H */

/*
 * ds_assert.h - "can't happen" checks that recover in release builds.
 *
 * DS_ALWAYS(x) and DS_NEVER(x) evaluate to x. In debug builds (NDEBUG not
 * defined) they abort when the expectation fails, so tests catch the bug;
 * in release builds they just return x so the caller's recovery path runs.
 * This is SQLite's ALWAYS()/NEVER() idea. Use assert() only for programmer
 * errors that have no sane recovery.
 */
#ifndef DS_ASSERT_H
#define DS_ASSERT_H

#include <assert.h>

#ifdef NDEBUG
#define DS_ALWAYS(x) (x)
#define DS_NEVER(x) (x)
#else
#define DS_ALWAYS(x) ((x) ? 1 : (assert(0 && #x), 0))
#define DS_NEVER(x) ((x) ? (assert(0 && #x), 1) : 0)
#endif

/* DS_WUR marks results that must not be ignored (STYLE rule 15). */
#define DS_WUR __attribute__((warn_unused_result))

/* DS_PRINTF marks printf-like functions for format checking. */
#define DS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

#endif /* DS_ASSERT_H */

/*
 * ds_buf.h - a growable byte buffer with a hard maximum.
 *
 * Every buffer that holds peer input has a max fixed at init; growing past
 * it returns DS_ETOOLARGE instead of allocating (curl's dynbuf, STYLE rule
 * 8). The buffer keeps a NUL after its content so text can be read as a C
 * string; the NUL is not counted in len.
 */
#ifndef DS_BUF_H
#define DS_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_assert.h"
#include "ds_err.h"

typedef struct ds_buf {
	uint8_t *ptr; /* owned; NULL until the first append */
	size_t len;   /* bytes used, not counting the trailing NUL */
	size_t cap;   /* bytes allocated */
	size_t max;   /* len never exceeds this */
} ds_buf;

/* ds_buf_init prepares an empty buffer that may hold up to max bytes.
 * Allocates nothing. */
void ds_buf_init(ds_buf *b, size_t max);

/* ds_buf_fini frees the content; a zeroed or finished buffer is a no-op. */
void ds_buf_fini(ds_buf *b);

/* ds_buf_reset empties the buffer but keeps its memory. */
void ds_buf_reset(ds_buf *b);

/* ds_buf_append adds n bytes. On DS_ETOOLARGE or DS_ENOMEM the buffer is
 * unchanged. */
DS_WUR ds_err ds_buf_append(ds_buf *b, const void *p, size_t n);

/* ds_buf_appends appends a C string. */
DS_WUR ds_err ds_buf_appends(ds_buf *b, const char *s);

/* ds_buf_printf appends formatted text; unchanged on failure. */
DS_WUR ds_err ds_buf_printf(ds_buf *b, const char *fmt, ...)
    DS_PRINTF(2, 3);
DS_WUR ds_err ds_buf_vprintf(ds_buf *b, const char *fmt, va_list ap);

/* ds_buf_take hands the content to the caller (owned; free with ds_free;
 * NUL-terminated; may be NULL when nothing was ever appended) and leaves
 * the buffer empty. */
uint8_t *ds_buf_take(ds_buf *b, size_t *len);

/* ds_buf_read_file appends the whole of the file at path to b (a
 * certificate, a key: small files read once at start). DS_ETOOLARGE when
 * it holds more than b's max allows, DS_EIO when it cannot be opened or
 * read (errno says why), DS_ENOMEM. On failure b may hold part of it;
 * the caller finishes b either way. */
DS_WUR ds_err ds_buf_read_file(ds_buf *b, const char *path);

#endif /* DS_BUF_H */

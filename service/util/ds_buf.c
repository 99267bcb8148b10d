/*
 * ds_buf.c - bounded growable buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_buf.h"

void
ds_buf_init(ds_buf *b, size_t max)
{
	b->ptr = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
ds_buf_fini(ds_buf *b)
{
	ds_free(b->ptr);
	b->ptr = NULL;
	b->len = 0;
	b->cap = 0;
}

void
ds_buf_reset(ds_buf *b)
{
	b->len = 0;
	if (b->ptr != NULL) {
		b->ptr[0] = 0;
	}
}

/* ds_buf_reserve makes room for n more bytes plus the NUL. */
static ds_err
ds_buf_reserve(ds_buf *b, size_t n)
{
	size_t need;
	size_t cap;
	uint8_t *p;

	if (n > b->max || b->len > b->max - n) {
		return DS_ETOOLARGE;
	}
	need = b->len + n + 1;
	if (need <= b->cap) {
		return DS_OK;
	}
	cap = b->cap < 64 ? 64 : b->cap;
	while (cap < need) {
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	}
	if ((p = ds_realloc(b->ptr, cap)) == NULL) {
		return DS_ENOMEM;
	}
	b->ptr = p;
	b->cap = cap;
	return DS_OK;
}

ds_err
ds_buf_append(ds_buf *b, const void *p, size_t n)
{
	ds_err rv;

	if ((rv = ds_buf_reserve(b, n)) != DS_OK) {
		return rv;
	}
	if (n > 0) {
		memcpy(b->ptr + b->len, p, n);
	}
	b->len += n;
	b->ptr[b->len] = 0;
	return DS_OK;
}

ds_err
ds_buf_appends(ds_buf *b, const char *s)
{
	return ds_buf_append(b, s, strlen(s));
}

ds_err
ds_buf_vprintf(ds_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	ds_err rv;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		return DS_EINVAL;
	}
	if ((rv = ds_buf_reserve(b, (size_t) n)) != DS_OK) {
		return rv;
	}
	(void) vsnprintf((char *) b->ptr + b->len, (size_t) n + 1, fmt, ap);
	b->len += (size_t) n;
	return DS_OK;
}

ds_err
ds_buf_printf(ds_buf *b, const char *fmt, ...)
{
	va_list ap;
	ds_err rv;

	va_start(ap, fmt);
	rv = ds_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rv;
}

uint8_t *
ds_buf_take(ds_buf *b, size_t *len)
{
	uint8_t *p = b->ptr;

	if (len != NULL) {
		*len = b->len;
	}
	b->ptr = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

ds_err
ds_buf_read_file(ds_buf *b, const char *path)
{
	FILE *f;
	char chunk[4096];
	size_t n;
	ds_err rv = DS_OK;
	int saved;

	if ((f = fopen(path, "rb")) == NULL) {
		return DS_EIO;
	}
	while (rv == DS_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		rv = ds_buf_append(b, chunk, n);
	}
	if (rv == DS_OK && ferror(f)) {
		rv = DS_EIO;
	}
	saved = errno;
	(void) fclose(f);
	errno = saved;
	return rv;
}

/*
 * pgn_arena.c - a bump allocator whose memory is released all at once.
 */
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "pgn.h"

/* Most chunks are this big; a larger request gets a chunk of its own. */
#define PGN_CHUNK_BYTES (64u * 1024)

struct pgn_chunk {
	struct pgn_chunk *next; /* owned */
	size_t size;            /* bytes in data */
	size_t used;            /* bytes handed out */
	max_align_t data[];     /* for alignment; used as bytes */
};

void
pgn_arena_init(pgn_arena *a)
{
	a->head = NULL;
}

void
pgn_arena_fini(pgn_arena *a)
{
	struct pgn_chunk *c = a->head;

	while (c != NULL) {
		struct pgn_chunk *next = c->next;

		ds_free(c);
		c = next;
	}
	a->head = NULL;
}

void *
pgn_arena_alloc(pgn_arena *a, size_t n)
{
	const size_t align = alignof(max_align_t);
	struct pgn_chunk *c = a->head;
	size_t size;
	uint8_t *p;

	if (n > SIZE_MAX - align) {
		return NULL;
	}
	n = (n + align - 1) / align * align;
	if (c == NULL || c->size - c->used < n) {
		size = n > PGN_CHUNK_BYTES ? n : PGN_CHUNK_BYTES;
		if (size > SIZE_MAX - sizeof(*c)) {
			return NULL;
		}
		if ((c = ds_alloc(sizeof(*c) + size)) == NULL) {
			return NULL;
		}
		c->size = size;
		c->used = 0;
		/* A big private chunk goes behind the head, so that the rest
		 * of the head chunk is still used by later small requests. */
		if (a->head != NULL && size > PGN_CHUNK_BYTES) {
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
	}
	p = (uint8_t *) c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

void *
pgn_arena_array(pgn_arena *a, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size) {
		return NULL;
	}
	return pgn_arena_alloc(a, n * size);
}

char *
pgn_arena_strndup(pgn_arena *a, const char *s, size_t n)
{
	char *p;

	if (n == SIZE_MAX || (p = pgn_arena_alloc(a, n + 1)) == NULL) {
		return NULL;
	}
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *
pgn_arena_printf(pgn_arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (p = pgn_arena_alloc(a, (size_t) n + 1)) == NULL) {
		return NULL;
	}
	va_start(ap, fmt);
	(void) vsnprintf(p, (size_t) n + 1, fmt, ap); /* sized just above */
	va_end(ap);
	return p;
}

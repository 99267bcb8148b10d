/*
 * pgn_emit.c - a bounded, indenting text emitter with sticky errors.
 *
 * The generated code follows the house style (.clang-format): tabs,
 * PGN_COLUMNS columns, parameters continued on lines indented by four
 * spaces, block comments. Lines are wrapped here rather than left to a
 * formatter so that gen/ is stable without clang-format in the loop.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pgn.h"

void
pgn_emit_init(pgn_emit *e, pgn_arena *arena, size_t max)
{
	ds_buf_init(&e->out, max);
	ds_buf_init(&e->scratch, max);
	ds_buf_init(&e->comment, max);
	e->arena = arena;
	e->depth = 0;
	e->bol = true;
	e->err = DS_OK;
}

void
pgn_emit_fini(pgn_emit *e)
{
	ds_buf_fini(&e->out);
	ds_buf_fini(&e->scratch);
	ds_buf_fini(&e->comment);
}

static void
pgn_emit_check(pgn_emit *e, ds_err rv)
{
	if (rv != DS_OK && e->err == DS_OK) {
		e->err = rv;
	}
}

/* pgn_emit_text appends s[0..n), indenting each line that has text. */
static void
pgn_emit_text(pgn_emit *e, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && e->err == DS_OK) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t len = nl != NULL ? (size_t) (nl - (s + i)) + 1 : n - i;
		int d;

		if (e->bol && s[i] != '\n') {
			for (d = 0; d < e->depth; d++) {
				pgn_emit_check(e, ds_buf_append(&e->out, "\t", 1));
			}
		}
		pgn_emit_check(e, ds_buf_append(&e->out, s + i, len));
		e->bol = nl != NULL;
		i += len;
	}
}

static void
pgn_emit_vf(pgn_emit *e, const char *fmt, va_list ap)
{
	if (e->err != DS_OK) {
		return;
	}
	ds_buf_reset(&e->scratch);
	pgn_emit_check(e, ds_buf_vprintf(&e->scratch, fmt, ap));
	if (e->err == DS_OK && e->scratch.len > 0) {
		pgn_emit_text(e, (const char *) e->scratch.ptr, e->scratch.len);
	}
}

void
pgn_emitf(pgn_emit *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pgn_emit_vf(e, fmt, ap);
	va_end(ap);
}

void
pgn_emit_in(pgn_emit *e)
{
	e->depth++;
}

void
pgn_emit_out(pgn_emit *e)
{
	if (DS_ALWAYS(e->depth > 0)) {
		e->depth--;
	}
}

const char *
pgn_emit_str(pgn_emit *e, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	if (e->err != DS_OK) {
		return "";
	}
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (s = pgn_arena_alloc(e->arena, (size_t) n + 1)) == NULL) {
		pgn_emit_check(e, DS_ENOMEM);
		return "";
	}
	va_start(ap, fmt);
	(void) vsnprintf(s, (size_t) n + 1, fmt, ap); /* sized just above */
	va_end(ap);
	return s;
}

/* pgn_emit_indent_cols is the width of the current indentation. */
static size_t
pgn_emit_indent_cols(const pgn_emit *e)
{
	return (size_t) e->depth * 8;
}

void
pgn_emit_list(pgn_emit *e, const char *head, const char *const *items,
    size_t n, const char *tail)
{
	size_t col = pgn_emit_indent_cols(e) + strlen(head);
	size_t i;

	pgn_emitf(e, "%s", head);
	for (i = 0; i < n; i++) {
		const char *sep = i + 1 < n ? "," : tail;
		size_t w = strlen(items[i]) + strlen(sep);

		if (i == 0) {
			pgn_emitf(e, "%s%s", items[i], sep);
			col += w;
		} else if (col + 1 + w > PGN_COLUMNS) {
			pgn_emitf(e, "\n    %s%s", items[i], sep);
			col = pgn_emit_indent_cols(e) + 4 + w;
		} else {
			pgn_emitf(e, " %s%s", items[i], sep);
			col += 1 + w;
		}
	}
	if (n == 0) {
		pgn_emitf(e, "%s", tail);
	}
}

void
pgn_emit_decl(pgn_emit *e, const char *type, const char *rest)
{
	if (pgn_emit_indent_cols(e) + strlen(type) + 1 + strlen(rest) <=
	    PGN_COLUMNS) {
		pgn_emitf(e, "%s %s\n", type, rest);
	} else {
		pgn_emitf(e, "%s\n    %s\n", type, rest);
	}
}

/* --- block comments --- */

/* The comment is collected as lines separated by '\n' in e->comment and
 * written by pgn_emit_comment_end, which needs to know which line is the
 * last to close the comment on it. */

void
pgn_emit_comment_begin(pgn_emit *e)
{
	ds_buf_reset(&e->comment);
}

static void
pgn_emit_cline(pgn_emit *e, const char *s, size_t n)
{
	pgn_emit_check(e, ds_buf_append(&e->comment, s, n));
	pgn_emit_check(e, ds_buf_append(&e->comment, "\n", 1));
}

/* pgn_emit_width is the room for text after " * ". */
static size_t
pgn_emit_width(const pgn_emit *e)
{
	size_t used = pgn_emit_indent_cols(e) + 3;

	return used + 20 < PGN_COLUMNS ? PGN_COLUMNS - used : 20;
}

void
pgn_emit_para(pgn_emit *e, const char *fmt, ...)
{
	size_t width = pgn_emit_width(e);
	const char *p;
	const char *line;
	size_t len = 0;
	va_list ap;

	if (e->err != DS_OK) {
		return;
	}
	ds_buf_reset(&e->scratch);
	va_start(ap, fmt);
	pgn_emit_check(e, ds_buf_vprintf(&e->scratch, fmt, ap));
	va_end(ap);
	if (e->err != DS_OK || e->scratch.len == 0) {
		return;
	}
	/* Greedy word wrap; a word longer than the width stands alone. */
	p = (const char *) e->scratch.ptr;
	line = NULL;
	while (*p != 0) {
		const char *w;
		size_t wl;

		while (*p == ' ') {
			p++;
		}
		w = p;
		while (*p != 0 && *p != ' ') {
			p++;
		}
		if ((wl = (size_t) (p - w)) == 0) {
			break;
		}
		if (line != NULL && (size_t) (w + wl - line) <= width) {
			len = (size_t) (w + wl - line);
			continue;
		}
		if (line != NULL) {
			pgn_emit_cline(e, line, len);
		}
		line = w;
		len = wl;
	}
	if (line != NULL) {
		pgn_emit_cline(e, line, len);
	}
}

void
pgn_emit_verbatim(pgn_emit *e, const char *lines)
{
	const char *p = lines;

	while (*p != 0) {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t) (nl - p) : strlen(p);

		pgn_emit_cline(e, p, len);
		p += len;
		if (*p == '\n') {
			p++;
		}
	}
}

void
pgn_emit_blank(pgn_emit *e)
{
	pgn_emit_cline(e, "", 0);
}

void
pgn_emit_comment_end(pgn_emit *e)
{
	const char *p;
	const char *end;
	bool first = true;

	if (e->err != DS_OK || e->comment.len == 0) {
		return;
	}
	p = (const char *) e->comment.ptr;
	end = p + e->comment.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t) (end - p));
		size_t len = (size_t) (nl - p);
		bool last = nl + 1 == end;

		pgn_emitf(e, "%s%s%.*s", first ? "/*" : " *",
		    len > 0 ? " " : "", (int) len, p);
		if (last) {
			if (len + 3 <= pgn_emit_width(e)) {
				pgn_emitf(e, " */\n");
			} else {
				pgn_emitf(e, "\n */\n");
			}
		} else {
			pgn_emitf(e, "\n");
		}
		first = false;
		p = nl + 1;
	}
}

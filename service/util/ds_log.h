/*
 * ds_log.h - one-line log records on stderr.
 *
 * The level threshold is the one documented global besides the allocator's
 * fault counter: set once at startup by the program (datasyncd --quiet),
 * read everywhere. Each record is written with one write(2), so lines from
 * different threads do not interleave.
 */
#ifndef DS_LOG_H
#define DS_LOG_H

#include "ds_assert.h"

typedef enum ds_log_level {
	DS_LOG_DEBUG = 0,
	DS_LOG_INFO,
	DS_LOG_WARN,
	DS_LOG_ERROR,
	DS_LOG_OFF,
} ds_log_level;

/* ds_log_set_level sets the threshold (default DS_LOG_INFO). */
void ds_log_set_level(ds_log_level l);

/* ds_log writes "datasync <level> <module>: <message>\n" when l is at or
 * above the threshold. Messages longer than 1 KiB are truncated. */
void ds_log(ds_log_level l, const char *module, const char *fmt, ...)
    DS_PRINTF(3, 4);

#endif /* DS_LOG_H */

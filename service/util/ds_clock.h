/*
 * ds_clock.h - the injectable clock.
 *
 * Everything that compares times (lease expiry, deadlines) reads time
 * through a ds_clock, never from time() directly, so tests can advance a
 * fake clock instead of sleeping (STYLE rule 21). A ds_clock is a function
 * pointer and an argument; it must be safe to call from any thread.
 */
#ifndef DS_CLOCK_H
#define DS_CLOCK_H

#include <stdint.h>
#include <time.h>

typedef struct ds_clock ds_clock;
struct ds_clock {
	/* now_ms returns milliseconds; wall clocks since the Unix epoch,
	 * monotonic clocks since an arbitrary point. */
	int64_t (*now_ms)(const ds_clock *self);
	void *arg; /* for the implementation; borrowed */
};

/* ds_clock_wall returns the system's real-time clock (CLOCK_REALTIME).
 * The result is a static object: borrowed forever, thread-safe. */
const ds_clock *ds_clock_wall(void);

/* ds_clock_monotonic returns CLOCK_MONOTONIC, for deadlines and timing.
 * Static object, borrowed forever, thread-safe. */
const ds_clock *ds_clock_monotonic(void);

/* ds_clock_now_ms reads c; c must not be NULL. */
static inline int64_t
ds_clock_now_ms(const ds_clock *c)
{
	return c->now_ms(c);
}

/* ds_clock_abstime sets *ts to ms from now on the POSIX clock clk: the
 * deadline of a pthread_cond_timedwait on a condition variable that uses
 * clk (CLOCK_MONOTONIC where its attributes say so). */
void ds_clock_abstime(clockid_t clk, int64_t ms, struct timespec *ts);

#endif /* DS_CLOCK_H */

/*
 * ds_test.c - fake clock, temporary directories, seeds.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ds_test.h"

static int64_t
ds_fake_clock_now(const ds_clock *self)
{
	ds_fake_clock *fc = (ds_fake_clock *) self->arg;

	return atomic_load(&fc->now_ms);
}

void
ds_fake_clock_init(ds_fake_clock *fc, int64_t start_ms)
{
	fc->base.now_ms = ds_fake_clock_now;
	fc->base.arg = fc;
	atomic_store(&fc->now_ms, start_ms);
}

void
ds_fake_clock_advance(ds_fake_clock *fc, int64_t ms)
{
	atomic_fetch_add(&fc->now_ms, ms);
}

int
ds_test_tmpdir(char *out, size_t cap)
{
	const char *base = getenv("TMPDIR");
	int n;

	if (base == NULL || base[0] == '\0') {
		base = "/tmp";
	}
	n = snprintf(out, cap, "%s/dstest.XXXXXX", base);
	if (n < 0 || (size_t) n >= cap) {
		return -1;
	}
	return mkdtemp(out) == NULL ? -1 : 0;
}

static int
ds_test_rm_one(const char *path, const struct stat *sb, int flag,
    struct FTW *ftw)
{
	(void) sb;
	(void) flag;
	(void) ftw;
	(void) remove(path); /* best effort: a leftover temp file is harmless */
	return 0;
}

void
ds_test_rmdir(const char *dir)
{
	(void) nftw(dir, ds_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t
ds_test_seed(void)
{
	const char *s = getenv("DS_TEST_SEED");
	uint64_t seed;

	if (s != NULL && s[0] != '\0') {
		seed = strtoull(s, NULL, 0);
	} else {
		struct timespec ts;

		(void) clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t) ts.tv_sec * 1000000007u ^ (uint64_t) ts.tv_nsec;
	}
	fprintf(stderr, "seed=%" PRIu64 " (replay with DS_TEST_SEED=%" PRIu64
	    ")\n", seed, seed);
	return seed;
}

int64_t
ds_test_now_ms(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
ds_test_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

bool
ds_test_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return false;
		}
		p += n;
		len -= (size_t) n;
	}
	return true;
}

char *
ds_test_str(size_t n, char c)
{
	char *s = malloc(n + 1);

	if (s == NULL) {
		fprintf(
		    stderr, "ds_test_str: out of memory (%zu bytes)\n", n + 1);
		abort();
	}
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

int
ds_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port = -1;

	if (fd < 0) {
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *) &sa, &len) == 0) {
		port = ntohs(sa.sin_port);
	}
	close(fd);
	return port;
}

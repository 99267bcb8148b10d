/*
 * cli_bench.c - `datasync bench ...`: runs the load generator, which is a
 * program of its own (tools/bench, `datasync-bench`) so that this command
 * does not link SQLite, libmicrohttpd and the baselines. It is looked for
 * next to this executable (the directory of /proc/self/exe), as the
 * build (build/) and `make install` (bin/) both place them.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The program's file name, next to datasync. */
#define CLI_BENCH_PROGRAM "datasync-bench"

int
cli_bench_main(int argc, char **argv)
{
	char path[PATH_MAX];
	ssize_t n;
	char *slash;
	int err;

	if (argc < 2) { /* argv[1] is "bench" */
		return CLI_EXIT_USAGE;
	}
	n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n < 0) {
		fprintf(stderr, "datasync: BENCH_NOT_FOUND: cannot read "
		    "/proc/self/exe to find %s: %s\n", CLI_BENCH_PROGRAM,
		    strerror(errno));
		return CLI_EXIT_ERROR;
	}
	path[n] = '\0';
	slash = strrchr(path, '/');
	if (slash == NULL ||
	    (size_t) (slash + 1 - path) + sizeof(CLI_BENCH_PROGRAM) >
	    sizeof(path)) {
		fprintf(stderr, "datasync: BENCH_NOT_FOUND: no directory in "
		    "/proc/self/exe (%s) to find %s in\n", path,
		    CLI_BENCH_PROGRAM);
		return CLI_EXIT_ERROR;
	}
	memcpy(slash + 1, CLI_BENCH_PROGRAM, sizeof(CLI_BENCH_PROGRAM));
	/* The program gets what followed "bench", its own path as argv[0];
	 * argv[argc] is NULL, so argv + 1 is a complete vector. */
	argv[1] = path;
	(void) fflush(NULL);
	execv(path, argv + 1);
	err = errno;
	fprintf(stderr, "datasync: BENCH_NOT_FOUND: cannot run %s: %s "
	    "(`datasync bench` runs the %s program next to datasync; build it "
	    "with `cmake --build build --target %s`)\n", path, strerror(err),
	    CLI_BENCH_PROGRAM, CLI_BENCH_PROGRAM);
	return CLI_EXIT_ERROR;
}

/*
 * main.c - protoc-gen-nrpc: reads a CodeGeneratorRequest from stdin,
 * writes a CodeGeneratorResponse to stdout (pgn.h says what it makes).
 *
 * Exit status: 0 when a response was written, including one whose error
 * field reports a problem in the .proto files; 1 with a message on stderr
 * when the request is too big, cannot be decoded or the process runs out
 * of memory; 2 when started with arguments (protoc passes none).
 *
 *   protoc --plugin=protoc-gen-nrpc=build/protoc-gen-nrpc \
 *          --nrpc_out=gen -Iproto datasync/v1/datasync.proto
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ds_alloc.h"
#include "ds_buf.h"
#include "pgn.h"

#define PGN_PROG "protoc-gen-nrpc"

/* pgn_read_all reads fd to its end into b, which refuses to grow past
 * its max: DS_ETOOLARGE as soon as the input is one byte too long. */
static ds_err
pgn_read_all(int fd, ds_buf *b)
{
	uint8_t chunk[64 * 1024];
	ssize_t n;
	ds_err rv;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return DS_EIO;
		}
		if (n == 0) {
			return DS_OK;
		}
		if ((rv = ds_buf_append(b, chunk, (size_t) n)) != DS_OK) {
			return rv;
		}
	}
}

static ds_err
pgn_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			return DS_EIO;
		}
		p += w;
		n -= (size_t) w;
	}
	return DS_OK;
}

int
main(int argc, char **argv)
{
	ds_buf in;
	uint8_t *out = NULL;
	size_t out_len = 0;
	char why[512];
	ds_err rv;
	pgn_err prv;
	int status = 1;

	(void) argv;
	if (argc > 1) {
		fprintf(stderr,
		    "%s: takes no arguments; run it through protoc:\n"
		    "  protoc --plugin=%s=PATH --nrpc_out=DIR FILE.proto\n",
		    PGN_PROG, PGN_PROG);
		return 2;
	}
	ds_buf_init(&in, PGN_MAX_REQUEST_BYTES);
	rv = pgn_read_all(STDIN_FILENO, &in);
	if (rv == DS_ETOOLARGE) {
		fprintf(stderr,
		    "%s: the CodeGeneratorRequest exceeds PGN_MAX_REQUEST_BYTES "
		    "(%u bytes)\n",
		    PGN_PROG, PGN_MAX_REQUEST_BYTES);
		goto out;
	}
	if (rv != DS_OK) {
		fprintf(stderr, "%s: reading the request from stdin: %s\n",
		    PGN_PROG, rv == DS_EIO ? strerror(errno) : ds_strerror(rv));
		goto out;
	}
	why[0] = 0;
	prv = pgn_run(in.ptr != NULL ? in.ptr : (const uint8_t *) "", in.len,
	    &out, &out_len, why, sizeof(why));
	if (prv != PGN_OK) {
		fprintf(stderr, "%s: %s: %s\n", PGN_PROG, pgn_strerror(prv), why);
		goto out;
	}
	if (pgn_write_all(STDOUT_FILENO, out, out_len) != DS_OK) {
		fprintf(stderr, "%s: writing the response to stdout: %s\n",
		    PGN_PROG, strerror(errno));
		goto out;
	}
	status = 0;
out:
	ds_free(out);
	ds_buf_fini(&in);
	return status;
}

/*
 * pgn_plugin_test.c - protoc-gen-nrpc as protoc sees it: the binary fed
 * CodeGeneratorRequests on stdin (good, refused, broken, at and over its
 * limits), protoc driving it, and the generator in-process under
 * allocation failures.
 *
 * Requests are built from descriptor sets that protoc wrote at build time
 * (PGN_TEST_SETS), exactly as protoc builds them for a plugin. What the
 * generated code does is tested by compiling and calling it
 * (pgn_rpc_test); here only the plugin's contract is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ds_alloc.h"
#include "ds_test.h"
#include "pgn.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest pgn_req;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse pgn_resp;
typedef Google__Protobuf__FileDescriptorSet pgn_set;

/* --- helpers --- */

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;
	long n;

	if (f == NULL) {
		fail_msg("cannot open %s: %s", path, strerror(errno));
	}
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	p = malloc((size_t) n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t) n, f), (size_t) n);
	fclose(f);
	*len = (size_t) n;
	return p;
}

/* load_set reads PGN_TEST_SETS/<name>.pb (owned; free_set). */
static pgn_set *
load_set(const char *name)
{
	char path[1024];
	uint8_t *bytes;
	size_t len;
	pgn_set *set;

	snprintf(path, sizeof(path), "%s/%s.pb", PGN_TEST_SETS, name);
	bytes = read_file(path, &len);
	set = google__protobuf__file_descriptor_set__unpack(NULL, len, bytes);
	free(bytes);
	assert_non_null(set);
	assert_true(set->n_file > 0);
	return set;
}

static void
free_set(pgn_set *set)
{
	google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
}

/* last_file is the file the set was made for (protoc lists imports
 * first). */
static Google__Protobuf__FileDescriptorProto *
last_file(pgn_set *set)
{
	return set->file[set->n_file - 1];
}

/* make_request packs the request protoc would send for `gen` (a file of
 * set) with parameter param (may be NULL). Owned; free(). */
static uint8_t *
make_request(pgn_set *set, const char *gen, const char *param, size_t *len)
{
	pgn_req req = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_REQUEST__INIT;
	char *files[1];
	uint8_t *p;

	files[0] = (char *) gen;
	req.n_file_to_generate = gen != NULL ? 1 : 0;
	req.file_to_generate = files;
	req.parameter = (char *) param;
	req.n_proto_file = set->n_file;
	req.proto_file = set->file;
	*len = protobuf_c_message_get_packed_size(&req.base);
	p = malloc(*len + 1);
	assert_non_null(p);
	assert_int_equal(protobuf_c_message_pack(&req.base, p), *len);
	return p;
}

/* set_request is make_request for the last file of the named set. */
static uint8_t *
set_request(const char *name, size_t *len)
{
	pgn_set *set = load_set(name);
	uint8_t *p = make_request(set, last_file(set)->name, NULL, len);

	free_set(set);
	return p;
}

typedef struct run_result {
	int status;      /* exit status, or 128 + signal */
	uint8_t *out;    /* stdout (owned; free) */
	size_t out_len;
	char err[4096];  /* stderr, truncated */
} run_result;

static void
drain(int fd, uint8_t **buf, size_t *len, size_t cap_max)
{
	size_t cap = 0;

	*buf = NULL;
	*len = 0;
	for (;;) {
		ssize_t n;

		if (*len == cap) {
			cap = cap == 0 ? 65536 : cap * 2;
			*buf = realloc(*buf, cap + 1);
			assert_non_null(*buf);
		}
		n = read(fd, *buf + *len, cap - *len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		assert_true(n >= 0);
		if (n == 0) {
			break;
		}
		*len += (size_t) n;
		assert_true(*len <= cap_max);
	}
	(*buf)[*len] = 0;
}

/* run_argv starts argv[0] with in[0..len) on stdin and collects its
 * stdout, stderr and exit status. The child reads all of stdin before it
 * writes much, so writing first and reading afterwards cannot deadlock. */
static void
run_argv(char *const argv[], const uint8_t *in, size_t len, run_result *r)
{
	int pin[2], pout[2], perr[2];
	uint8_t *err;
	size_t err_len;
	size_t off = 0;
	pid_t pid;
	int ws;

	assert_int_equal(pipe(pin), 0);
	assert_int_equal(pipe(pout), 0);
	assert_int_equal(pipe(perr), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		close(pin[1]);
		close(pout[0]);
		close(perr[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	while (off < len) {
		ssize_t n = write(pin[1], in + off, len - off);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			assert_int_equal(errno, EPIPE); /* it stopped reading */
			break;
		}
		off += (size_t) n;
	}
	close(pin[1]);
	drain(pout[0], &r->out, &r->out_len, SIZE_MAX);
	drain(perr[0], &err, &err_len, SIZE_MAX);
	snprintf(r->err, sizeof(r->err), "%s", (const char *) err);
	free(err);
	close(pout[0]);
	close(perr[0]);
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static void
run_plugin(const uint8_t *in, size_t len, run_result *r)
{
	char *const argv[] = {(char *) PGN_PLUGIN, NULL};

	run_argv(argv, in, len, r);
}

static pgn_resp *
decode_response(const uint8_t *p, size_t len)
{
	pgn_resp *resp =
	    google__protobuf__compiler__code_generator_response__unpack(NULL,
	        len, p);

	assert_non_null(resp);
	return resp;
}

/* run_inproc runs the generator in this process; returns the decoded
 * response (owned) or NULL with *rv and why set. */
static pgn_resp *
run_inproc(const uint8_t *in, size_t len, pgn_err *rv, char *why,
    size_t why_cap)
{
	uint8_t *out = NULL;
	size_t out_len = 0;
	pgn_resp *resp;

	*rv = pgn_run(in, len, &out, &out_len, why, why_cap);
	if (*rv != PGN_OK) {
		assert_null(out); /* untouched on failure */
		return NULL;
	}
	resp = decode_response(out, out_len);
	ds_free(out);
	return resp;
}

static void
free_resp(pgn_resp *resp)
{
	google__protobuf__compiler__code_generator_response__free_unpacked(resp,
	    NULL);
}

/* --- the binary --- */

static void
test_binary_writes_header_and_source_for_a_file_with_services(void **state)
{
	run_result r;
	uint8_t *in;
	size_t len;
	pgn_resp *resp;
	const char *banner = "/* Generated by protoc-gen-nrpc from "
	                     "pgn/v2/pgn_test.proto. DO NOT EDIT. */\n";

	(void) state;
	in = set_request("good", &len);
	run_plugin(in, len, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.err, "");
	resp = decode_response(r.out, r.out_len);
	assert_null(resp->error);
	assert_true(resp->has_supported_features);
	assert_true(resp->supported_features &
	            GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL);
	assert_int_equal(resp->n_file, 2);
	assert_string_equal(resp->file[0]->name, "pgn/v2/pgn_test.nrpc.h");
	assert_string_equal(resp->file[1]->name, "pgn/v2/pgn_test.nrpc.c");
	/* STYLE rule 37: the first line says where it came from */
	assert_memory_equal(resp->file[0]->content, banner, strlen(banner));
	assert_memory_equal(resp->file[1]->content, banner, strlen(banner));
	free_resp(resp);
	free(r.out);
	free(in);
}

static void
test_binary_output_is_deterministic(void **state)
{
	run_result a;
	run_result b;
	uint8_t *in;
	uint8_t *out = NULL;
	size_t out_len = 0;
	size_t len;
	char why[256];

	(void) state;
	in = set_request("good", &len);
	run_plugin(in, len, &a);
	run_plugin(in, len, &b);
	assert_int_equal(a.status, 0);
	assert_int_equal(b.status, 0);
	assert_int_equal(a.out_len, b.out_len);
	assert_memory_equal(a.out, b.out, a.out_len);
	/* and in-process, from another address space layout */
	assert_int_equal(pgn_run(in, len, &out, &out_len, why, sizeof(why)),
	    PGN_OK);
	assert_int_equal(out_len, a.out_len);
	assert_memory_equal(out, a.out, out_len);
	ds_free(out);
	free(a.out);
	free(b.out);
	free(in);
}

static void
test_binary_refuses_garbage_with_a_message_and_nonzero_exit(void **state)
{
	static const char *const inputs[] = {
	    "this is not a protobuf",
	    "\x0a\x7f" "a", /* a string field longer than the input */
	};
	size_t i;

	(void) state;
	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		run_result r;

		run_plugin((const uint8_t *) inputs[i], strlen(inputs[i]), &r);
		assert_int_equal(r.status, 1);
		assert_non_null(strstr(r.err, "protoc-gen-nrpc: "));
		assert_non_null(
		    strstr(r.err, "cannot decode the CodeGeneratorRequest"));
		assert_int_equal(r.out_len, 0);
		free(r.out);
	}
}

static void
test_binary_refuses_arguments(void **state)
{
	char *const argv[] = {(char *) PGN_PLUGIN, (char *) "--help", NULL};
	run_result r;

	(void) state;
	run_argv(argv, NULL, 0, &r);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "takes no arguments"));
	free(r.out);
}

static void
test_binary_answers_an_empty_request_with_no_files(void **state)
{
	run_result r;
	pgn_resp *resp;

	(void) state;
	/* All fields of a CodeGeneratorRequest are optional. */
	run_plugin(NULL, 0, &r);
	assert_int_equal(r.status, 0);
	resp = decode_response(r.out, r.out_len);
	assert_null(resp->error);
	assert_int_equal(resp->n_file, 0);
	free_resp(resp);
	free(r.out);
}

/* padded_request is a valid request of exactly len bytes: one unknown
 * length-delimited field (number 99) of zeros. */
static uint8_t *
padded_request(size_t len)
{
	uint8_t *p = calloc(1, len);
	size_t payload = len - 6;

	assert_non_null(p);
	assert_true(payload < (1u << 28)); /* a 4-byte varint */
	p[0] = ((99 << 3 | 2) & 0x7f) | 0x80;
	p[1] = (99 << 3 | 2) >> 7;
	p[2] = (uint8_t) (payload & 0x7f) | 0x80;
	p[3] = (uint8_t) ((payload >> 7) & 0x7f) | 0x80;
	p[4] = (uint8_t) ((payload >> 14) & 0x7f) | 0x80;
	p[5] = (uint8_t) (payload >> 21);
	return p;
}

static void
test_binary_reads_a_request_at_its_size_limit(void **state)
{
	uint8_t *in = padded_request(PGN_MAX_REQUEST_BYTES);
	run_result r;
	pgn_resp *resp;

	(void) state;
	run_plugin(in, PGN_MAX_REQUEST_BYTES, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.err, "");
	resp = decode_response(r.out, r.out_len);
	assert_null(resp->error);
	assert_int_equal(resp->n_file, 0);
	free_resp(resp);
	free(r.out);
	free(in);
}

static void
test_binary_refuses_a_request_over_its_size_limit(void **state)
{
	uint8_t *in = padded_request(PGN_MAX_REQUEST_BYTES + 1);
	run_result r;

	(void) state;
	run_plugin(in, PGN_MAX_REQUEST_BYTES + 1, &r);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "exceeds PGN_MAX_REQUEST_BYTES"));
	assert_int_equal(r.out_len, 0);
	free(r.out);
	free(in);
}

static void
test_binary_reports_a_streaming_method_in_the_response(void **state)
{
	run_result r;
	uint8_t *in;
	size_t len;
	pgn_resp *resp;

	(void) state;
	in = set_request("streaming", &len);
	run_plugin(in, len, &r);
	/* plugin.proto: a .proto problem is response.error with exit 0 */
	assert_int_equal(r.status, 0);
	assert_string_equal(r.err, "");
	resp = decode_response(r.out, r.out_len);
	assert_non_null(resp->error);
	assert_non_null(strstr(resp->error, "pgn_bad.Watcher.Watch"));
	assert_non_null(strstr(resp->error, "server-streaming"));
	assert_int_equal(resp->n_file, 0);
	free_resp(resp);
	free(r.out);
	free(in);
}

static void
test_protoc_shows_the_plugin_error_and_fails(void **state)
{
	char out_dir[512];
	char out_arg[600];
	char *const argv[] = {(char *) PGN_PROTOC,
	    (char *) "-I" PGN_TEST_PROTO_DIR, (char *) "-I" PGN_PBC_INCLUDE,
	    (char *) "-I" PGN_PROTO_INCLUDE,
	    (char *) "--plugin=protoc-gen-nrpc=" PGN_PLUGIN, out_arg,
	    (char *) PGN_TEST_PROTO_DIR "/pgn/bad/pgn_streaming.proto", NULL};
	run_result r;

	(void) state;
	assert_int_equal(ds_test_tmpdir(out_dir, sizeof(out_dir)), 0);
	snprintf(out_arg, sizeof(out_arg), "--nrpc_out=%s", out_dir);
	run_argv(argv, NULL, 0, &r);
	ds_test_rmdir(out_dir);
	assert_int_not_equal(r.status, 0);
	assert_non_null(strstr(r.err, "--nrpc_out: "));
	assert_non_null(strstr(r.err, "server-streaming"));
	free(r.out);
}

static void
test_protoc_accepts_the_plugin_for_proto3_optional(void **state)
{
	char out_dir[512];
	char out_arg[600];
	char *const argv[] = {(char *) PGN_PROTOC,
	    (char *) "-I" PGN_TEST_PROTO_DIR,
	    (char *) "--plugin=protoc-gen-nrpc=" PGN_PLUGIN, out_arg,
	    (char *) PGN_TEST_PROTO_DIR "/pgn/pgn_optional.proto", NULL};
	char path[700];
	run_result r;

	(void) state;
	assert_int_equal(ds_test_tmpdir(out_dir, sizeof(out_dir)), 0);
	snprintf(out_arg, sizeof(out_arg), "--nrpc_out=%s", out_dir);
	run_argv(argv, NULL, 0, &r);
	snprintf(path, sizeof(path), "%s/pgn/pgn_optional.nrpc.c", out_dir);
	assert_int_equal(r.status, 0);
	assert_int_equal(access(path, F_OK), 0);
	ds_test_rmdir(out_dir);
	free(r.out);
}

/* --- the generator, in-process --- */

static void
test_file_without_services_produces_nothing(void **state)
{
	uint8_t *in;
	size_t len;
	pgn_resp *resp;
	pgn_err rv;
	char why[256];

	(void) state;
	in = set_request("dep", &len);
	resp = run_inproc(in, len, &rv, why, sizeof(why));
	assert_int_equal(rv, PGN_OK);
	assert_null(resp->error);
	assert_int_equal(resp->n_file, 0);
	free_resp(resp);
	free(in);
}

/* expect_proto_error runs the generator on request bytes and checks that
 * the response reports a .proto problem mentioning each of the needles. */
static void
expect_proto_error(uint8_t *in, size_t len, const char *needle1,
    const char *needle2)
{
	pgn_resp *resp;
	pgn_err rv;
	char why[256];

	resp = run_inproc(in, len, &rv, why, sizeof(why));
	assert_int_equal(rv, PGN_OK);
	assert_non_null(resp->error);
	if (strstr(resp->error, needle1) == NULL ||
	    (needle2 != NULL && strstr(resp->error, needle2) == NULL)) {
		fail_msg("unexpected error: %s", resp->error);
	}
	assert_int_equal(resp->n_file, 0);
	free_resp(resp);
	free(in);
}

static void
test_colliding_generated_names_are_reported(void **state)
{
	size_t len;
	uint8_t *in;

	(void) state;
	in = set_request("collision", &len);
	expect_proto_error(in, len, "pgn_bad_store_get_async",
	    "pgn_bad.Store.GetAsync");
}

static void
test_service_without_methods_is_reported(void **state)
{
	size_t len;
	uint8_t *in;

	(void) state;
	in = set_request("empty_service", &len);
	expect_proto_error(in, len, "pgn_bad.Nothing has no methods", NULL);
}

static void
test_unknown_parameter_is_reported(void **state)
{
	pgn_set *set = load_set("good");
	size_t len;
	uint8_t *in;

	(void) state;
	in = make_request(set, last_file(set)->name, "lite=true", &len);
	free_set(set);
	expect_proto_error(in, len, "unknown parameter \"lite=true\"", NULL);
}

static void
test_file_name_unfit_for_c_is_reported(void **state)
{
	pgn_set *set = load_set("nopkg");
	Google__Protobuf__FileDescriptorProto *fd = last_file(set);
	char *saved = fd->name;
	size_t len;
	uint8_t *in;

	(void) state;
	/* legal on disk, but it would end the banner comment */
	fd->name = (char *) "pgn/odd*/name.proto";
	in = make_request(set, fd->name, NULL, &len);
	fd->name = saved;
	free_set(set);
	expect_proto_error(in, len, "pgn/odd*/name.proto", "rename the file");
}

/* expect_broken runs the generator and expects PGN_EBADREQ, with needle
 * in the reason. */
static void
expect_broken(uint8_t *in, size_t len, const char *needle)
{
	pgn_resp *resp;
	pgn_err rv;
	char why[512];

	resp = run_inproc(in, len, &rv, why, sizeof(why));
	assert_null(resp);
	assert_int_equal(rv, PGN_EBADREQ);
	if (strstr(why, needle) == NULL) {
		fail_msg("unexpected reason: %s", why);
	}
	free(in);
}

static void
test_unknown_message_type_is_a_broken_request(void **state)
{
	pgn_set *set = load_set("nopkg");
	Google__Protobuf__MethodDescriptorProto *m =
	    last_file(set)->service[0]->method[0];
	char *saved = m->input_type;
	size_t len;
	uint8_t *in;

	(void) state;
	m->input_type = (char *) ".nope.Missing";
	in = make_request(set, last_file(set)->name, NULL, &len);
	m->input_type = saved;
	free_set(set);
	expect_broken(in, len, "unknown message type .nope.Missing");
}

static void
test_name_that_is_no_identifier_is_a_broken_request(void **state)
{
	pgn_set *set = load_set("nopkg");
	Google__Protobuf__ServiceDescriptorProto *s = last_file(set)->service[0];
	char *saved = s->name;
	size_t len;
	uint8_t *in;

	(void) state;
	/* protoc never sends this; a hostile request would inject code */
	s->name = (char *) "Echo\"); system(\"id";
	in = make_request(set, last_file(set)->name, NULL, &len);
	s->name = saved;
	free_set(set);
	expect_broken(in, len, "is not an identifier");
}

static void
test_missing_file_to_generate_is_a_broken_request(void **state)
{
	pgn_set *set = load_set("nopkg");
	size_t len;
	uint8_t *in;

	(void) state;
	in = make_request(set, "not/there.proto", NULL, &len);
	free_set(set);
	expect_broken(in, len, "not/there.proto is not in proto_file");
}

/* nested_request is a request whose one file holds `levels` messages
 * nested in each other: the message nesting depth is levels + 2. Written
 * outside in, with every length computed first, in O(levels). */
static uint8_t *
nested_request(size_t levels, size_t *out_len)
{
	static const uint8_t file_name[] = {0x0a, 0x07, 'd', '.', 'p', 'r',
	    'o', 't', 'o'};
	size_t *sz = calloc(levels + 1, sizeof(size_t));
	uint8_t *p;
	size_t file_len;
	size_t total;
	size_t o = 0;
	size_t k;

	assert_non_null(sz);
#define VSZ(v) ((v) < 128 ? 1 : (v) < 16384 ? 2 : (v) < 2097152 ? 3 : 4)
	/* sz[k]: a message with k nested below it: name "M" + nested */
	sz[0] = 3;
	for (k = 1; k <= levels - 1; k++) {
		sz[k] = 3 + 1 + VSZ(sz[k - 1]) + sz[k - 1];
	}
	file_len = sizeof(file_name) + 1 + VSZ(sz[levels - 1]) + sz[levels - 1];
	total = 1 + VSZ(file_len) + file_len;
	p = malloc(total);
	assert_non_null(p);
#define PUT_VARINT(v)                                                        \
	do {                                                                 \
		size_t v_ = (v);                                             \
		while (v_ >= 128) {                                          \
			p[o++] = (uint8_t) (v_ & 0x7f) | 0x80;               \
			v_ >>= 7;                                            \
		}                                                            \
		p[o++] = (uint8_t) v_;                                       \
	} while (0)
	p[o++] = 15 << 3 | 2; /* CodeGeneratorRequest.proto_file */
	PUT_VARINT(file_len);
	memcpy(p + o, file_name, sizeof(file_name));
	o += sizeof(file_name);
	p[o++] = 4 << 3 | 2; /* FileDescriptorProto.message_type */
	PUT_VARINT(sz[levels - 1]);
	for (k = levels - 1;; k--) {
		p[o++] = 0x0a; /* DescriptorProto.name = "M" */
		p[o++] = 0x01;
		p[o++] = 'M';
		if (k == 0) {
			break;
		}
		p[o++] = 3 << 3 | 2; /* DescriptorProto.nested_type */
		PUT_VARINT(sz[k - 1]);
	}
#undef PUT_VARINT
#undef VSZ
	assert_int_equal(o, total);
	free(sz);
	*out_len = total;
	return p;
}

static void
test_nesting_at_the_depth_limit_is_accepted(void **state)
{
	size_t len;
	uint8_t *in = nested_request(PGN_MAX_DEPTH - 2, &len);
	pgn_resp *resp;
	pgn_err rv;
	char why[256];

	(void) state;
	resp = run_inproc(in, len, &rv, why, sizeof(why));
	assert_int_equal(rv, PGN_OK);
	assert_null(resp->error);
	free_resp(resp);
	free(in);
}

static void
test_nesting_past_the_depth_limit_is_refused(void **state)
{
	size_t len;
	uint8_t *in;

	(void) state;
	in = nested_request(PGN_MAX_DEPTH - 1, &len);
	expect_broken(in, len, "PGN_MAX_DEPTH (100)");
	/* Without the check, protobuf-c recurses once per level and
	 * overflows the stack long before this many. */
	in = nested_request(500000, &len);
	expect_broken(in, len, "PGN_MAX_DEPTH (100)");
}

/* Every allocation of a run, failed in turn: each failure is reported
 * as PGN_ENOMEM with nothing written and (under ASan) nothing leaked. */
static void
expect_allocation_failures_handled(const char *set, size_t stride)
{
	uint8_t *in;
	uint8_t *out;
	size_t len;
	size_t out_len;
	long n;
	char why[256];
	pgn_err rv = PGN_ENOMEM;

	in = set_request(set, &len);
	for (n = 0; rv != PGN_OK; n += (long) stride) {
		out = NULL;
		ds_alloc_fail_after(n);
		rv = pgn_run(in, len, &out, &out_len, why, sizeof(why));
		ds_alloc_fail_reset();
		if (rv != PGN_OK) {
			assert_int_equal(rv, PGN_ENOMEM);
			assert_null(out);
		}
		assert_true(n < 1000000);
	}
	ds_free(out);
	free(in);
}

static void
test_allocation_failures_are_reported_not_crashed(void **state)
{
	(void) state;
	/* every allocation of a small request; a sample of a big one */
	expect_allocation_failures_handled("nopkg", 1);
	expect_allocation_failures_handled("good", 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_binary_writes_header_and_source_for_a_file_with_services),
	    cmocka_unit_test(test_binary_output_is_deterministic),
	    cmocka_unit_test(
	        test_binary_refuses_garbage_with_a_message_and_nonzero_exit),
	    cmocka_unit_test(test_binary_refuses_arguments),
	    cmocka_unit_test(test_binary_answers_an_empty_request_with_no_files),
	    cmocka_unit_test(test_binary_reads_a_request_at_its_size_limit),
	    cmocka_unit_test(test_binary_refuses_a_request_over_its_size_limit),
	    cmocka_unit_test(
	        test_binary_reports_a_streaming_method_in_the_response),
	    cmocka_unit_test(test_protoc_shows_the_plugin_error_and_fails),
	    cmocka_unit_test(test_protoc_accepts_the_plugin_for_proto3_optional),
	    cmocka_unit_test(test_file_without_services_produces_nothing),
	    cmocka_unit_test(test_colliding_generated_names_are_reported),
	    cmocka_unit_test(test_service_without_methods_is_reported),
	    cmocka_unit_test(test_unknown_parameter_is_reported),
	    cmocka_unit_test(test_file_name_unfit_for_c_is_reported),
	    cmocka_unit_test(test_unknown_message_type_is_a_broken_request),
	    cmocka_unit_test(test_name_that_is_no_identifier_is_a_broken_request),
	    cmocka_unit_test(test_missing_file_to_generate_is_a_broken_request),
	    cmocka_unit_test(test_nesting_at_the_depth_limit_is_accepted),
	    cmocka_unit_test(test_nesting_past_the_depth_limit_is_refused),
	    cmocka_unit_test(test_allocation_failures_are_reported_not_crashed),
	};

	/* A plugin that exits early closes its stdin under our writes. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

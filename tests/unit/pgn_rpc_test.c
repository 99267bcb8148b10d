/*
 * pgn_rpc_test.c - protoc-gen-nrpc's output, compiled and called: the
 * stubs and skeletons generated for tests/unit/proto/pgn/ (two services in
 * package pgn_test.sub_pkg.v2, one in a file without a package) against a
 * real nrpc server on inproc://.
 *
 * That this file compiles at all proves the names: every type,
 * descriptor, stub and handler member below is spelled as protoc-c and
 * the plugin spell it, for a package with underscores, a nested
 * lower-case type, an acronym, a c_package, a well-known type and methods
 * named after C keywords.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ds_test.h"
#include "pgn/pgn_nopkg.nrpc.h"
#include "pgn/v2/pgn_test.nrpc.h"

typedef PgnTest__SubPkg__V2__AddRequest add_req;
typedef PgnTest__SubPkg__V2__HTTPResult result;
typedef PgnTest__SubPkg__V2__Outer__InnerOperand operand;
typedef PgnTest__SubPkg__V2__GetKey get_key;
typedef PgnDepC__V1__KVPair kv_pair;
typedef PgnDepC__V1__PutAck put_ack;
typedef Google__Protobuf__Empty empty;

/* --- fixture --- */

typedef struct fixture {
	nrpc_server *srv;
	nrpc_client *cli;
	char url[128];
	atomic_int puts;       /* Put handler runs */
	void *_Atomic seen_arg; /* the arg the last handler got */
	int marker;            /* its address is the registered arg */
} fixture;

static atomic_int url_seq;

/* --- handlers --- */

static void
calc_add(nrpc_call *call, const add_req *req, void *arg)
{
	fixture *f = arg;
	result r = PGN_TEST__SUB_PKG__V2__HTTPRESULT__INIT;

	f->seen_arg = arg;
	r.value = req->a + req->b;
	pgn_test_sub_pkg_v2_calculator_add_reply(call, &r);
}

static void
calc_negate(nrpc_call *call, const operand *req, void *arg)
{
	result r = PGN_TEST__SUB_PKG__V2__HTTPRESULT__INIT;

	(void) arg;
	r.value = -req->x;
	pgn_test_sub_pkg_v2_calculator_negate_reply(call, &r);
}

static void
kv_put(nrpc_call *call, const kv_pair *req, void *arg)
{
	fixture *f = arg;
	put_ack ack = PGN_DEP_C__V1__PUT_ACK__INIT;

	f->seen_arg = arg;
	atomic_fetch_add(&f->puts, 1);
	if (strcmp(req->key, "locked") == 0) {
		nrpc_call_fail(call, NRPC_FAILED_PRECONDITION, "LOCKED", "key",
		    "record %s is locked", req->key);
		return;
	}
	if (strcmp(req->key, "conflict") == 0) {
		kv_pair current = PGN_DEP_C__V1__KV__PAIR__INIT;
		nrpc_status st = {0};

		memset(&st, 0, sizeof(st));
		current.key = (char *) "conflict";
		current.value.data = (uint8_t *) "theirs";
		current.value.len = 6;
		nrpc_status_set(&st, NRPC_ABORTED, "VERSION_CONFLICT", "key",
		    "version mismatch");
		assert_int_equal(nrpc_status_set_detail(&st,
		                     (const ProtobufCMessage *) &current),
		    NRPC_OK);
		nrpc_call_finish(call, &st, NULL);
		nrpc_status_fini(&st);
		return;
	}
	ack.created = true;
	ack.version = req->value.len;
	pgn_test_sub_pkg_v2_key_value_store_put_reply(call, &ack);
}

static void
kv_get(nrpc_call *call, const get_key *req, void *arg)
{
	kv_pair kv = PGN_DEP_C__V1__KV__PAIR__INIT;
	char value[64];

	(void) arg;
	snprintf(value, sizeof(value), "value of %s", req->key);
	kv.key = req->key;
	kv.value.data = (uint8_t *) value;
	kv.value.len = strlen(value);
	pgn_test_sub_pkg_v2_key_value_store_get_reply(call, &kv);
}

static void
kv_default(nrpc_call *call, const get_key *req, void *arg)
{
	empty e = GOOGLE__PROTOBUF__EMPTY__INIT;

	(void) req;
	(void) arg;
	pgn_test_sub_pkg_v2_key_value_store_default_reply(call, &e);
}

/* One echo handler per method of HTTPEcho, each answering with the name
 * of the method the runtime says it serves, through its own typed reply
 * function: a mix-up in the dispatch shows as a wrong name. */
#define PGN_ECHO_HANDLER(stem)                                               \
	static void echo_##stem(nrpc_call *call, const PingMsg *req,         \
	    void *arg)                                                       \
	{                                                                    \
		PingMsg r = PING_MSG__INIT;                                  \
                                                                             \
		(void) arg;                                                  \
		r.text = (char *) nrpc_call_method(call)->name;              \
		r.hops = req->hops + 1;                                      \
		httpecho_##stem##_reply(call, &r);                           \
	}
PGN_ECHO_HANDLER(register_)
PGN_ECHO_HANDLER(return)
PGN_ECHO_HANDLER(switch)
PGN_ECHO_HANDLER(bool)
PGN_ECHO_HANDLER(errno)
PGN_ECHO_HANDLER(assert)
PGN_ECHO_HANDLER(linux)
PGN_ECHO_HANDLER(delete)
PGN_ECHO_HANDLER(handlers_)
#undef PGN_ECHO_HANDLER

static const pgn_test_sub_pkg_v2_calculator_handlers calc_handlers = {
    .add = calc_add,
    .negate = calc_negate,
};

static const pgn_test_sub_pkg_v2_key_value_store_handlers kv_handlers = {
    .put = kv_put,
    .get = kv_get,
    .default_ = kv_default,
};

/* Default left out: its slot is NULL. */
static const pgn_test_sub_pkg_v2_key_value_store_handlers kv_partial = {
    .put = kv_put,
    .get = kv_get,
};

/* The members escaped because C reserves their names. */
static const httpecho_handlers echo_handlers = {
    .register_ = echo_register_,
    .return_ = echo_return,
    .switch_ = echo_switch,
    .bool_ = echo_bool,
    .errno_ = echo_errno,
    .assert_ = echo_assert,
    .linux_ = echo_linux,
    .delete = echo_delete,
    .handlers = echo_handlers_,
};

/* start serves the three services (KeyValueStore from kv) on a fresh
 * inproc:// URL and connects a client to it. */
static void
start(fixture *f, const pgn_test_sub_pkg_v2_key_value_store_handlers *kv)
{
	nrpc_server_config scfg;
	nrpc_client_config ccfg;
	const char *urls[1];
	nrpc_status st = {0};

	memset(&st, 0, sizeof(st));
	snprintf(f->url, sizeof(f->url), "inproc://pgn_rpc_%d_%d", (int) getpid(),
	    atomic_fetch_add(&url_seq, 1));
	urls[0] = f->url;
	nrpc_server_config_default(&scfg);
	scfg.urls = urls;
	scfg.n_urls = 1;
	scfg.workers = 2;
	assert_int_equal(nrpc_server_create(&scfg, &f->srv, &st), 0);
	assert_int_equal(pgn_test_sub_pkg_v2_calculator_register(f->srv,
	                     &calc_handlers, f, &st),
	    0);
	assert_int_equal(
	    pgn_test_sub_pkg_v2_key_value_store_register(f->srv, kv, f, &st), 0);
	assert_int_equal(httpecho_register(f->srv, &echo_handlers, f, &st), 0);
	assert_int_equal(nrpc_server_start(f->srv, &st), 0);
	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	ccfg.dial_blocking = true;
	assert_int_equal(nrpc_client_open(&ccfg, &f->cli, &st), 0);
	nrpc_status_fini(&st);
}

static int
setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fixture *f = *state;

	nrpc_client_close(f->cli);
	nrpc_server_destroy(f->srv);
	free(f);
	return 0;
}

/* --- waiting for asynchronous callbacks --- */

typedef struct done {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fired;             /* callbacks run */
	nrpc_code code;        /* of the last one */
	char reason[NRPC_REASON_MAX];
	bool had_resp;
	int64_t value;         /* result.value / put_ack.version / hops */
	char text[64];         /* kv key / ping text */
} done;

static void
done_init(done *d)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
}

static void
done_fini(done *d)
{
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
}

/* done_wait waits until n callbacks ran, 10 s at most. */
static void
done_wait(done *d, int n)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&d->mu);
	while (d->fired < n) {
		if (pthread_cond_timedwait(&d->cv, &d->mu, &until) != 0) {
			break;
		}
	}
	pthread_mutex_unlock(&d->mu);
	assert_int_equal(d->fired, n);
}

/* done_record is called by every typed callback below, under no lock. */
static void
done_record(done *d, const nrpc_status *st, bool had_resp, int64_t value,
    const char *text)
{
	pthread_mutex_lock(&d->mu);
	d->code = st->code;
	snprintf(d->reason, sizeof(d->reason), "%s", st->reason);
	d->had_resp = had_resp;
	d->value = value;
	snprintf(d->text, sizeof(d->text), "%s", text != NULL ? text : "");
	d->fired++;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static void
on_result(void *arg, result *resp, const nrpc_status *st)
{
	done_record(arg, st, resp != NULL, resp != NULL ? resp->value : 0,
	    NULL);
	if (resp != NULL) {
		pgn_test__sub_pkg__v2__httpresult__free_unpacked(resp, NULL);
	}
}

static void
on_put(void *arg, put_ack *resp, const nrpc_status *st)
{
	done_record(arg, st, resp != NULL,
	    resp != NULL ? (int64_t) resp->version : 0, NULL);
	if (resp != NULL) {
		pgn_dep_c__v1__put_ack__free_unpacked(resp, NULL);
	}
}

static void
on_kv(void *arg, kv_pair *resp, const nrpc_status *st)
{
	done_record(arg, st, resp != NULL,
	    resp != NULL ? (int64_t) resp->value.len : 0,
	    resp != NULL ? resp->key : NULL);
	if (resp != NULL) {
		pgn_dep_c__v1__kv__pair__free_unpacked(resp, NULL);
	}
}

static void
on_empty(void *arg, empty *resp, const nrpc_status *st)
{
	done_record(arg, st, resp != NULL, 0, NULL);
	if (resp != NULL) {
		google__protobuf__empty__free_unpacked(resp, NULL);
	}
}

static void
on_ping(void *arg, PingMsg *resp, const nrpc_status *st)
{
	done_record(arg, st, resp != NULL, resp != NULL ? resp->hops : 0,
	    resp != NULL ? resp->text : NULL);
	if (resp != NULL) {
		ping_msg__free_unpacked(resp, NULL);
	}
}

/* --- tests --- */

static void
check_method(const nrpc_method *m, const char *full_name, const char *name,
    const ProtobufCMessageDescriptor *in,
    const ProtobufCMessageDescriptor *out, bool idempotent)
{
	assert_string_equal(m->full_name, full_name);
	assert_string_equal(m->name, name);
	assert_ptr_equal(m->input, in);
	assert_ptr_equal(m->output, out);
	assert_int_equal(m->idempotent, idempotent);
}

static void
test_method_tables_describe_every_method(void **state)
{
	const nrpc_method *calc = pgn_test_sub_pkg_v2_calculator_methods;
	const nrpc_method *kv = pgn_test_sub_pkg_v2_key_value_store_methods;
	const char *get = "/pgn_test.sub_pkg.v2.KeyValueStore/Get";

	(void) state;
	assert_int_equal(PGN_TEST_SUB_PKG_V2_CALCULATOR_N_METHODS, 2);
	assert_int_equal(PGN_TEST_SUB_PKG_V2_KEY_VALUE_STORE_N_METHODS, 3);
	assert_int_equal(HTTPECHO_N_METHODS, 9);

	check_method(&calc[PGN_TEST_SUB_PKG_V2_CALCULATOR_METHOD_ADD],
	    "/pgn_test.sub_pkg.v2.Calculator/Add", "Add",
	    &pgn_test__sub_pkg__v2__add_request__descriptor,
	    &pgn_test__sub_pkg__v2__httpresult__descriptor, true);
	check_method(&calc[PGN_TEST_SUB_PKG_V2_CALCULATOR_METHOD_NEGATE],
	    "/pgn_test.sub_pkg.v2.Calculator/Negate", "Negate",
	    &pgn_test__sub_pkg__v2__outer__inner_operand__descriptor,
	    &pgn_test__sub_pkg__v2__httpresult__descriptor, true);
	check_method(&kv[PGN_TEST_SUB_PKG_V2_KEY_VALUE_STORE_METHOD_PUT],
	    "/pgn_test.sub_pkg.v2.KeyValueStore/Put", "Put",
	    &pgn_dep_c__v1__kv__pair__descriptor,
	    &pgn_dep_c__v1__put_ack__descriptor, false);
	check_method(&kv[PGN_TEST_SUB_PKG_V2_KEY_VALUE_STORE_METHOD_GET], get,
	    "Get", &pgn_test__sub_pkg__v2__get_key__descriptor,
	    &pgn_dep_c__v1__kv__pair__descriptor, true);
	check_method(&kv[PGN_TEST_SUB_PKG_V2_KEY_VALUE_STORE_METHOD_DEFAULT],
	    "/pgn_test.sub_pkg.v2.KeyValueStore/Default", "Default",
	    &pgn_test__sub_pkg__v2__get_key__descriptor,
	    &google__protobuf__empty__descriptor, false);
	check_method(&httpecho_methods[HTTPECHO_METHOD_REGISTER],
	    "/HTTPEcho/Register", "Register", &ping_msg__descriptor,
	    &ping_msg__descriptor, false);
	check_method(&httpecho_methods[HTTPECHO_METHOD_HANDLERS],
	    "/HTTPEcho/Handlers", "Handlers", &ping_msg__descriptor,
	    &ping_msg__descriptor, false);

	assert_string_equal(pgn_test_sub_pkg_v2_calculator_service.full_name,
	    "pgn_test.sub_pkg.v2.Calculator");
	assert_string_equal(pgn_test_sub_pkg_v2_calculator_service.name,
	    "Calculator");
	assert_int_equal(pgn_test_sub_pkg_v2_calculator_service.n_methods, 2);
	assert_ptr_equal(pgn_test_sub_pkg_v2_calculator_service.methods, calc);
	assert_string_equal(httpecho_service.full_name, "HTTPEcho");
	assert_string_equal(httpecho_service.name, "HTTPEcho");
	assert_int_equal(httpecho_service.n_methods, HTTPECHO_N_METHODS);
	assert_ptr_equal(
	    nrpc_service_find_method(&pgn_test_sub_pkg_v2_key_value_store_service,
	        get, strlen(get)),
	    &kv[PGN_TEST_SUB_PKG_V2_KEY_VALUE_STORE_METHOD_GET]);
}

static void
test_blocking_stubs_reach_every_handler(void **state)
{
	static const struct {
		nrpc_code (*stub)(nrpc_client *, const PingMsg *, PingMsg **,
		    const nrpc_call_opts *, nrpc_status *);
		const char *name;
	} echoes[] = {
	    {httpecho_register_, "Register"}, {httpecho_return, "Return"},
	    {httpecho_switch, "Switch"}, {httpecho_bool, "Bool"},
	    {httpecho_errno, "Errno"}, {httpecho_assert, "Assert"},
	    {httpecho_linux, "Linux"}, {httpecho_delete, "Delete"},
	    {httpecho_handlers_, "Handlers"},
	};
	fixture *f = *state;
	add_req add = PGN_TEST__SUB_PKG__V2__ADD_REQUEST__INIT;
	operand neg = PGN_TEST__SUB_PKG__V2__OUTER__INNER_OPERAND__INIT;
	kv_pair put = PGN_DEP_C__V1__KV__PAIR__INIT;
	get_key key = PGN_TEST__SUB_PKG__V2__GET_KEY__INIT;
	PingMsg ping = PING_MSG__INIT;
	result *res = NULL;
	put_ack *ack = NULL;
	kv_pair *got = NULL;
	empty *nothing = NULL;
	nrpc_status st = {0};
	size_t i;

	memset(&st, 0, sizeof(st));
	start(f, &kv_handlers);

	add.a = 40;
	add.b = 2;
	assert_int_equal(pgn_test_sub_pkg_v2_calculator_add(f->cli, &add, &res,
	                     NULL, &st),
	    NRPC_OK);
	assert_int_equal(st.code, NRPC_OK);
	assert_int_equal(res->value, 42);
	pgn_test__sub_pkg__v2__httpresult__free_unpacked(res, NULL);

	neg.x = 7;
	assert_int_equal(pgn_test_sub_pkg_v2_calculator_negate(f->cli, &neg,
	                     &res, NULL, NULL), /* st may be NULL */
	    NRPC_OK);
	assert_int_equal(res->value, -7);
	pgn_test__sub_pkg__v2__httpresult__free_unpacked(res, NULL);

	put.key = (char *) "k";
	put.value.data = (uint8_t *) "12345";
	put.value.len = 5;
	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_put(f->cli, &put,
	                     &ack, NULL, &st),
	    NRPC_OK);
	assert_true(ack->created);
	assert_int_equal(ack->version, 5);
	pgn_dep_c__v1__put_ack__free_unpacked(ack, NULL);

	key.key = (char *) "k";
	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_get(f->cli, &key,
	                     &got, NULL, &st),
	    NRPC_OK);
	assert_string_equal(got->key, "k");
	assert_int_equal(got->value.len, strlen("value of k"));
	assert_memory_equal(got->value.data, "value of k", got->value.len);
	pgn_dep_c__v1__kv__pair__free_unpacked(got, NULL);

	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_default(f->cli,
	                     &key, &nothing, NULL, &st),
	    NRPC_OK);
	assert_non_null(nothing);
	assert_ptr_equal(nothing->base.descriptor,
	    &google__protobuf__empty__descriptor);
	google__protobuf__empty__free_unpacked(nothing, NULL);

	for (i = 0; i < sizeof(echoes) / sizeof(echoes[0]); i++) {
		PingMsg *pong = NULL;

		ping.hops = (int32_t) i;
		assert_int_equal(echoes[i].stub(f->cli, &ping, &pong, NULL, &st),
		    NRPC_OK);
		assert_string_equal(pong->text, echoes[i].name);
		assert_int_equal(pong->hops, (int32_t) i + 1);
		ping_msg__free_unpacked(pong, NULL);
	}
	nrpc_status_fini(&st);
	assert_ptr_equal(f->seen_arg, f);
}

static void
test_async_stubs_reach_every_handler(void **state)
{
	static const struct {
		nrpc_code (*stub)(nrpc_client *, const PingMsg *,
		    const nrpc_call_opts *, httpecho_register__cb, void *,
		    nrpc_status *);
		const char *name;
	} echoes[] = {
	    {httpecho_register__async, "Register"},
	    {httpecho_return_async, "Return"},
	    {httpecho_switch_async, "Switch"}, {httpecho_bool_async, "Bool"},
	    {httpecho_errno_async, "Errno"}, {httpecho_assert_async, "Assert"},
	    {httpecho_linux_async, "Linux"}, {httpecho_delete_async, "Delete"},
	    {httpecho_handlers__async, "Handlers"},
	};
	fixture *f = *state;
	add_req add = PGN_TEST__SUB_PKG__V2__ADD_REQUEST__INIT;
	operand neg = PGN_TEST__SUB_PKG__V2__OUTER__INNER_OPERAND__INIT;
	kv_pair put = PGN_DEP_C__V1__KV__PAIR__INIT;
	get_key key = PGN_TEST__SUB_PKG__V2__GET_KEY__INIT;
	PingMsg ping = PING_MSG__INIT;
	nrpc_status st = {0};
	done d;
	int n = 0;
	size_t i;

	memset(&st, 0, sizeof(st));
	done_init(&d);
	start(f, &kv_handlers);

	add.a = -3;
	add.b = 10;
	assert_int_equal(pgn_test_sub_pkg_v2_calculator_add_async(f->cli, &add,
	                     NULL, on_result, &d, &st),
	    NRPC_OK);
	done_wait(&d, ++n);
	assert_int_equal(d.code, NRPC_OK);
	assert_true(d.had_resp);
	assert_int_equal(d.value, 7);

	neg.x = -9;
	assert_int_equal(pgn_test_sub_pkg_v2_calculator_negate_async(f->cli,
	                     &neg, NULL, on_result, &d, &st),
	    NRPC_OK);
	done_wait(&d, ++n);
	assert_int_equal(d.value, 9);

	put.key = (char *) "k";
	put.value.data = (uint8_t *) "123";
	put.value.len = 3;
	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_put_async(f->cli,
	                     &put, NULL, on_put, &d, &st),
	    NRPC_OK);
	done_wait(&d, ++n);
	assert_int_equal(d.code, NRPC_OK);
	assert_int_equal(d.value, 3);

	key.key = (char *) "abc";
	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_get_async(f->cli,
	                     &key, NULL, on_kv, &d, &st),
	    NRPC_OK);
	done_wait(&d, ++n);
	assert_string_equal(d.text, "abc");
	assert_int_equal(d.value, strlen("value of abc"));

	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_default_async(
	                     f->cli, &key, NULL, on_empty, &d, &st),
	    NRPC_OK);
	done_wait(&d, ++n);
	assert_int_equal(d.code, NRPC_OK);
	assert_true(d.had_resp);

	for (i = 0; i < sizeof(echoes) / sizeof(echoes[0]); i++) {
		ping.hops = 100 + (int32_t) i;
		assert_int_equal(
		    echoes[i].stub(f->cli, &ping, NULL, on_ping, &d, &st),
		    NRPC_OK);
		done_wait(&d, ++n);
		assert_int_equal(d.code, NRPC_OK);
		assert_string_equal(d.text, echoes[i].name);
		assert_int_equal(d.value, 101 + (int64_t) i);
	}
	nrpc_status_fini(&st);
	done_fini(&d);
}

static void
test_empty_handler_slot_answers_unimplemented(void **state)
{
	fixture *f = *state;
	get_key key = PGN_TEST__SUB_PKG__V2__GET_KEY__INIT;
	empty sentinel;
	empty *nothing = &sentinel;
	nrpc_status st = {0};
	done d;

	memset(&st, 0, sizeof(st));
	done_init(&d);
	start(f, &kv_partial);
	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_default(f->cli,
	                     &key, &nothing, NULL, &st),
	    NRPC_UNIMPLEMENTED);
	assert_int_equal(st.code, NRPC_UNIMPLEMENTED);
	assert_ptr_equal(nothing, &sentinel); /* untouched on failure */
	nrpc_status_fini(&st);

	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_default_async(
	                     f->cli, &key, NULL, on_empty, &d, &st),
	    NRPC_OK);
	done_wait(&d, 1);
	assert_int_equal(d.code, NRPC_UNIMPLEMENTED);
	assert_false(d.had_resp);

	/* the other slots of the same table still work */
	key.key = (char *) "x";
	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_get_async(f->cli,
	                     &key, NULL, on_kv, &d, &st),
	    NRPC_OK);
	done_wait(&d, 2);
	assert_int_equal(d.code, NRPC_OK);
	nrpc_status_fini(&st);
	done_fini(&d);
}

static void
test_handler_failure_reaches_the_typed_stubs(void **state)
{
	fixture *f = *state;
	kv_pair put = PGN_DEP_C__V1__KV__PAIR__INIT;
	put_ack sentinel;
	put_ack *ack = &sentinel;
	nrpc_status st = {0};
	done d;

	memset(&st, 0, sizeof(st));
	done_init(&d);
	start(f, &kv_handlers);
	put.key = (char *) "locked";
	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_put(f->cli, &put,
	                     &ack, NULL, &st),
	    NRPC_FAILED_PRECONDITION);
	assert_int_equal(st.code, NRPC_FAILED_PRECONDITION);
	assert_string_equal(st.reason, "LOCKED");
	assert_string_equal(st.field, "key");
	assert_string_equal(st.message, "record locked is locked");
	assert_ptr_equal(ack, &sentinel);
	nrpc_status_fini(&st);

	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_put_async(f->cli,
	                     &put, NULL, on_put, &d, &st),
	    NRPC_OK);
	done_wait(&d, 1);
	assert_int_equal(d.code, NRPC_FAILED_PRECONDITION);
	assert_string_equal(d.reason, "LOCKED");
	assert_false(d.had_resp);
	nrpc_status_fini(&st);
	done_fini(&d);
}

static void
test_handler_failure_detail_reaches_the_typed_stub(void **state)
{
	fixture *f = *state;
	kv_pair put = PGN_DEP_C__V1__KV__PAIR__INIT;
	put_ack *ack = NULL;
	kv_pair *current;
	nrpc_status st = {0};

	memset(&st, 0, sizeof(st));
	start(f, &kv_handlers);
	put.key = (char *) "conflict";
	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_put(f->cli, &put,
	                     &ack, NULL, &st),
	    NRPC_ABORTED);
	assert_null(ack);
	assert_string_equal(st.reason, "VERSION_CONFLICT");
	assert_string_equal(st.detail_type, "pgn_dep.v1.KV_Pair");
	current = pgn_dep_c__v1__kv__pair__unpack(NULL, st.detail_len,
	    st.detail);
	assert_non_null(current);
	assert_string_equal(current->key, "conflict");
	assert_memory_equal(current->value.data, "theirs", 6);
	pgn_dep_c__v1__kv__pair__free_unpacked(current, NULL);
	nrpc_status_fini(&st);
}

static void
test_async_stub_with_null_callback_discards_the_reply(void **state)
{
	fixture *f = *state;
	kv_pair put = PGN_DEP_C__V1__KV__PAIR__INIT;
	nrpc_status st = {0};
	int i;

	memset(&st, 0, sizeof(st));
	start(f, &kv_handlers);
	put.key = (char *) "fire-and-forget";
	assert_int_equal(pgn_test_sub_pkg_v2_key_value_store_put_async(f->cli,
	                     &put, NULL, NULL, NULL, &st),
	    NRPC_OK);
	/* The reply is freed by the trampoline (ASan would see a leak). */
	for (i = 0; i < 1000 && atomic_load(&f->puts) == 0; i++) {
		usleep(10 * 1000);
	}
	assert_int_equal(atomic_load(&f->puts), 1);
	nrpc_status_fini(&st);
}

static void
test_register_passes_the_runtime_refusal_through(void **state)
{
	fixture *f = *state;
	nrpc_server_config cfg;
	const char *urls[] = {"inproc://pgn_rpc_unused"};
	nrpc_status st = {0};

	(void) f;
	memset(&st, 0, sizeof(st));
	nrpc_server_config_default(&cfg);
	cfg.urls = urls;
	cfg.n_urls = 1;
	assert_int_equal(nrpc_server_create(&cfg, &f->srv, &st), 0);
	assert_int_equal(pgn_test_sub_pkg_v2_calculator_register(f->srv,
	                     &calc_handlers, f, &st),
	    0);
	assert_int_not_equal(pgn_test_sub_pkg_v2_calculator_register(f->srv,
	                         &calc_handlers, f, &st),
	    0);
	assert_int_equal(st.code, NRPC_ALREADY_EXISTS);
	nrpc_status_fini(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_method_tables_describe_every_method),
	    cmocka_unit_test_setup_teardown(
	        test_blocking_stubs_reach_every_handler, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_async_stubs_reach_every_handler, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_empty_handler_slot_answers_unimplemented, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_handler_failure_reaches_the_typed_stubs, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_handler_failure_detail_reaches_the_typed_stub, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_async_stub_with_null_callback_discards_the_reply, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_register_passes_the_runtime_refusal_through, setup,
	        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

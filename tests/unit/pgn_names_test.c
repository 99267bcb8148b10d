/*
 * pgn_names_test.c - protoc-gen-nrpc's name mangling, arena and emitter.
 *
 * The expected protoc-c names below were taken from protoc-c 1.4.1's own
 * output for the same names. That the generated stubs agree with protoc-c
 * is proven by compiling them against protoc-c's output (pgn_rpc_test);
 * these tests pin the functions down one case at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ds_alloc.h"
#include "pgn.h"

static pgn_arena arena;

static int
setup(void **state)
{
	(void) state;
	pgn_arena_init(&arena);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	pgn_arena_fini(&arena);
	return 0;
}

static void
test_camel_to_lower_splits_words_like_protoc_c(void **state)
{
	static const char *const cases[][2] = {
	    {"DataSync", "data_sync"},
	    {"KV_Pair", "kv__pair"},
	    {"HTTPRequest2xFoo", "httprequest2x_foo"},
	    {"lower_case_msg", "lower_case_msg"},
	    {"Get2Things", "get2_things"},
	    {"_Foo", "__foo"},
	    {"V1", "v1"},
	};
	size_t i;

	(void) state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_string_equal(pgn_camel_to_lower(&arena, cases[i][0]),
		    cases[i][1]);
	}
}

static void
test_full_names_become_protoc_c_type_and_function_names(void **state)
{
	(void) state;
	assert_string_equal(
	    pgn_full_name_to_c(&arena, "my_pkg.v1.Outer.Inner_x"),
	    "MyPkg__V1__Outer__InnerX");
	assert_string_equal(pgn_full_name_to_c(&arena, "foo.bar_baz.KV_Pair"),
	    "Foo__BarBaz__KVPair");
	assert_string_equal(pgn_full_name_to_c(&arena, "lower_case_msg"),
	    "LowerCaseMsg");
	assert_string_equal(
	    pgn_full_name_to_lower(&arena, "foo.bar_baz.HTTPRequest2xFoo"),
	    "foo__bar_baz__httprequest2x_foo");
	assert_string_equal(
	    pgn_full_name_to_lower(&arena, "foo.bar_baz.Outer.Inner_x"),
	    "foo__bar_baz__outer__inner_x");
	assert_string_equal(pgn_full_name_to_lower(&arena, "a.KV_Pair"),
	    "a__kv__pair");
	/* empty pieces are skipped, as SplitStringUsing does */
	assert_string_equal(pgn_full_name_to_c(&arena, ".a..b."), "A__B");
}

static void
test_c_package_replaces_the_package_like_protoc_c(void **state)
{
	(void) state;
	assert_string_equal(pgn_c_full_name(&arena, "my_pkg.v1.Outer.In",
	                        "my_pkg.v1", "foo.bar_baz"),
	    "foo.bar_baz.Outer.In");
	assert_string_equal(pgn_c_full_name(&arena, "Msg", "", "c_pkg"),
	    "c_pkg.Msg");
	assert_string_equal(pgn_c_full_name(&arena, "a.b.Msg", "a.b", NULL),
	    "a.b.Msg");
}

static void
test_api_prefix_joins_lowered_package_and_snake_service(void **state)
{
	(void) state;
	assert_string_equal(pgn_api_prefix(&arena, "datasync.v1", "DataSync"),
	    "datasync_v1_data_sync");
	assert_string_equal(
	    pgn_api_prefix(&arena, "pgn_test.Sub_Pkg.V2", "KeyValueStore"),
	    "pgn_test_sub_pkg_v2_key_value_store");
	assert_string_equal(pgn_api_prefix(&arena, "", "HTTPEcho"), "httpecho");
}

static void
test_reserved_member_names_get_a_trailing_underscore(void **state)
{
	/* Every word of the table: also proves it is sorted for bsearch. */
	static const char *const reserved[] = {"alignas", "alignof", "asm",
	    "assert", "auto", "bool", "break", "case", "char", "complex",
	    "const", "constexpr", "continue", "default", "do", "double",
	    "else", "enum", "environ", "errno", "extern", "false", "float",
	    "for", "goto", "i386", "if", "imaginary", "inline", "int",
	    "linux", "long", "major", "makedev", "minor", "noreturn",
	    "nullptr", "offsetof", "register", "restrict", "return", "setjmp",
	    "short", "signed", "sizeof", "static", "static_assert", "stderr",
	    "stdin", "stdout", "struct", "switch", "thread_local", "true",
	    "typedef", "typeof", "typeof_unqual", "union", "unix", "unsigned",
	    "va_arg", "va_copy", "va_end", "va_start", "void", "volatile",
	    "while"};
	size_t i;

	(void) state;
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		assert_true(pgn_is_reserved(reserved[i]));
	}
	assert_string_equal(pgn_member_name(&arena, "default"), "default_");
	assert_string_equal(pgn_member_name(&arena, "register"), "register_");
	/* delete is C++'s, not C's */
	assert_string_equal(pgn_member_name(&arena, "delete"), "delete");
	assert_string_equal(pgn_member_name(&arena, "get"), "get");
	assert_false(pgn_is_reserved("defaults"));
	assert_false(pgn_is_reserved(""));
}

static void
test_method_stem_keeps_service_level_names_free(void **state)
{
	(void) state;
	assert_string_equal(pgn_method_stem(&arena, "register"), "register_");
	assert_string_equal(pgn_method_stem(&arena, "methods"), "methods_");
	assert_string_equal(pgn_method_stem(&arena, "service"), "service_");
	assert_string_equal(pgn_method_stem(&arena, "handlers"), "handlers_");
	assert_string_equal(pgn_method_stem(&arena, "dispatch"), "dispatch_");
	/* keywords are fine after a prefix */
	assert_string_equal(pgn_method_stem(&arena, "default"), "default");
	assert_string_equal(pgn_method_stem(&arena, "get"), "get");
}

static void
test_identifiers_and_packages_are_validated(void **state)
{
	(void) state;
	assert_true(pgn_is_ident("a1_"));
	assert_true(pgn_is_ident("_A"));
	assert_false(pgn_is_ident(""));
	assert_false(pgn_is_ident("1a"));
	assert_false(pgn_is_ident("a.b"));
	assert_false(pgn_is_ident("a-b"));
	assert_false(pgn_is_ident("caf\xc3\xa9"));
	assert_true(pgn_is_dotted(""));
	assert_true(pgn_is_dotted("a.b_c.v1"));
	assert_false(pgn_is_dotted("a..b"));
	assert_false(pgn_is_dotted(".a"));
	assert_false(pgn_is_dotted("a."));
	assert_false(pgn_is_dotted("a.1b"));
}

static void
test_text_for_c_strings_and_comments_is_checked(void **state)
{
	(void) state;
	assert_true(pgn_c_text_ok("dir/my file-2.proto"));
	assert_true(pgn_c_text_ok("caf\xc3\xa9.proto"));
	assert_false(pgn_c_text_ok("a\"b.proto"));
	assert_false(pgn_c_text_ok("a\\b.proto"));
	assert_false(pgn_c_text_ok("a*/b.proto"));
	assert_false(pgn_c_text_ok("a/*b.proto"));
	assert_false(pgn_c_text_ok("a?\?/b.proto")); /* a trigraph */
	assert_false(pgn_c_text_ok("a\nb.proto"));
}

static void
test_file_names_map_like_protoc_c(void **state)
{
	(void) state;
	assert_string_equal(pgn_strip_proto(&arena, "a/b.proto"), "a/b");
	assert_string_equal(pgn_strip_proto(&arena, "a/b.protodevel"), "a/b");
	assert_string_equal(pgn_strip_proto(&arena, "a/b.txt"), "a/b.txt");
	assert_string_equal(
	    pgn_file_ident(&arena, "datasync/v1/datasync.proto"),
	    "datasync_2fv1_2fdatasync_2eproto");
	assert_string_equal(pgn_file_ident(&arena, "a\tb"), "a_9b");
}

static void
test_arena_reports_allocation_failure(void **state)
{
	void *big;

	(void) state;
	ds_alloc_fail_after(0);
	assert_null(pgn_arena_alloc(&arena, 16));
	assert_null(pgn_arena_printf(&arena, "%d", 42));
	ds_alloc_fail_reset();
	assert_null(pgn_arena_array(&arena, SIZE_MAX / 2, 4));
	/* a chunk of its own, then small ones again */
	big = pgn_arena_alloc(&arena, 1024 * 1024);
	assert_non_null(big);
	memset(big, 0xab, 1024 * 1024);
	assert_string_equal(pgn_arena_printf(&arena, "%s-%d", "x", 7), "x-7");
}

static void
test_emitter_refuses_to_grow_past_its_max(void **state)
{
	pgn_emit e;

	(void) state;
	pgn_emit_init(&e, &arena, 16);
	pgn_emitf(&e, "0123456789");
	assert_int_equal(e.err, DS_OK);
	pgn_emitf(&e, "0123456789");
	assert_int_equal(e.err, DS_ETOOLARGE);
	/* sticky: nothing more is written */
	pgn_emitf(&e, "x");
	assert_int_equal(e.out.len, 10);
	pgn_emit_fini(&e);
}

/* Every line of text, tabs counted as 8 columns, fits in PGN_COLUMNS
 * unless it is a single word. */
static void
assert_lines_fit(const char *text)
{
	const char *line = text;

	while (*line != 0) {
		const char *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t) (nl - line) : strlen(line);
		size_t col = 0;
		size_t words = 0;
		size_t i;

		for (i = 0; i < len; i++) {
			col = line[i] == '\t' ? (col / 8 + 1) * 8 : col + 1;
			if (line[i] != ' ' && line[i] != '\t' &&
			    (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
				words++;
			}
		}
		if (col > PGN_COLUMNS && words > 2) {
			fail_msg("line too long (%zu): %.*s", col, (int) len, line);
		}
		line += len + (nl != NULL);
	}
}

static void
test_emitter_wraps_lists_and_comments(void **state)
{
	const char *items[12];
	pgn_emit e;
	size_t i;

	(void) state;
	for (i = 0; i < 12; i++) {
		items[i] = pgn_arena_printf(&arena, "const some_type *param_%zu", i);
	}
	pgn_emit_init(&e, &arena, 1 << 20);
	pgn_emit_in(&e);
	pgn_emit_list(&e, "int rv = a_rather_long_function_name(", items, 12,
	    ");");
	pgn_emitf(&e, "\n");
	pgn_emit_comment_begin(&e);
	pgn_emit_para(&e,
	    "%s is a paragraph that goes on and on, well past one line, with "
	    "an_identifier_much_longer_than_usual_that_cannot_be_broken_at_all_"
	    "anywhere and then some more words to wrap.",
	    "name");
	pgn_emit_verbatim(&e, "verbatim line one\n  verbatim two");
	pgn_emit_comment_end(&e);
	pgn_emit_out(&e);
	assert_int_equal(e.err, DS_OK);
	assert_non_null(e.out.ptr);
	assert_lines_fit((const char *) e.out.ptr);
	/* the continuation lines of the list are indented by four spaces */
	assert_non_null(strstr((const char *) e.out.ptr, "\n\t    const"));
	/* a comment is opened and closed once */
	assert_non_null(strstr((const char *) e.out.ptr, "\t/* name is"));
	assert_non_null(strstr((const char *) e.out.ptr, "verbatim two */\n"));
	pgn_emit_fini(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_camel_to_lower_splits_words_like_protoc_c, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_full_names_become_protoc_c_type_and_function_names, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_c_package_replaces_the_package_like_protoc_c, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_api_prefix_joins_lowered_package_and_snake_service, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_reserved_member_names_get_a_trailing_underscore, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_method_stem_keeps_service_level_names_free, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_identifiers_and_packages_are_validated, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_text_for_c_strings_and_comments_is_checked, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_file_names_map_like_protoc_c, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_arena_reports_allocation_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emitter_refuses_to_grow_past_its_max, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_emitter_wraps_lists_and_comments, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

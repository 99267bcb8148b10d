/*
 * store_list_test.c - List: live keys only, byte order, prefixes, paging
 * with opaque tokens that stay correct while writes happen between pages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store_test_util.h"

/* sls_list lists one page; asserts success. */
static store_list_page
sls_list(store_conn *c, const char *prefix, uint32_t page_size,
    const char *token)
{
	store_list_req req;
	store_list_page page;
	store_error err;

	memset(&req, 0, sizeof(req));
	memset(&page, 0, sizeof(page));
	req.prefix = prefix;
	req.prefix_len = prefix != NULL ? strlen(prefix) : 0;
	req.page_size = page_size;
	req.page_token = token;
	req.page_token_len = token != NULL ? strlen(token) : 0;
	if (store_list(c, &req, &page, &err) != STORE_OK) {
		fail_msg("store_list: %s", err.message);
	}
	return page;
}

static store_err
sls_list_code(store_conn *c, const char *prefix, size_t prefix_len,
    uint32_t page_size, const char *token, store_error *err)
{
	store_list_req req;
	store_list_page page;
	store_err rv;

	memset(&req, 0, sizeof(req));
	memset(&page, 0, sizeof(page));
	req.prefix = prefix;
	req.prefix_len = prefix_len;
	req.page_size = page_size;
	req.page_token = token;
	req.page_token_len = token != NULL ? strlen(token) : 0;
	rv = store_list(c, &req, &page, err);
	if (rv != STORE_OK) {
		assert_null(page.records);
		assert_int_equal(page.n, 0);
	}
	store_list_page_fini(&page);
	return rv;
}

static void
test_list_returns_live_keys_in_byte_order_without_values(void **state)
{
	stt_fx *fx = *state;
	store_list_page p;

	(void) stt_put(fx->c, "b", "2");
	(void) stt_put(fx->c, "\xc3\xa9t\xc3\xa9", "x"); /* 0xc3 > 'z' */
	(void) stt_put(fx->c, "a", "1");
	(void) stt_put(fx->c, "z", "3");
	(void) stt_put(fx->c, "B", "0");
	(void) stt_put(fx->c, "gone", "x");
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("gone", STORE_PRECOND_IF_EXISTS, 0)),
	    STORE_OK);
	p = sls_list(fx->c, NULL, 0, NULL);
	assert_int_equal(p.n, 5);
	assert_string_equal(p.records[0].key, "B");
	assert_string_equal(p.records[1].key, "a");
	assert_string_equal(p.records[2].key, "b");
	assert_string_equal(p.records[3].key, "z");
	assert_string_equal(p.records[4].key, "\xc3\xa9t\xc3\xa9");
	for (size_t i = 0; i < p.n; i++) {
		assert_null(p.records[i].value);
		assert_int_equal(p.records[i].value_len, 0);
		assert_int_equal(p.records[i].version, 1);
		assert_false(p.records[i].deleted);
		assert_string_equal(p.records[i].content_type, "text/plain");
	}
	assert_int_equal(p.records[0].revision, 5);
	assert_null(p.next_page_token);
	assert_int_equal(p.revision, 7);
	store_list_page_fini(&p);
}

static void
test_list_filters_by_prefix(void **state)
{
	stt_fx *fx = *state;
	const char *keys[] = {"user", "user/", "user/1", "user/2", "user0",
	    "users/9", "usa", "user/\xf4\x8f\xbf\xbf"};
	store_list_page p;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		(void) stt_put(fx->c, keys[i], "x");
	}
	p = sls_list(fx->c, "user/", 0, NULL);
	assert_int_equal(p.n, 4);
	assert_string_equal(p.records[0].key, "user/");
	assert_string_equal(p.records[1].key, "user/1");
	assert_string_equal(p.records[2].key, "user/2");
	assert_string_equal(p.records[3].key, "user/\xf4\x8f\xbf\xbf");
	store_list_page_fini(&p);
	p = sls_list(fx->c, "user", 0, NULL);
	assert_int_equal(p.n, 7);
	store_list_page_fini(&p);
	p = sls_list(fx->c, "nobody", 0, NULL);
	assert_int_equal(p.n, 0);
	assert_null(p.next_page_token);
	store_list_page_fini(&p);
}

static void
test_list_pages_with_tokens_and_null_token_on_the_last_page(void **state)
{
	stt_fx *fx = *state;
	char key[16];
	store_list_page p;
	char *tok;

	for (int i = 0; i < 5; i++) {
		(void) snprintf(key, sizeof(key), "k%d", i);
		(void) stt_put(fx->c, key, "x");
	}
	p = sls_list(fx->c, NULL, 2, NULL);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.records[1].key, "k1");
	assert_non_null(p.next_page_token);
	tok = strdup(p.next_page_token);
	store_list_page_fini(&p);
	p = sls_list(fx->c, NULL, 2, tok);
	free(tok);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.records[0].key, "k2");
	assert_string_equal(p.records[1].key, "k3");
	tok = strdup(p.next_page_token);
	store_list_page_fini(&p);
	p = sls_list(fx->c, NULL, 2, tok);
	free(tok);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.records[0].key, "k4");
	assert_null(p.next_page_token);
	store_list_page_fini(&p);
	/* A page exactly filled by the last keys has no next token. */
	p = sls_list(fx->c, NULL, 5, NULL);
	assert_int_equal(p.n, 5);
	assert_null(p.next_page_token);
	store_list_page_fini(&p);
}

static void
test_list_page_size_default_max_and_over_max(void **state)
{
	stt_fx *fx = *state;
	char key[16];
	store_list_page p;
	store_error err;

	for (int i = 0; i < STORE_DEFAULT_PAGE_SIZE + 1; i++) {
		(void) snprintf(key, sizeof(key), "k%04d", i);
		(void) stt_put(fx->c, key, "x");
	}
	p = sls_list(fx->c, NULL, 0, NULL);
	assert_int_equal(p.n, STORE_DEFAULT_PAGE_SIZE);
	assert_non_null(p.next_page_token);
	store_list_page_fini(&p);
	p = sls_list(fx->c, NULL, STORE_MAX_PAGE_SIZE_DEFAULT, NULL);
	assert_int_equal(p.n, STORE_DEFAULT_PAGE_SIZE + 1);
	store_list_page_fini(&p);
	assert_int_equal(sls_list_code(fx->c, NULL, 0,
	                     STORE_MAX_PAGE_SIZE_DEFAULT + 1, NULL, &err),
	    STORE_ETOOLARGE);
	assert_string_equal(err.field, "page_size");
	assert_string_equal(err.message,
	    "page_size exceeds max_page_size (1000)");
}

static void
test_list_malformed_page_token_is_invalid(void **state)
{
	stt_fx *fx = *state;
	store_error err;
	char big[2 * STORE_MAX_KEY_BYTES_DEFAULT + 3];

	assert_int_equal(sls_list_code(fx->c, NULL, 0, 0, "zz", &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "page_token");
	assert_int_equal(sls_list_code(fx->c, NULL, 0, 0, "abc", &err),
	    STORE_EINVAL);
	assert_int_equal(sls_list_code(fx->c, NULL, 0, 0, "ff", &err),
	    STORE_EINVAL); /* decodes to a byte no key contains */
	for (size_t i = 0; i + 1 < sizeof(big); i += 2) {
		memcpy(big + i, "61", 2); /* hex of "a" */
	}
	big[2 * STORE_MAX_KEY_BYTES_DEFAULT + 2] = '\0'; /* max + 1 */
	assert_int_equal(sls_list_code(fx->c, NULL, 0, 0, big, &err),
	    STORE_EINVAL);
	big[2 * STORE_MAX_KEY_BYTES_DEFAULT] = '\0'; /* max key: fine */
	assert_int_equal(sls_list_code(fx->c, NULL, 0, 0, big, &err),
	    STORE_OK);
}

static void
test_list_prefix_is_validated(void **state)
{
	stt_fx *fx = *state;
	store_error err;
	char big[STORE_MAX_KEY_BYTES_DEFAULT + 1];

	assert_int_equal(sls_list_code(fx->c, "\xc3", 1, 0, NULL, &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "prefix");
	memset(big, 'p', sizeof(big));
	assert_int_equal(sls_list_code(fx->c, big, sizeof(big), 0, NULL,
	                     &err),
	    STORE_ETOOLARGE);
	assert_string_equal(err.field, "prefix");
	assert_int_equal(sls_list_code(fx->c, big, sizeof(big) - 1, 0, NULL,
	                     &err),
	    STORE_OK);
}

static void
test_list_shows_live_locks_only(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;
	store_list_page p;

	(void) stt_put(fx->c, "a", "x");
	(void) stt_put(fx->c, "b", "x");
	assert_int_equal(stt_apply(fx->c, stt_lock("a", "ann", 1000), &r),
	    STORE_OK);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c, stt_lock("b", "bob", 5000), &r),
	    STORE_OK);
	store_write_result_fini(&r);
	ds_fake_clock_advance(&fx->clock, 1000);
	p = sls_list(fx->c, NULL, 0, NULL);
	assert_int_equal(p.n, 2);
	assert_false(p.records[0].locked);
	assert_null(p.records[0].lock.owner);
	assert_true(p.records[1].locked);
	assert_string_equal(p.records[1].lock.owner, "bob");
	assert_int_equal(p.records[1].lock.fencing_token, 2);
	assert_true(p.records[1].lock.expires_at_ms == STT_T0 + 5000);
	store_list_page_fini(&p);
}

/* test_paging_returns_every_key_exactly_once_under_writes: keys present
 * throughout a paging session are returned exactly once, in order, while
 * other keys are created before and after the cursor, updated and
 * deleted between pages. */
static void
test_paging_returns_every_key_exactly_once_under_writes(void **state)
{
	stt_fx *fx = *state;
	enum { N = 60, PAGE = 7 };
	int seen[N];
	char key[32];
	char *tok = NULL;
	char last[32] = "";
	int round = 0;

	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < N; i++) {
		(void) snprintf(key, sizeof(key), "stable/%03d", 2 * i);
		(void) stt_put(fx->c, key, "x");
		(void) snprintf(key, sizeof(key), "churn/%03d", i);
		(void) stt_put(fx->c, key, "x");
	}
	do {
		store_list_page p = sls_list(fx->c, NULL, PAGE, tok);

		free(tok);
		tok = p.next_page_token != NULL ? strdup(p.next_page_token)
		                                : NULL;
		for (size_t i = 0; i < p.n; i++) {
			int k;

			/* Strictly increasing across pages. */
			assert_true(strcmp(last, p.records[i].key) < 0);
			(void) snprintf(last, sizeof(last), "%s",
			    p.records[i].key);
			if (sscanf(p.records[i].key, "stable/%d", &k) == 1 &&
			    k % 2 == 0) {
				seen[k / 2]++;
			}
		}
		store_list_page_fini(&p);
		/* Writes between pages: new keys on both sides of the
		 * cursor (odd numbers between the stable ones), updates of
		 * stable keys, deletes and re-creates of churn keys. */
		(void) snprintf(key, sizeof(key), "stable/%03d",
		    (round * 13) % (2 * N) | 1);
		(void) stt_put(fx->c, key, "new");
		(void) snprintf(key, sizeof(key), "stable/%03d",
		    (round * 7) % N * 2);
		(void) stt_put(fx->c, key, "updated");
		(void) snprintf(key, sizeof(key), "churn/%03d", round % N);
		(void) stt_apply0(fx->c,
		    stt_delete(key, STORE_PRECOND_IF_EXISTS, 0));
		(void) snprintf(key, sizeof(key), "aaa/%03d", round);
		(void) stt_put(fx->c, key, "before everything");
		(void) snprintf(key, sizeof(key), "zzz/%03d", round);
		(void) stt_put(fx->c, key, "after everything");
		round++;
	} while (tok != NULL);
	for (int i = 0; i < N; i++) {
		assert_int_equal(seen[i], 1);
	}
	assert_true(round > N / PAGE);
}

static void
test_a_token_from_before_the_prefix_starts_at_the_prefix(void **state)
{
	stt_fx *fx = *state;
	store_list_page p;
	char tok[8];

	(void) stt_put(fx->c, "b/1", "x");
	(void) stt_put(fx->c, "b/2", "x");
	/* hex("a"): a cursor that sorts before the prefix. */
	(void) snprintf(tok, sizeof(tok), "61");
	p = sls_list(fx->c, "b/", 0, tok);
	assert_int_equal(p.n, 2);
	store_list_page_fini(&p);
	/* hex("b/1"): resume strictly after it. */
	(void) snprintf(tok, sizeof(tok), "622f31");
	p = sls_list(fx->c, "b/", 0, tok);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.records[0].key, "b/2");
	store_list_page_fini(&p);
}

#define T(f) cmocka_unit_test_setup_teardown(f, stt_setup_mem, stt_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_list_returns_live_keys_in_byte_order_without_values),
	    T(test_list_filters_by_prefix),
	    T(test_list_pages_with_tokens_and_null_token_on_the_last_page),
	    T(test_list_page_size_default_max_and_over_max),
	    T(test_list_malformed_page_token_is_invalid),
	    T(test_list_prefix_is_validated),
	    T(test_list_shows_live_locks_only),
	    T(test_paging_returns_every_key_exactly_once_under_writes),
	    T(test_a_token_from_before_the_prefix_starts_at_the_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * store_storage_test.c - what a write costs the disk (schema 4): each
 * version's value is written once, and Lock and Unlock touch only the
 * small head row, never the value, and trimming a version out of the
 * history window does not write its pages again (issue 10: <= 3 MiB per lock cycle of a
 * 1 MiB value). Measured as the growth of the WAL file, which holds every
 * page a commit wrote; the tests stay far below the 2000-frame
 * checkpoint, so the WAL only grows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "store_test_util.h"

#define SST_VALUE_BYTES (1000 * 1000)

static char *
sst_value(char c)
{
	char *v = malloc(SST_VALUE_BYTES + 1);

	assert_non_null(v);
	memset(v, c, SST_VALUE_BYTES);
	v[SST_VALUE_BYTES] = '\0';
	return v;
}

/* sst_wal_bytes is the size of fx's WAL file. */
static long long
sst_wal_bytes(const stt_fx *fx)
{
	char wal[400];
	struct stat sb;

	(void) snprintf(wal, sizeof(wal), "%s-wal", fx->path);
	assert_int_equal(stat(wal, &sb), 0);
	return (long long) sb.st_size;
}

static void
test_lock_and_unlock_never_rewrite_the_value(void **state)
{
	stt_fx *fx = stt_fx_new(NULL, true);
	char *v = sst_value('a');
	store_write_result lk;
	long long before;

	(void) state;
	(void) stt_put(fx->c, "big", v);
	before = sst_wal_bytes(fx);
	assert_int_equal(stt_apply(fx->c, stt_lock("big", "ann", 60000), &lk),
	    STORE_OK);
	assert_int_equal(stt_apply0(fx->c, stt_unlock("big", &lk.token)),
	    STORE_OK);
	/* A few pages each (head row, meta, their parents), not the value's
	 * 245 overflow pages. */
	assert_true(sst_wal_bytes(fx) - before < 64 * 1024);
	store_write_result_fini(&lk);
	free(v);
	stt_fx_free(fx);
}

static void
test_an_update_writes_its_value_once(void **state)
{
	stt_fx *fx = stt_fx_new(NULL, true);
	char *a = sst_value('a');
	char *b = sst_value('b');
	long long before;

	(void) state;
	(void) stt_put(fx->c, "big", a);
	(void) stt_put(fx->c, "big", b);
	before = sst_wal_bytes(fx);
	/* The superseded version stays readable (history) without being
	 * copied: one value's pages, plus a few. */
	(void) stt_put(fx->c, "big", a);
	assert_true(sst_wal_bytes(fx) - before <
	    SST_VALUE_BYTES + SST_VALUE_BYTES / 4);
	assert_int_equal(stt_version(fx->c, "big"), 3);
	{
		store_record rec;

		memset(&rec, 0, sizeof(rec));
		assert_int_equal(store_get(fx->c, "big", 3, 2, &rec, NULL),
		    STORE_OK);
		stt_assert_value(&rec, b);
		store_record_fini(&rec);
	}
	free(a);
	free(b);
	stt_fx_free(fx);
}

/* With history 0 every update deletes the version before: freeing its
 * pages must not write them again (SQLite's SECURE_DELETE, on in Debian's
 * build, would zero each one). */
static void
test_trimming_a_version_does_not_rewrite_its_pages(void **state)
{
	store_limits lim = store_limits_default();
	stt_fx *fx;
	char *a = sst_value('a');
	char *b = sst_value('b');
	long long before;

	(void) state;
	lim.history = 0;
	fx = stt_fx_new(&lim, true);
	(void) stt_put(fx->c, "big", a);
	(void) stt_put(fx->c, "big", b);
	before = sst_wal_bytes(fx);
	(void) stt_put(fx->c, "big", a);
	assert_true(sst_wal_bytes(fx) - before <
	    SST_VALUE_BYTES + SST_VALUE_BYTES / 4);
	assert_int_equal(store_integrity_check(fx->c, NULL), STORE_OK);
	free(a);
	free(b);
	stt_fx_free(fx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lock_and_unlock_never_rewrite_the_value),
	    cmocka_unit_test(test_an_update_writes_its_value_once),
	    cmocka_unit_test(
	        test_trimming_a_version_does_not_rewrite_its_pages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

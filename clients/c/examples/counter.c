/*
 * counter.c - a microservice's view of datasync: increment a counter that
 * other processes increment too, without ever losing an update.
 *
 *   cc counter.c $(pkg-config --cflags --libs datasync) -o counter
 *   ./counter [URL] [KEY] [TIMES]
 *
 * Each increment is a read-modify-write with a version precondition;
 * datasync_update_with_retry() retries when another writer got there
 * first, so N processes x M increments always end at exactly N*M.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <datasync.h>

/* increment parses the current value as a decimal number (absent = 0) and
 * writes that number plus one. */
static int
increment(void *ctx, const Datasync__V1__Record *cur, uint8_t **value,
    size_t *len)
{
	char text[32];
	long long n = 0;
	int w;

	(void) ctx;
	if (cur != NULL && cur->value.len > 0 && cur->value.len < sizeof(text)) {
		memcpy(text, cur->value.data, cur->value.len);
		text[cur->value.len] = '\0';
		n = strtoll(text, NULL, 10);
	}
	w = snprintf(text, sizeof(text), "%lld", n + 1);
	if ((*value = malloc((size_t) w)) == NULL) {
		return -1;
	}
	memcpy(*value, text, (size_t) w);
	*len = (size_t) w;
	return 0;
}

int
main(int argc, char **argv)
{
	const char *url = argc > 1 ? argv[1] : DATASYNC_DEFAULT_URL;
	const char *key = argc > 2 ? argv[2] : "counter";
	long times = argc > 3 ? strtol(argv[3], NULL, 10) : 1;
	datasync_client *c = NULL;
	nrpc_status st = {0};
	unsigned conflicts = 0;
	int rc = 1;

	if (datasync_connect(&url, 1, 5000, "counter-example", &c, &st) !=
	    NRPC_OK) {
		fprintf(stderr, "counter: cannot connect to %s: %s\n", url,
		    st.message);
		goto out;
	}
	for (long i = 0; i < times; i++) {
		datasync_retry_stats rs;

		if (datasync_update_with_retry(c, key, increment, NULL, 100, &rs,
		        &st) != NRPC_OK) {
			fprintf(stderr, "counter: %s: %s\n", st.reason, st.message);
			goto out;
		}
		conflicts += rs.conflicts;
		if (i + 1 == times) {
			printf("%s is now at version %" PRIu64 " (%u conflicts "
			       "retried)\n", key, rs.version, conflicts);
		}
	}
	rc = 0;
out:
	nrpc_status_fini(&st);
	datasync_close(c);
	return rc;
}

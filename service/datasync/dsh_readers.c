/*
 * dsh_readers.c - the reader pool: a few threads, each with its own store
 * read connection, that run the reads which may block on disk (List,
 * historical Get) so that they never run on nng's task threads (DESIGN §5:
 * hand work to threads only where it may block). A bounded FIFO feeds
 * them; past its bound a submit is refused and the caller answers the call.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_log.h"
#include "dsh_int.h"

/* dsh_read_job: one read waiting for a reader. a and b are borrowed from
 * the submitter (the call and its request) until fn has run. */
typedef struct dsh_read_job {
	struct dsh_read_job *next;
	dsh_read_fn fn;
	void *a;
	const void *b;
} dsh_read_job;

struct dsh_readers {
	store *store;          /* borrowed */
	unsigned n;            /* threads */
	size_t max_queue;
	pthread_t *threads;    /* owned, n entries */
	unsigned started;      /* threads running */

	pthread_mutex_t mu;
	pthread_cond_t cv;     /* a job arrived, or stopping; or (init_cv)
	                        * a thread finished opening its connection */
	dsh_read_job *head;    /* guarded by mu: FIFO */
	dsh_read_job *tail;    /* guarded by mu */
	size_t queued;         /* guarded by mu */
	bool stopping;         /* guarded by mu */
	unsigned ready;        /* guarded by mu: threads with a connection */
	unsigned failed;       /* guarded by mu: threads that could not open one */
	pthread_cond_t init_cv;

	_Atomic uint64_t ran;  /* jobs taken by a reader */
};

static void *
dsh_readers_main(void *arg)
{
	dsh_readers *r = arg;
	store_conn *c = NULL;
	store_error err;

	memset(&err, 0, sizeof(err));
	if (store_conn_open(r->store, &c, &err) != STORE_OK) {
		ds_log(DS_LOG_ERROR, "datasync",
		    "reader: cannot open a read connection: %s", err.message);
		pthread_mutex_lock(&r->mu);
		r->failed++;
		pthread_cond_broadcast(&r->init_cv);
		pthread_mutex_unlock(&r->mu);
		return NULL;
	}
	pthread_mutex_lock(&r->mu);
	r->ready++;
	pthread_cond_broadcast(&r->init_cv);
	for (;;) {
		dsh_read_job *j;

		while (r->head == NULL && !r->stopping) {
			pthread_cond_wait(&r->cv, &r->mu);
		}
		if ((j = r->head) == NULL) {
			break; /* stopping and every queued job has run */
		}
		r->head = j->next;
		if (r->head == NULL) {
			r->tail = NULL;
		}
		r->queued--;
		pthread_mutex_unlock(&r->mu);
		/* Counted before it runs: fn answers the call, and whoever
		 * got the answer may read the counter at once. */
		atomic_fetch_add(&r->ran, 1);
		j->fn(j->a, j->b, c);
		ds_free(j);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	store_conn_close(c);
	return NULL;
}

int
dsh_readers_create(store *s, unsigned n, size_t max_queue, dsh_readers **out,
    nrpc_status *st)
{
	dsh_readers *r;

	if (s == NULL || n == 0 || n > DSH_READERS_HARD) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "readers", "readers must be 1..%d", DSH_READERS_HARD);
		return st->code;
	}
	if (max_queue == 0) {
		max_queue = DSH_MAX_READ_QUEUE_DEFAULT;
	}
	if (max_queue > DSH_MAX_READ_QUEUE_HARD) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "max_read_queue", "max_read_queue (%zu) exceeds its hard "
		    "maximum (%d)", max_queue, DSH_MAX_READ_QUEUE_HARD);
		return st->code;
	}
	if ((r = ds_calloc(1, sizeof(*r))) == NULL ||
	    (r->threads = ds_calloc(n, sizeof(*r->threads))) == NULL) {
		ds_free(r);
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED",
		    NULL, "out of memory creating the reader pool");
		return st->code;
	}
	r->store = s;
	r->n = n;
	r->max_queue = max_queue;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	pthread_cond_init(&r->init_cv, NULL);
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&r->threads[i], NULL, dsh_readers_main, r) !=
		    0) {
			break;
		}
		r->started++;
	}
	pthread_mutex_lock(&r->mu);
	while (r->ready + r->failed < r->started) {
		pthread_cond_wait(&r->init_cv, &r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	if (r->started < n || r->failed > 0) {
		dsh_readers_destroy(r);
		nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
		    "cannot start the reader pool (%u threads)", n);
		return st->code;
	}
	*out = r;
	return NRPC_OK;
}

dsh_submit_result
dsh_readers_submit(dsh_readers *r, dsh_read_fn fn, void *a, const void *b)
{
	dsh_read_job *j;
	dsh_submit_result res = DSH_SUBMIT_OK;

	if ((j = ds_alloc(sizeof(*j))) == NULL) {
		return DSH_SUBMIT_NOMEM;
	}
	j->next = NULL;
	j->fn = fn;
	j->a = a;
	j->b = b;
	pthread_mutex_lock(&r->mu);
	if (r->stopping) {
		res = DSH_SUBMIT_STOPPING;
	} else if (r->queued >= r->max_queue) {
		res = DSH_SUBMIT_FULL;
	} else {
		if (r->tail != NULL) {
			r->tail->next = j;
		} else {
			r->head = j;
		}
		r->tail = j;
		r->queued++;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	if (res != DSH_SUBMIT_OK) {
		ds_free(j);
	}
	return res;
}

size_t
dsh_readers_max_queue(const dsh_readers *r)
{
	return r->max_queue;
}

uint64_t
dsh_readers_ran(dsh_readers *r)
{
	return atomic_load(&r->ran);
}

void
dsh_readers_destroy(dsh_readers *r)
{
	if (r == NULL) {
		return;
	}
	/* The threads run what is queued before they see stopping with an
	 * empty queue: every accepted read is answered. */
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (unsigned i = 0; i < r->started; i++) {
		pthread_join(r->threads[i], NULL);
	}
	pthread_cond_destroy(&r->init_cv);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	ds_free(r->threads);
	ds_free(r);
}

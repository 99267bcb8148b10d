/*
 * nrpc_pool.c - worker threads and the bounded queue that feeds them.
 *
 * The producer is an nng callback, which must never block: nrpc_pool_push
 * only takes the queue mutex (held for a few instructions) and refuses
 * when the queue is full, so the server can answer OVERLOADED at once.
 * Workers are started together and take work only after every
 * worker_init succeeded, so a failing init leaves nothing half-started.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_log.h"
#include "nrpc_int.h"

typedef struct nrpc_pool_arg {
	nrpc_pool *pool;
	unsigned index;
} nrpc_pool_arg;

static void *
nrpc_pool_main(void *varg)
{
	nrpc_pool_arg *pa = varg;
	nrpc_pool *p = pa->pool;
	unsigned index = pa->index;
	void *wstate = NULL;
	int rc = 0;
	char name[16];

	ds_free(pa);
	(void) snprintf(name, sizeof(name), "nrpc-w%u", index);
	/* Best effort: the name only helps debuggers and top. */
	(void) pthread_setname_np(pthread_self(), name);

	if (p->init != NULL) {
		rc = p->init(p->worker_arg, index, &wstate);
	}
	pthread_mutex_lock(&p->mtx);
	p->inits_done++;
	if (rc != 0) {
		if (p->inits_failed++ == 0) {
			p->first_fail_rc = rc;
			p->first_fail_idx = index;
		}
	}
	pthread_cond_broadcast(&p->start_cv);
	while (!p->go && !p->stopping) {
		pthread_cond_wait(&p->start_cv, &p->mtx);
	}
	if (rc != 0) {
		pthread_mutex_unlock(&p->mtx);
		return NULL; /* init failed: nothing to fini */
	}
	for (;;) {
		void *item;

		while (p->count == 0 && !p->stopping) {
			p->idle++;
			pthread_cond_wait(&p->work_cv, &p->mtx);
			p->idle--;
		}
		if (p->count == 0) {
			break; /* stopping and drained */
		}
		item = p->ring[p->head];
		p->head = (p->head + 1) % p->cap;
		p->count--;
		pthread_mutex_unlock(&p->mtx);
		p->run(item, wstate, p->run_arg);
		pthread_mutex_lock(&p->mtx);
	}
	pthread_mutex_unlock(&p->mtx);
	if (p->fini != NULL) {
		p->fini(p->worker_arg, wstate);
	}
	return NULL;
}

/* nrpc_pool_teardown stops and joins the first `started` workers, then
 * frees the pool. */
static void
nrpc_pool_teardown(nrpc_pool *p, unsigned started)
{
	pthread_mutex_lock(&p->mtx);
	p->stopping = true;
	pthread_cond_broadcast(&p->start_cv);
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mtx);
	for (unsigned i = 0; i < started; i++) {
		/* pthread_join only fails for invalid or self threads. */
		(void) pthread_join(p->threads[i], NULL);
	}
	pthread_cond_destroy(&p->start_cv);
	pthread_cond_destroy(&p->work_cv);
	pthread_mutex_destroy(&p->mtx);
	ds_free(p->threads);
	ds_free(p->ring);
	memset(p, 0, sizeof(*p));
}

nrpc_code
nrpc_pool_start(nrpc_pool *p, unsigned n, size_t max_queue,
    nrpc_pool_run_fn run, void *run_arg, nrpc_worker_init_fn init,
    nrpc_worker_fini_fn fini, void *worker_arg, nrpc_status *st)
{
	unsigned started = 0;
	int rc;

	memset(p, 0, sizeof(*p));
	if (n == 0 || max_queue == 0) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    n == 0 ? "workers" : "max_queue", "%s must be positive",
		    n == 0 ? "workers" : "max_queue");
		return NRPC_INVALID_ARGUMENT;
	}
	p->ring = ds_calloc(max_queue, sizeof(void *));
	p->threads = ds_calloc(n, sizeof(pthread_t));
	if (p->ring == NULL || p->threads == NULL) {
		ds_free(p->ring);
		ds_free(p->threads);
		memset(p, 0, sizeof(*p));
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY",
		    NULL, "out of memory starting %u workers", n);
		return NRPC_RESOURCE_EXHAUSTED;
	}
	pthread_mutex_init(&p->mtx, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->start_cv, NULL);
	p->cap = max_queue;
	p->n_threads = n;
	p->run = run;
	p->run_arg = run_arg;
	p->init = init;
	p->fini = fini;
	p->worker_arg = worker_arg;

	for (started = 0; started < n; started++) {
		nrpc_pool_arg *pa = ds_alloc(sizeof(*pa));

		if (pa == NULL) {
			nrpc_pool_teardown(p, started);
			nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED,
			    "OUT_OF_MEMORY", NULL,
			    "out of memory starting worker %u", started);
			return NRPC_RESOURCE_EXHAUSTED;
		}
		pa->pool = p;
		pa->index = started;
		if ((rc = pthread_create(&p->threads[started], NULL,
		    nrpc_pool_main, pa)) != 0) {
			ds_free(pa);
			nrpc_pool_teardown(p, started);
			nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED,
			    "THREADS_EXHAUSTED", NULL,
			    "cannot start worker thread %u: %s", started,
			    strerror(rc));
			return NRPC_RESOURCE_EXHAUSTED;
		}
	}

	pthread_mutex_lock(&p->mtx);
	while (p->inits_done < n) {
		pthread_cond_wait(&p->start_cv, &p->mtx);
	}
	if (p->inits_failed > 0) {
		int frc = p->first_fail_rc;
		unsigned fidx = p->first_fail_idx;

		pthread_mutex_unlock(&p->mtx);
		nrpc_pool_teardown(p, n);
		nrpc_status_set(st, NRPC_INTERNAL, "WORKER_INIT_FAILED", NULL,
		    "worker_init failed for worker %u (returned %d)", fidx, frc);
		return NRPC_INTERNAL;
	}
	p->go = true;
	p->started = true;
	pthread_cond_broadcast(&p->start_cv);
	pthread_mutex_unlock(&p->mtx);
	return NRPC_OK;
}

bool
nrpc_pool_push(nrpc_pool *p, void *item)
{
	bool wake;

	pthread_mutex_lock(&p->mtx);
	if (p->stopping || p->count == p->cap) {
		pthread_mutex_unlock(&p->mtx);
		return false;
	}
	p->ring[(p->head + p->count) % p->cap] = item;
	p->count++;
	/* Only pay for a wake-up when a worker sleeps: under load the
	 * workers find the next item without one. */
	wake = p->idle > 0;
	pthread_mutex_unlock(&p->mtx);
	if (wake) {
		pthread_cond_signal(&p->work_cv);
	}
	return true;
}

void
nrpc_pool_stop(nrpc_pool *p)
{
	if (!p->started) {
		return;
	}
	nrpc_pool_teardown(p, p->n_threads);
}

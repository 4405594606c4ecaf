/* Cancel tokens: another thread trips one to end a waiting acquire or a
 * retry loop at once. Sleeps wait on the token's condition variable; a
 * statement blocked in the server is interrupted through the backend
 * (PostgreSQL: a cancel request; MariaDB: the connection is shut down). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include "internal.h"

struct lks_cancel {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_bool tripped;
	lks_conn *busy; /* in a blocking statement for this token */
};

int lks_cancel_new(lks_cancel **out)
{
	pthread_condattr_t ca;
	lks_cancel *t;
	if (!out)
		return LKS_EINVAL;
	if (!(*out = t = calloc(1, sizeof *t)))
		return LKS_ENOMEM;
	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	return LKS_OK;
}

void lks_cancel_trip(lks_cancel *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	atomic_store(&t->tripped, true);
	pthread_cond_broadcast(&t->cv);
	if (t->busy)
		t->busy->ops->interrupt(t->busy);
	pthread_mutex_unlock(&t->mu);
}

int lks_cancel_is_tripped(const lks_cancel *t)
{
	return t && atomic_load(&t->tripped);
}

void lks_cancel_reset(lks_cancel *t)
{
	if (t)
		atomic_store(&t->tripped, false);
}

void lks_cancel_free(lks_cancel *t)
{
	if (!t)
		return;
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

bool lks_cancel_sleep(lks_cancel *t, int64_t us)
{
	struct timespec ts;
	if (!t) {
		lks_sleep_us(us);
		return false;
	}
	if (us <= 0)
		return atomic_load(&t->tripped);
	lks_monotonic_deadline(us, &ts);
	pthread_mutex_lock(&t->mu);
	while (!atomic_load(&t->tripped) && pthread_cond_timedwait(&t->cv, &t->mu, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&t->mu);
	return atomic_load(&t->tripped);
}

bool lks_cancel_enter(lks_cancel *t, lks_conn *c)
{
	bool tripped;
	if (!t)
		return false;
	c->ops->interrupt_prepare(c);
	pthread_mutex_lock(&t->mu);
	tripped = atomic_load(&t->tripped);
	if (!tripped)
		t->busy = c;
	pthread_mutex_unlock(&t->mu);
	return tripped;
}

void lks_cancel_leave(lks_cancel *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	t->busy = NULL;
	pthread_mutex_unlock(&t->mu);
}

/* Cancel tokens: another thread trips one to end a waiting acquire or a
 * retry loop at once. Tripping sets a flag and makes the token's eventfd
 * readable, and does no network I/O: sleeps and PostgreSQL's statement waits
 * poll that fd (the waiting thread itself sends PostgreSQL's cancel request),
 * so every wait on a tripped token, however many share it, ends promptly
 * even when the server does not answer. MariaDB statements block inside
 * Connector/C: trip shuts down each such connection's socket (no I/O). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

struct lks_cancel {
	pthread_mutex_t mu;   /* guards busy */
	atomic_bool tripped;
	int efd;              /* readable from the trip until the reset */
	lks_conn *busy;       /* in a blocking statement for this token, linked
	                         through cancel_next */
};

int lks_cancel_new(lks_cancel **out)
{
	lks_cancel *t;
	if (!out)
		return LKS_EINVAL;
	if (!(*out = t = calloc(1, sizeof *t)))
		return LKS_ENOMEM;
	if ((t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		free(t);
		*out = NULL;
		return LKS_ENOMEM; /* out of file descriptors */
	}
	pthread_mutex_init(&t->mu, NULL);
	return LKS_OK;
}

void lks_cancel_trip(lks_cancel *t)
{
	uint64_t one = 1;
	if (!t)
		return;
	atomic_store(&t->tripped, true);
	if (write(t->efd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is full, so already readable */
	}
	pthread_mutex_lock(&t->mu);
	for (lks_conn *c = t->busy; c; c = c->cancel_next)
		if (c->ops->interrupt)
			c->ops->interrupt(c);
	pthread_mutex_unlock(&t->mu);
}

int lks_cancel_is_tripped(const lks_cancel *t)
{
	return t && atomic_load(&t->tripped);
}

void lks_cancel_reset(lks_cancel *t)
{
	uint64_t n;
	if (!t)
		return;
	atomic_store(&t->tripped, false);
	if (read(t->efd, &n, sizeof n) < 0) {
		/* EAGAIN: not tripped since the last reset */
	}
}

void lks_cancel_free(lks_cancel *t)
{
	if (!t)
		return;
	close(t->efd);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

int lks_cancel_fd(const lks_cancel *t)
{
	return t ? t->efd : -1;
}

bool lks_cancel_sleep(lks_cancel *t, int64_t us)
{
	int64_t deadline;
	if (!t) {
		lks_sleep_us(us);
		return false;
	}
	deadline = lks_now_us() + us;
	while (!atomic_load(&t->tripped)) {
		int64_t left = deadline - lks_now_us();
		struct pollfd p = {.fd = t->efd, .events = POLLIN};
		struct timespec ts;
		if (left <= 0)
			break;
		ts.tv_sec = (time_t)(left / 1000000);
		ts.tv_nsec = (long)(left % 1000000) * 1000;
		if (ppoll(&p, 1, &ts, NULL) < 0 && errno != EINTR)
			lks_sleep_us(left); /* cannot happen with a valid fd */
	}
	return atomic_load(&t->tripped);
}

bool lks_cancel_enter(lks_cancel *t, lks_conn *c)
{
	bool tripped;
	if (!t)
		return false;
	pthread_mutex_lock(&t->mu);
	tripped = atomic_load(&t->tripped);
	if (!tripped) {
		c->cancel = t;
		c->cancel_next = t->busy;
		t->busy = c;
	}
	pthread_mutex_unlock(&t->mu);
	return tripped;
}

void lks_cancel_leave(lks_cancel *t, lks_conn *c)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	for (lks_conn **p = &t->busy; *p; p = &(*p)->cancel_next)
		if (*p == c) {
			*p = c->cancel_next;
			break;
		}
	c->cancel = NULL;
	c->cancel_next = NULL;
	pthread_mutex_unlock(&t->mu);
}

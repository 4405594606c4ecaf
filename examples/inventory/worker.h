/* A buyer thread: its connection, its counters, its latency samples. */
#ifndef INVENTORY_WORKER_H
#define INVENTORY_WORKER_H
#include "inventory.h"

enum { BUY_OK = 0, BUY_SOLD_OUT = 1, BUY_GAVE_UP = 2, BUY_ERROR = 3, BUY_REPLAYED = 4 };

typedef struct samples {
	double *v;
	size_t n, cap;
} samples;

typedef struct worker {
	const workload *w;
	strategy s;
	lks_backend backend;
	int id;
	const char *run_id;
	lks_conn *c;
	uint64_t rng;
	samples latency_ms, wait_ms;
	int64_t purchases, attempts, retries, lock_waits, timeouts, errors;
	int64_t fenced_rejections, pauses, crashes, deadlocks;
	int64_t duplicates, replays;
	int sold_out_product; /* the product a multi-item order found short */
	int64_t seq;       /* orders this buyer placed */
	char request[48];  /* the order's request id, as its client would send it */
	bool dead; /* connection lost: the worker stops */
	int64_t finished_us; /* when it stopped buying */
	char first_error[256];
} worker;

int strategy_buy(worker *k, int product);
/* an order of n distinct products (orders.c), all or nothing */
int strategy_buy_order(worker *k, const int *products, int n);
void worker_error(worker *k, int rc);
void worker_wait(worker *k, int64_t waited_us, bool waited);
double worker_random(worker *k); /* uniform [0, 1) */
int64_t worker_now_us(void);
void samples_add(samples *s, double v);
#endif

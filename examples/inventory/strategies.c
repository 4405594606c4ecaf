/* The six purchase strategies. Each buys qty units of one product, or says
 * the product is sold out. Counters live on the worker. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "worker.h"

#define ORDER_PG "INSERT INTO inv_orders (product_id, qty, strategy, worker, fence, request)" \
                 " VALUES ($1, $2, $3, $4, $5, $6)"
#define ORDER_MY "INSERT INTO inv_orders (product_id, qty, strategy, worker, fence, request)" \
                 " VALUES (?, ?, ?, ?, ?, ?)"
#define READ_PG "SELECT stock FROM inv_products WHERE id = $1"
#define READ_MY "SELECT stock FROM inv_products WHERE id = ?"
#define SET_PG "UPDATE inv_products SET stock = $1 WHERE id = $2"
#define SET_MY "UPDATE inv_products SET stock = ? WHERE id = ?"

static int q(worker *k, const char *pg, const char *my, const lks_value *p, size_t n, int64_t *out)
{
	int64_t dummy;
	int rc = lks_conn_query_int(k->c, SQL(k->backend, pg, my), p, n, out ? out : &dummy);
	if (rc && rc != LKS_NOT_FOUND)
		worker_error(k, rc);
	return rc;
}

static int ex(worker *k, const char *sql)
{
	int rc = lks_conn_exec(k->c, sql);
	if (rc)
		worker_error(k, rc);
	return rc;
}

static void rollback(worker *k)
{
	lks_conn_exec(k->c, "ROLLBACK"); /* best effort after an error */
}

static int read_stock(worker *k, int product, int64_t *stock)
{
	lks_value p = LKS_INT(product);
	return q(k, READ_PG, READ_MY, &p, 1, stock);
}

static int insert_order(worker *k, int product, int64_t fence)
{
	lks_value p[6] = {LKS_INT(product), LKS_INT(k->w->qty), LKS_TEXT(strategy_names[k->s]),
	                  LKS_INT(k->id), fence ? LKS_INT(fence) : LKS_NULLV, LKS_TEXT(k->request)};
	return q(k, ORDER_PG, ORDER_MY, p, 6, NULL);
}

static void think(worker *k)
{
	if (k->w->think_ms > 0)
		usleep((useconds_t)k->w->think_ms * 1000);
}

/* read, think, write back what was read minus qty: loses updates */
static int buy_naive(worker *k, int product)
{
	int64_t stock;
	k->attempts++;
	if (read_stock(k, product, &stock))
		return BUY_ERROR;
	if (stock < k->w->qty)
		return BUY_SOLD_OUT;
	think(k);
	lks_value p[2] = {LKS_INT(stock - k->w->qty), LKS_INT(product)};
	if (ex(k, "BEGIN") || q(k, SET_PG, SET_MY, p, 2, NULL) || insert_order(k, product, 0) ||
	    ex(k, "COMMIT")) {
		rollback(k);
		return BUY_ERROR;
	}
	return BUY_OK;
}

typedef struct opt_ctx {
	worker *k;
	int product;
} opt_ctx;

/* one optimistic attempt: read stock and version, think, CAS + order in one
 * transaction; a conflict rolls back and is retried by lks_retry */
static int optimistic_attempt(lks_conn *c, int attempt, void *arg)
{
	opt_ctx *o = arg;
	worker *k = o->k;
	lks_row_ref row = {"inv_products", "id", "version", LKS_INT(o->product)};
	const char *cols[] = {"stock"};
	const char *const *texts;
	int64_t version;
	int rc;
	(void)attempt;
	k->attempts++;
	if ((rc = lks_cas_read(c, &row, cols, 1, &version, &texts)))
		return rc;
	int64_t stock = strtoll(texts[0], NULL, 10);
	if (stock < k->w->qty)
		return BUY_SOLD_OUT;
	think(k);
	lks_value nv = LKS_INT(stock - k->w->qty);
	if ((rc = lks_conn_exec(c, "BEGIN")))
		return rc;
	rc = lks_cas_update(c, &row, version, cols, &nv, 1, NULL);
	if (rc == LKS_OK && (rc = insert_order(k, o->product, 0)) == LKS_OK)
		rc = lks_conn_exec(c, "COMMIT");
	if (rc)
		rollback(k);
	return rc;
}

static int buy_optimistic(worker *k, int product)
{
	lks_retry_options ro = LKS_RETRY_OPTIONS_INIT;
	lks_retry_stats st;
	opt_ctx o = {k, product};
	int rc;
	ro.max_attempts = k->w->max_attempts;
	ro.timeout_ms = 30000;
	ro.seed = k->rng | 1;
	rc = lks_retry(k->c, &ro, optimistic_attempt, &o, &st);
	k->retries += st.attempts - 1;
	if (rc == BUY_SOLD_OUT || rc == LKS_OK)
		return rc;
	if (rc == LKS_CONFLICT || rc == LKS_TIMEOUT) {
		k->timeouts++; /* gave up: attempts exhausted or deadline */
		return BUY_GAVE_UP;
	}
	worker_error(k, rc);
	return BUY_ERROR;
}

typedef struct fenced_ctx {
	worker *k;
	int product;
	int64_t new_stock;
} fenced_ctx;

static int fenced_body(lks_conn *c, int64_t fence, void *arg)
{
	fenced_ctx *f = arg;
	lks_value p[2] = {LKS_INT(f->new_stock), LKS_INT(f->product)};
	int64_t n;
	int rc = lks_conn_query_int(c, SQL(f->k->backend, SET_PG, SET_MY), p, 2, &n);
	return rc ? rc : insert_order(f->k, f->product, fence);
}

/* lease per product; read, think, write under the lease; fenced or not */
static int buy_leased(worker *k, int product, bool fenced)
{
	char name[96];
	snprintf(name, sizeof name, "inv:%s:%s:%d", k->run_id, strategy_names[k->s], product);
	for (;;) {
		lks_lease_acquire_options ao = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
		lks_lease_acquire_stats st;
		lks_lease *l = NULL;
		int64_t stock;
		int rc;
		ao.stats = &st;
		ao.base_delay_us = 500;
		ao.max_delay_us = 20000;
		k->attempts++;
		rc = lks_lease_acquire(&l, k->c, name, k->w->lease_ttl_ms, k->w->lease_wait_ms, &ao);
		worker_wait(k, st.waited_us, st.attempts > 1);
		if (rc == LKS_TIMEOUT || rc == LKS_BUSY) {
			k->timeouts++;
			return BUY_GAVE_UP;
		}
		if (rc) {
			worker_error(k, rc);
			return BUY_ERROR;
		}
		double fault = worker_random(k);
		if (fault < k->w->crash) {
			k->crashes++;
			lks_lease_free(l); /* vanish: no write, no release */
			return BUY_GAVE_UP;
		}
		if (read_stock(k, product, &stock)) {
			lks_lease_release(k->c, l);
			lks_lease_free(l);
			return BUY_ERROR;
		}
		if (stock < k->w->qty) {
			lks_lease_release(k->c, l);
			lks_lease_free(l);
			return BUY_SOLD_OUT;
		}
		think(k);
		if (fault < k->w->crash + k->w->pause) {
			k->pauses++; /* a GC pause, SIGSTOP, swap storm... */
			usleep((useconds_t)k->w->lease_ttl_ms * 1500);
		}
		fenced_ctx fc = {k, product, stock - k->w->qty};
		if (fenced) {
			rc = lks_lease_fenced_write(k->c, l, fenced_body, &fc);
		} else if ((rc = lks_conn_exec(k->c, "BEGIN")) == LKS_OK &&
		           (rc = fenced_body(k->c, lks_lease_fence(l), &fc)) == LKS_OK) {
			rc = lks_conn_exec(k->c, "COMMIT");
		}
		if (rc && !fenced)
			rollback(k);
		lks_lease_release(k->c, l); /* LKS_LOST after a pause: expected */
		lks_lease_free(l);
		if (rc == LKS_LOST) {
			k->fenced_rejections++;
			k->retries++;
			continue; /* the stale holder's write was refused: start over */
		}
		if (rc) {
			worker_error(k, rc);
			return BUY_ERROR;
		}
		return BUY_OK;
	}
}

/* the database's own row lock */
static int buy_select_for_update(worker *k, int product)
{
	lks_value p = LKS_INT(product);
	int64_t stock, t0;
	k->attempts++;
	if (ex(k, "BEGIN"))
		return BUY_ERROR;
	t0 = worker_now_us();
	if (q(k, READ_PG " FOR UPDATE", READ_MY " FOR UPDATE", &p, 1, &stock)) {
		rollback(k);
		return BUY_ERROR;
	}
	int64_t waited = worker_now_us() - t0;
	worker_wait(k, waited, waited > 1000); /* longer than a round trip: it queued */
	if (stock < k->w->qty) {
		rollback(k);
		return BUY_SOLD_OUT;
	}
	think(k);
	lks_value s[2] = {LKS_INT(stock - k->w->qty), LKS_INT(product)};
	if (q(k, SET_PG, SET_MY, s, 2, NULL) || insert_order(k, product, 0) || ex(k, "COMMIT")) {
		rollback(k);
		return BUY_ERROR;
	}
	return BUY_OK;
}

/* one conditional statement: no read-write window at all */
static int buy_atomic(worker *k, int product)
{
	lks_value p[3] = {LKS_INT(k->w->qty), LKS_INT(product), LKS_INT(k->w->qty)};
	int64_t changed = 0;
	k->attempts++;
	if (ex(k, "BEGIN"))
		return BUY_ERROR;
	if (q(k, "UPDATE inv_products SET stock = stock - $1 WHERE id = $2 AND stock >= $3",
	      "UPDATE inv_products SET stock = stock - ? WHERE id = ? AND stock >= ?", p, 3, &changed)) {
		rollback(k);
		return BUY_ERROR;
	}
	if (changed == 0) {
		rollback(k);
		return BUY_SOLD_OUT;
	}
	if (insert_order(k, product, 0) || ex(k, "COMMIT")) {
		rollback(k);
		return BUY_ERROR;
	}
	return BUY_OK;
}

typedef struct once_ctx {
	worker *k;
	int product;
	bool sold_out;
} once_ctx;

/* inside lks_once_run's transaction: the atomic purchase and its order */
static int charge_once(lks_conn *c, lks_once_ctx *ctx, void *arg)
{
	once_ctx *o = arg;
	worker *k = o->k;
	lks_value p[3] = {LKS_INT(k->w->qty), LKS_INT(o->product), LKS_INT(k->w->qty)};
	int64_t changed = 0;
	int rc = lks_conn_query_int(c, SQL(k->backend,
	                                   "UPDATE inv_products SET stock = stock - $1 WHERE id = $2 AND stock >= $3",
	                                   "UPDATE inv_products SET stock = stock - ? WHERE id = ? AND stock >= ?"),
	                            p, 3, &changed);
	if (rc)
		return rc;
	if (changed == 0) {
		o->sold_out = true;
		return LKS_NOT_FOUND; /* rolled back, not recorded: a later delivery tries again */
	}
	if ((rc = insert_order(k, o->product, lks_once_fence(ctx))) && rc != LKS_NOT_FOUND)
		return rc;
	return lks_once_set_result(ctx, 201, "charged", 7);
}

/* atomic, with the order's request id processed once: a second delivery
 * (concurrent or later) gets the first one's result and charges nothing */
static int buy_once(worker *k, int product)
{
	char scope[64];
	lks_once_options o = LKS_ONCE_OPTIONS_INIT;
	lks_once_result r = {0};
	once_ctx ctx = {.k = k, .product = product};
	int rc;
	k->attempts++;
	snprintf(scope, sizeof scope, "inventory-%s", k->run_id);
	o.table = "inv_once";
	o.wait_ms = k->w->lease_wait_ms; /* a concurrent delivery waits for the first */
	rc = lks_once_run(k->c, scope, k->request, &o, charge_once, &ctx, &r);
	bool replayed = r.replayed;
	lks_once_result_clear(&r);
	if (rc == LKS_OK)
		return replayed ? BUY_REPLAYED : BUY_OK;
	if (ctx.sold_out && rc == LKS_NOT_FOUND)
		return BUY_SOLD_OUT;
	if (rc == LKS_TIMEOUT || rc == LKS_BUSY) {
		k->timeouts++;
		return BUY_GAVE_UP;
	}
	worker_error(k, rc);
	return BUY_ERROR;
}

int strategy_buy(worker *k, int product)
{
	switch (k->s) {
	case S_NAIVE: return buy_naive(k, product);
	case S_OPTIMISTIC: return buy_optimistic(k, product);
	case S_PESSIMISTIC:
	case S_PESSIMISTIC_ALL: return buy_leased(k, product, true); /* one name: the same */
	case S_PESSIMISTIC_UNFENCED: return buy_leased(k, product, false);
	case S_SELECT_FOR_UPDATE: return buy_select_for_update(k, product);
	case S_ATOMIC: return buy_atomic(k, product);
	case S_ONCE: return buy_once(k, product);
	default: return BUY_ERROR;
	}
}

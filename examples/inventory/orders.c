/* Multi-item orders (--items K): each order buys qty units of K distinct
 * products, all or nothing, one order line per product. Each strategy as
 * a service would write it for a basket:
 *   naive                read every row, think, write them back;
 *   optimistic           CAS every row in one transaction, retried;
 *   pessimistic          per-product leases one by one in sorted order;
 *   pessimistic-all      every lease at once (lks_lease_acquire_all);
 *   pessimistic-unfenced sorted leases, a plain transaction;
 *   select-for-update    the rows locked in key order;
 *   atomic, once         one conditional UPDATE per row in one transaction.
 * A deadlock or serialization failure rolls back and is retried, counted. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "worker.h"

#define ORDER_PG "INSERT INTO inv_orders (product_id, qty, strategy, worker, fence, request)" \
                 " VALUES ($1, $2, $3, $4, $5, $6)"
#define ORDER_MY "INSERT INTO inv_orders (product_id, qty, strategy, worker, fence, request)" \
                 " VALUES (?, ?, ?, ?, ?, ?)"
#define TAKE_PG "UPDATE inv_products SET stock = stock - $1 WHERE id = $2 AND stock >= $3"
#define TAKE_MY "UPDATE inv_products SET stock = stock - ? WHERE id = ? AND stock >= ?"
#define RETRIES_MAX 100

typedef struct order {
	worker *k;
	int p[INV_MAX_ITEMS]; /* sorted by id */
	int n;
	int64_t stock[INV_MAX_ITEMS];
	int64_t fence;
} order;

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int qi(lks_conn *c, worker *k, const char *pg, const char *my, const lks_value *p, size_t n,
              int64_t *out)
{
	int64_t dummy;
	return lks_conn_query_int(c, SQL(k->backend, pg, my), p, n, out ? out : &dummy);
}

static int lines(lks_conn *c, order *o)
{
	worker *k = o->k;
	int rc = LKS_OK;
	for (int i = 0; i < o->n && rc == LKS_OK; i++) {
		lks_value p[6] = {LKS_INT(o->p[i]), LKS_INT(k->w->qty), LKS_TEXT(strategy_names[k->s]),
		                  LKS_INT(k->id), o->fence ? LKS_INT(o->fence) : LKS_NULLV, LKS_TEXT(k->request)};
		rc = qi(c, k, ORDER_PG, ORDER_MY, p, 6, NULL);
		if (rc == LKS_NOT_FOUND)
			rc = LKS_OK;
	}
	return rc;
}

static void think(worker *k)
{
	if (k->w->think_ms > 0)
		usleep((useconds_t)k->w->think_ms * 1000);
}

/* every stock, read (under whatever the caller holds); short: that product */
static int read_all(lks_conn *c, order *o, const char *suffix, int *short_of)
{
	worker *k = o->k;
	char pg[128], my[128];
	snprintf(pg, sizeof pg, "SELECT stock FROM inv_products WHERE id = $1%s", suffix);
	snprintf(my, sizeof my, "SELECT stock FROM inv_products WHERE id = ?%s", suffix);
	*short_of = 0;
	for (int i = 0; i < o->n; i++) {
		lks_value p = LKS_INT(o->p[i]);
		int rc = qi(c, k, pg, my, &p, 1, &o->stock[i]);
		if (rc)
			return rc;
		if (o->stock[i] < k->w->qty && !*short_of)
			*short_of = o->p[i];
	}
	return LKS_OK;
}

/* write back what was read minus qty, and the lines */
static int write_all(lks_conn *c, order *o)
{
	worker *k = o->k;
	int rc = LKS_OK;
	for (int i = 0; i < o->n && rc == LKS_OK; i++) {
		lks_value p[2] = {LKS_INT(o->stock[i] - k->w->qty), LKS_INT(o->p[i])};
		rc = qi(c, k, "UPDATE inv_products SET stock = $1 WHERE id = $2",
		        "UPDATE inv_products SET stock = ? WHERE id = ?", p, 2, NULL);
	}
	return rc ? rc : lines(c, o);
}

/* one conditional UPDATE per row; short: that product */
static int take_all(lks_conn *c, order *o, int *short_of)
{
	worker *k = o->k;
	*short_of = 0;
	for (int i = 0; i < o->n; i++) {
		lks_value p[3] = {LKS_INT(k->w->qty), LKS_INT(o->p[i]), LKS_INT(k->w->qty)};
		int64_t changed = 0;
		int rc = qi(c, k, TAKE_PG, TAKE_MY, p, 3, &changed);
		if (rc)
			return rc;
		if (changed == 0) {
			*short_of = o->p[i];
			return LKS_OK;
		}
	}
	return lines(c, o);
}

static void end_tx(lks_conn *c, bool commit, int *rc)
{
	if (commit && *rc == LKS_OK)
		*rc = lks_conn_exec(c, "COMMIT");
	else
		lks_conn_exec(c, "ROLLBACK"); /* best effort */
}

/* The outcome of one try: retry (deadlock), sold out, done, or an error. */
static int settle(worker *k, int rc, int short_of, bool *again)
{
	*again = false;
	if (rc == LKS_ETRANSIENT) { /* a deadlock or serialization failure: nothing written */
		k->deadlocks++;
		k->retries++;
		*again = true;
		return BUY_ERROR;
	}
	if (rc) {
		worker_error(k, rc);
		return BUY_ERROR;
	}
	if (short_of) {
		k->sold_out_product = short_of;
		return BUY_SOLD_OUT;
	}
	return BUY_OK;
}

static int buy_naive(lks_conn *c, order *o, bool *again)
{
	int short_of, rc = read_all(c, o, "", &short_of);
	if (rc == LKS_OK && !short_of) {
		think(o->k);
		if ((rc = lks_conn_exec(c, "BEGIN")) == LKS_OK) {
			rc = write_all(c, o);
			end_tx(c, true, &rc);
		}
	}
	return settle(o->k, rc, short_of, again);
}

static int buy_for_update(lks_conn *c, order *o, bool *again)
{
	int short_of = 0, rc = lks_conn_exec(c, "BEGIN");
	int64_t t0 = worker_now_us();
	if (rc == LKS_OK && (rc = read_all(c, o, " FOR UPDATE", &short_of)) == LKS_OK) {
		int64_t waited = worker_now_us() - t0;
		worker_wait(o->k, waited, waited > 1000 * o->n);
		if (!short_of) {
			think(o->k);
			rc = write_all(c, o);
		}
	}
	end_tx(c, !short_of, &rc);
	return settle(o->k, rc, short_of, again);
}

static int buy_atomic(lks_conn *c, order *o, bool *again)
{
	int short_of = 0, rc = lks_conn_exec(c, "BEGIN");
	if (rc == LKS_OK)
		rc = take_all(c, o, &short_of);
	end_tx(c, !short_of, &rc);
	return settle(o->k, rc, short_of, again);
}

/* one optimistic attempt: read every row and version, think, CAS them all
 * in one transaction (a conflict rolls back and lks_retry tries again) */
static int optimistic_attempt(lks_conn *c, int attempt, void *arg)
{
	order *o = arg;
	worker *k = o->k;
	int64_t version[INV_MAX_ITEMS];
	const char *cols[] = {"stock"};
	int rc;
	(void)attempt;
	k->attempts++;
	for (int i = 0; i < o->n; i++) {
		lks_row_ref row = {"inv_products", "id", "version", LKS_INT(o->p[i])};
		const char *const *texts;
		if ((rc = lks_cas_read(c, &row, cols, 1, &version[i], &texts)))
			return rc;
		o->stock[i] = strtoll(texts[0], NULL, 10);
		if (o->stock[i] < k->w->qty) {
			k->sold_out_product = o->p[i];
			return BUY_SOLD_OUT;
		}
	}
	think(k);
	if ((rc = lks_conn_exec(c, "BEGIN")))
		return rc;
	for (int i = 0; i < o->n && rc == LKS_OK; i++) {
		lks_row_ref row = {"inv_products", "id", "version", LKS_INT(o->p[i])};
		lks_value nv = LKS_INT(o->stock[i] - k->w->qty);
		rc = lks_cas_update(c, &row, version[i], cols, &nv, 1, NULL);
	}
	if (rc == LKS_OK)
		rc = lines(c, o);
	if (rc == LKS_ETRANSIENT)
		k->deadlocks++;
	end_tx(c, true, &rc);
	return rc;
}

static int buy_optimistic(lks_conn *c, order *o)
{
	worker *k = o->k;
	lks_retry_options ro = LKS_RETRY_OPTIONS_INIT;
	lks_retry_stats st;
	int rc;
	ro.max_attempts = k->w->max_attempts;
	ro.timeout_ms = 30000;
	ro.seed = k->rng | 1;
	k->attempts--; /* counted per attempt inside */
	rc = lks_retry(c, &ro, optimistic_attempt, o, &st);
	k->retries += st.attempts - 1;
	if (rc == BUY_SOLD_OUT || rc == LKS_OK)
		return rc;
	if (rc == LKS_CONFLICT || rc == LKS_TIMEOUT) {
		k->timeouts++;
		return BUY_GAVE_UP;
	}
	worker_error(k, rc);
	return BUY_ERROR;
}

static int leased_body(lks_conn *c, lks_lease *const *leases, size_t n, void *arg)
{
	order *o = arg;
	(void)leases;
	(void)n;
	return write_all(c, o);
}

/* leases on every product (one by one in sorted order, or all at once),
 * read, think, write them all in one transaction, fenced or not */
static int buy_leased(lks_conn *c, order *o, bool all_at_once, bool fenced, bool *again)
{
	worker *k = o->k;
	const char *names[INV_MAX_ITEMS];
	char store[INV_MAX_ITEMS][96];
	lks_lease *l[INV_MAX_ITEMS] = {NULL};
	lks_lease_acquire_options ao = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_acquire_stats st;
	int short_of = 0, rc = LKS_OK, taken = 0;
	int64_t waited = 0, t0 = worker_now_us();
	ao.stats = &st;
	ao.base_delay_us = 500;
	ao.max_delay_us = 20000;
	for (int i = 0; i < o->n; i++) {
		snprintf(store[i], sizeof store[i], "inv:%s:%s:%d", k->run_id, strategy_names[k->s], o->p[i]);
		names[i] = store[i];
	}
	if (all_at_once) {
		rc = lks_lease_acquire_all(l, c, names, (size_t)o->n, k->w->lease_ttl_ms, k->w->lease_wait_ms,
		                           &ao);
		taken = rc == LKS_OK ? o->n : 0;
	} else {
		/* one deadline for the whole order, as the set has */
		for (int i = 0; i < o->n && rc == LKS_OK; i++) {
			int64_t left = k->w->lease_wait_ms - (worker_now_us() - t0) / 1000;
			rc = lks_lease_acquire(&l[i], c, names[i], k->w->lease_ttl_ms, left > 0 ? left : 0, &ao);
			taken += rc == LKS_OK;
		}
	}
	waited = worker_now_us() - t0;
	worker_wait(k, waited, waited > 1000 * o->n);
	if (rc == LKS_TIMEOUT || rc == LKS_BUSY) {
		for (int i = 0; i < taken; i++) {
			lks_lease_release(c, l[i]);
			lks_lease_free(l[i]);
		}
		k->timeouts++;
		return BUY_GAVE_UP;
	}
	if (rc == LKS_OK && (rc = read_all(c, o, "", &short_of)) == LKS_OK && !short_of) {
		think(k);
		if (fenced) {
			rc = lks_lease_fenced_write_all(c, l, (size_t)o->n, leased_body, o);
		} else if ((rc = lks_conn_exec(c, "BEGIN")) == LKS_OK) {
			rc = write_all(c, o);
			end_tx(c, true, &rc);
		}
	}
	for (int i = 0; i < taken; i++) {
		lks_lease_release(c, l[i]);
		lks_lease_free(l[i]);
	}
	if (rc == LKS_LOST) {
		k->fenced_rejections++;
		k->retries++;
		*again = true;
		return BUY_ERROR;
	}
	return settle(k, rc, short_of, again);
}

typedef struct once_order {
	order *o;
	int short_of;
} once_order;

static int charge_once(lks_conn *c, lks_once_ctx *ctx, void *arg)
{
	once_order *x = arg;
	int rc;
	x->o->fence = lks_once_fence(ctx);
	if ((rc = take_all(c, x->o, &x->short_of)))
		return rc;
	if (x->short_of)
		return LKS_NOT_FOUND; /* rolled back, not recorded */
	return lks_once_set_result(ctx, 201, "charged", 7);
}

static int buy_once(lks_conn *c, order *o, bool *again)
{
	worker *k = o->k;
	char scope[64];
	lks_once_options opts = LKS_ONCE_OPTIONS_INIT;
	lks_once_result r = {0};
	once_order x = {o, 0};
	int rc;
	snprintf(scope, sizeof scope, "inventory-%s", k->run_id);
	opts.table = "inv_once";
	opts.wait_ms = k->w->lease_wait_ms;
	rc = lks_once_run(c, scope, k->request, &opts, charge_once, &x, &r);
	lks_once_result_clear(&r);
	if (x.short_of && rc == LKS_NOT_FOUND)
		return settle(k, LKS_OK, x.short_of, again);
	if (rc == LKS_TIMEOUT || rc == LKS_BUSY) {
		k->timeouts++;
		return BUY_GAVE_UP;
	}
	return settle(k, rc, 0, again);
}

int strategy_buy_order(worker *k, const int *products, int n)
{
	order o = {.k = k, .n = n};
	bool again = true;
	int got = BUY_ERROR;
	memcpy(o.p, products, sizeof *products * (size_t)n);
	qsort(o.p, (size_t)n, sizeof *o.p, cmp_int); /* key order: no deadlock among ourselves */
	k->sold_out_product = 0;
	for (int tries = 0; again && tries < RETRIES_MAX; tries++) {
		if (k->s != S_OPTIMISTIC)
			k->attempts++;
		switch (k->s) {
		case S_NAIVE: got = buy_naive(k->c, &o, &again); break;
		case S_OPTIMISTIC: got = buy_optimistic(k->c, &o); again = false; break;
		case S_PESSIMISTIC: got = buy_leased(k->c, &o, false, true, &again); break;
		case S_PESSIMISTIC_ALL: got = buy_leased(k->c, &o, true, true, &again); break;
		case S_PESSIMISTIC_UNFENCED: got = buy_leased(k->c, &o, false, false, &again); break;
		case S_SELECT_FOR_UPDATE: got = buy_for_update(k->c, &o, &again); break;
		case S_ATOMIC: got = buy_atomic(k->c, &o, &again); break;
		case S_ONCE: got = buy_once(k->c, &o, &again); break;
		default: again = false; break;
		}
	}
	if (again) { /* retried RETRIES_MAX times */
		k->timeouts++;
		return BUY_GAVE_UP;
	}
	return got;
}

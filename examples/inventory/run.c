/* Runs one strategy on one database: reset, start the buyers behind a
 * barrier, show progress, stop when sold out (or at the duration), check. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "worker.h"

/* Orders to be delivered again while their first attempt runs: another
 * buyer takes one before placing an order of its own. */
#define PENDING_MAX 64
typedef struct pending {
	pthread_mutex_t mu;
	int n;
	struct {
		char request[48];
		int product;
	} q[PENDING_MAX];
} pending;

typedef struct shared {
	const workload *w;
	pending dup;
	atomic_int *sold_out;      /* per product */
	atomic_int products_left;
	atomic_bool stop;
	atomic_llong units;
	atomic_int finished;
	pthread_barrier_t start;
	atomic_llong t_end;
} shared;

typedef struct thread_arg {
	worker k;
	shared *sh;
	const char *url;
} thread_arg;

int64_t worker_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void samples_add(samples *s, double v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		double *nv = realloc(s->v, cap * sizeof *nv);
		if (!nv)
			return; /* a lost sample, not a lost run */
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = v;
}

void worker_error(worker *k, int rc)
{
	k->errors++;
	if (!k->first_error[0])
		snprintf(k->first_error, sizeof k->first_error, "%s: %s", lks_strerror(rc),
		         lks_conn_errmsg(k->c));
	if (rc == LKS_ECONN || rc == LKS_EUNKNOWN)
		k->dead = true;
}

void worker_wait(worker *k, int64_t waited_us, bool waited)
{
	if (!waited)
		return;
	k->lock_waits++;
	samples_add(&k->wait_ms, waited_us / 1000.0);
}

double worker_random(worker *k)
{
	/* xorshift64*: reproducible per seed and worker */
	k->rng ^= k->rng >> 12;
	k->rng ^= k->rng << 25;
	k->rng ^= k->rng >> 27;
	return (double)((k->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

static int pick_product(worker *k, shared *sh)
{
	const workload *w = sh->w;
	int p = worker_random(k) < w->skew ? 1 : 1 + (int)(worker_random(k) * w->products);
	if (p > w->products)
		p = w->products;
	/* a sold-out pick moves on to the next product still on sale */
	for (int i = 0; i < w->products; i++) {
		int cand = 1 + (p - 1 + i) % w->products;
		if (!atomic_load(&sh->sold_out[cand - 1]))
			return cand;
	}
	return 0;
}

static bool pending_put(pending *p, const char *request, int product)
{
	bool ok;
	pthread_mutex_lock(&p->mu);
	if ((ok = p->n < PENDING_MAX)) {
		snprintf(p->q[p->n].request, sizeof p->q[0].request, "%s", request);
		p->q[p->n++].product = product;
	}
	pthread_mutex_unlock(&p->mu);
	return ok;
}

static bool pending_take(pending *p, char *request, size_t n, int *product)
{
	bool ok;
	pthread_mutex_lock(&p->mu);
	if ((ok = p->n > 0)) {
		p->n--;
		snprintf(request, n, "%s", p->q[p->n].request);
		*product = p->q[p->n].product;
	}
	pthread_mutex_unlock(&p->mu);
	return ok;
}

/* k distinct products still on sale out of 1..hot (0: fewer are left) */
static int pick_order(worker *k, shared *sh, int *out)
{
	const workload *w = sh->w;
	int n = 0;
	for (int tries = 0; n < w->items && tries < 64 * w->hot; tries++) {
		int p = 1 + (int)(worker_random(k) * w->hot), dup = 0;
		if (p > w->hot)
			p = w->hot;
		for (int i = 0; i < n; i++)
			dup |= out[i] == p;
		if (!dup && !atomic_load(&sh->sold_out[p - 1]))
			out[n++] = p;
	}
	return n == w->items ? n : 0;
}

/* One multi-item order: all its products or none. */
static void deliver_order(worker *k, shared *sh, const int *products, int n, int64_t t0)
{
	int got = strategy_buy_order(k, products, n);
	if (got == BUY_OK) {
		k->purchases++;
		samples_add(&k->latency_ms, (worker_now_us() - t0) / 1000.0);
		atomic_fetch_add(&sh->units, (long long)sh->w->qty * n);
	} else if (got == BUY_SOLD_OUT && k->sold_out_product > 0 &&
	           atomic_exchange(&sh->sold_out[k->sold_out_product - 1], 1) == 0) {
		/* the run ends once no order of k products can be made */
		if (atomic_fetch_sub(&sh->products_left, 1) - 1 < sh->w->items)
			atomic_store(&sh->stop, true);
	}
}

/* One delivery of the buyer's current request. */
static int deliver(worker *k, shared *sh, int product, int64_t t0)
{
	int got = strategy_buy(k, product);
	switch (got) {
	case BUY_OK:
		k->purchases++;
		samples_add(&k->latency_ms, (worker_now_us() - t0) / 1000.0);
		atomic_fetch_add(&sh->units, sh->w->qty);
		break;
	case BUY_REPLAYED:
		k->replays++; /* answered from the record: nothing charged */
		break;
	case BUY_SOLD_OUT:
		if (atomic_exchange(&sh->sold_out[product - 1], 1) == 0 &&
		    atomic_fetch_sub(&sh->products_left, 1) == 1)
			atomic_store(&sh->stop, true);
		break;
	default:
		break;
	}
	return got;
}

static void *buyer(void *arg)
{
	thread_arg *t = arg;
	worker *k = &t->k;
	shared *sh = t->sh;
	int rc = lks_conn_open(&k->c, t->url);
	if (rc)
		worker_error(k, rc);
	pthread_barrier_wait(&sh->start);
	while (!k->dead && !atomic_load(&sh->stop)) {
		int product;
		int64_t t0;
		if (worker_now_us() >= atomic_load(&sh->t_end))
			break;
		/* another buyer's order, delivered again while it runs */
		if (sh->w->duplicates > 0 && pending_take(&sh->dup, k->request, sizeof k->request, &product)) {
			k->duplicates++;
			deliver(k, sh, product, worker_now_us());
			continue;
		}
		if (sh->w->items > 1) {
			int products[INV_MAX_ITEMS];
			int n = pick_order(k, sh, products);
			if (!n)
				break;
			snprintf(k->request, sizeof k->request, "w%d-%lld", k->id, (long long)++k->seq);
			deliver_order(k, sh, products, n, worker_now_us());
			continue;
		}
		if (!(product = pick_product(k, sh)))
			break;
		snprintf(k->request, sizeof k->request, "w%d-%lld", k->id, (long long)++k->seq);
		bool again = sh->w->duplicates > 0 && worker_random(k) < sh->w->duplicates;
		bool now = again && worker_random(k) < 0.5 && pending_put(&sh->dup, k->request, product);
		t0 = worker_now_us();
		int got = deliver(k, sh, product, t0);
		/* the client that timed out and sends it again after it completed */
		if (again && !now && got != BUY_ERROR) {
			k->duplicates++;
			deliver(k, sh, product, worker_now_us());
		}
	}
	k->finished_us = worker_now_us();
	lks_conn_close(k->c);
	k->c = NULL;
	atomic_fetch_add(&sh->finished, 1);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(const samples *s, double p)
{
	if (s->n == 0)
		return 0;
	size_t i = (size_t)ceil(p / 100.0 * (double)s->n);
	return s->v[i == 0 ? 0 : i - 1];
}

static void merge(samples *into, const samples *from)
{
	for (size_t i = 0; i < from->n; i++)
		samples_add(into, from->v[i]);
}

static void progress(const shared *sh, strategy s, lks_backend b, int64_t t0, bool final)
{
	double el = (worker_now_us() - t0) / 1e6;
	long long units = atomic_load(&sh->units);
	long long left = (long long)sh->w->stock * sh->w->products - units;
	fprintf(stderr, "\r%-20s %-10s %6.1fs %9.0f buys/s  sold %-8lld left %-8lld%s",
	        strategy_names[s], b == LKS_BACKEND_POSTGRESQL ? "postgresql" : "mysql", el,
	        el > 0 ? units / sh->w->qty / el : 0.0, units, left, final ? "\n" : "");
	fflush(stderr);
}

int run_strategy(const workload *w, const char *url, strategy s, result *r)
{
	lks_conn *admin = NULL;
	shared sh = {.w = w};
	thread_arg *ta;
	pthread_t *th;
	samples lat = {0}, waits = {0};
	char run_id[20];
	int64_t t0;
	int rc;
	bool show = !w->quiet && isatty(2);

	memset(r, 0, sizeof *r);
	r->s = s;
	r->workers = w->workers;
	r->products = w->products;
	if ((rc = lks_conn_open(&admin, url))) {
		char shown[1024];
		lks_url_redact(url, shown, sizeof shown);
		fprintf(stderr, "inventory: %s: %s\n", shown, lks_conn_errmsg(admin));
		lks_conn_close(admin);
		return INV_EXIT_USAGE;
	}
	r->backend = lks_conn_backend(admin);
	if (db_reset(admin, w)) {
		lks_conn_close(admin);
		return INV_EXIT_USAGE;
	}
	/* lease names unique to this run: leases from earlier runs never interfere */
	snprintf(run_id, sizeof run_id, "%lx%lx", (unsigned long)time(NULL), (unsigned long)getpid() ^ (unsigned long)s);
	sh.sold_out = calloc((size_t)w->products, sizeof *sh.sold_out);
	ta = calloc((size_t)w->workers, sizeof *ta);
	th = calloc((size_t)w->workers, sizeof *th);
	if (!sh.sold_out || !ta || !th) {
		fprintf(stderr, "inventory: out of memory\n");
		exit(INV_EXIT_USAGE);
	}
	/* multi-item orders only ever buy the hot products */
	atomic_store(&sh.products_left, w->items > 1 ? w->hot : w->products);
	pthread_mutex_init(&sh.dup.mu, NULL);
	pthread_barrier_init(&sh.start, NULL, (unsigned)w->workers + 1);
	for (int i = 0; i < w->workers; i++) {
		ta[i].sh = &sh;
		ta[i].url = url;
		ta[i].k = (worker){.w = w, .s = s, .backend = r->backend, .id = i + 1, .run_id = run_id,
		                   .rng = (w->seed + 1) * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 7919 + 1};
		pthread_create(&th[i], NULL, buyer, &ta[i]);
	}
	/* the clock starts when every buyer is connected */
	atomic_store(&sh.t_end, INT64_MAX);
	pthread_barrier_wait(&sh.start);
	t0 = worker_now_us();
	atomic_store(&sh.t_end, t0 + (int64_t)((w->duration_s > 0 ? w->duration_s : w->max_duration_s) * 1e6));
	/* progress until every buyer is done */
	for (int done = 0; !done;) {
		usleep(50 * 1000);
		done = atomic_load(&sh.finished) == w->workers;
		if (show)
			progress(&sh, s, r->backend, t0, done);
	}
	for (int i = 0; i < w->workers; i++) {
		pthread_join(th[i], NULL);
		/* the run ends when the last buyer stops, not when we notice */
		if ((ta[i].k.finished_us - t0) / 1e6 > r->elapsed_s)
			r->elapsed_s = (ta[i].k.finished_us - t0) / 1e6;
	}
	pthread_barrier_destroy(&sh.start);
	pthread_mutex_destroy(&sh.dup.mu);
	for (int i = 0; i < w->workers; i++) {
		worker *k = &ta[i].k;
		r->purchases += k->purchases;
		r->attempts += k->attempts;
		r->retries += k->retries;
		r->lock_waits += k->lock_waits;
		r->timeouts += k->timeouts;
		r->errors += k->errors;
		r->fenced_rejections += k->fenced_rejections;
		r->pauses += k->pauses;
		r->crashes += k->crashes;
		r->deadlocks += k->deadlocks;
		r->duplicates += k->duplicates;
		r->replays += k->replays;
		if (!r->first_error[0] && k->first_error[0])
			snprintf(r->first_error, sizeof r->first_error, "%s", k->first_error);
		merge(&lat, &k->latency_ms);
		merge(&waits, &k->wait_ms);
		free(k->latency_ms.v);
		free(k->wait_ms.v);
	}
	if (lat.n) /* qsort(NULL, 0) is undefined */
		qsort(lat.v, lat.n, sizeof *lat.v, cmp_double);
	if (waits.n)
		qsort(waits.v, waits.n, sizeof *waits.v, cmp_double);
	r->p50 = pct(&lat, 50);
	r->p95 = pct(&lat, 95);
	r->p99 = pct(&lat, 99);
	r->max_ms = lat.n ? lat.v[lat.n - 1] : 0;
	r->wait_p50 = pct(&waits, 50);
	r->wait_p99 = pct(&waits, 99);
	free(lat.v);
	free(waits.v);
	free(ta);
	free(th);
	free(sh.sold_out);
	rc = db_check(admin, w, r);
	r->throughput = r->elapsed_s > 0 ? r->orders / r->elapsed_s : 0;
	lks_conn_close(admin);
	return rc ? INV_EXIT_USAGE : 0;
}

/* lockstock's event hook as Prometheus metrics: counters and histograms in
 * the text exposition format, written to a file for node_exporter's
 * textfile collector (write to a temporary name, then rename). A short
 * workload produces them: 4 threads contending for one lease and CAS-ing a
 * counter. Usage: prometheus URL OUT.prom [SECONDS] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lockstock.h>

/* ---- the metrics: what a hook turns events into ------------------------ */

static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};
#define NB (sizeof buckets / sizeof *buckets)

typedef struct histogram {
	unsigned long count[NB + 1]; /* the last: +Inf */
	double sum;
	unsigned long n;
} histogram;

static struct metrics {
	pthread_mutex_t mu;
	unsigned long acquired, busy, timed_out, canceled, lost, released;
	unsigned long applied, conflict, not_found, retries, transient;
	histogram acquire_wait, held, cas;
} m = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void observe(histogram *h, double seconds)
{
	size_t i = 0;
	while (i < NB && seconds > buckets[i])
		i++;
	h->count[i]++;
	h->sum += seconds;
	h->n++;
}

static void on_event(const lks_event *ev, void *arg)
{
	double s = (double)ev->duration_us / 1e6;
	(void)arg;
	pthread_mutex_lock(&m.mu);
	switch (ev->kind) {
	case LKS_EVENT_ACQUIRED: m.acquired++; observe(&m.acquire_wait, s); break;
	case LKS_EVENT_BUSY: m.busy++; break;
	case LKS_EVENT_TIMED_OUT: m.timed_out++; observe(&m.acquire_wait, s); break;
	case LKS_EVENT_CANCELED: m.canceled++; break;
	case LKS_EVENT_LOST: m.lost++; break;
	case LKS_EVENT_RELEASED: m.released++; observe(&m.held, s); break;
	case LKS_EVENT_CAS_APPLIED: m.applied++; observe(&m.cas, s); break;
	case LKS_EVENT_CAS_CONFLICT: m.conflict++; observe(&m.cas, s); break;
	case LKS_EVENT_CAS_NOT_FOUND: m.not_found++; observe(&m.cas, s); break;
	case LKS_EVENT_RETRY: m.retries++; break;
	case LKS_EVENT_TRANSIENT: m.transient++; break;
	default: break;
	}
	pthread_mutex_unlock(&m.mu);
}

static void put_histogram(FILE *f, const char *name, const char *help, const histogram *h)
{
	unsigned long cum = 0;
	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; i < NB; i++) {
		cum += h->count[i];
		fprintf(f, "%s_bucket{le=\"%g\"} %lu\n", name, buckets[i], cum);
	}
	fprintf(f, "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.6f\n%s_count %lu\n", name, h->n, name, h->sum,
	        name, h->n);
}

static int write_exposition(const char *path)
{
	char tmp[4096];
	FILE *f;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if (!(f = fopen(tmp, "w")))
		return -1;
	pthread_mutex_lock(&m.mu);
	fprintf(f, "# HELP lockstock_acquire_total Lease acquire calls by outcome.\n"
	           "# TYPE lockstock_acquire_total counter\n"
	           "lockstock_acquire_total{outcome=\"acquired\"} %lu\n"
	           "lockstock_acquire_total{outcome=\"busy\"} %lu\n"
	           "lockstock_acquire_total{outcome=\"timeout\"} %lu\n"
	           "lockstock_acquire_total{outcome=\"canceled\"} %lu\n",
	        m.acquired, m.busy, m.timed_out, m.canceled);
	fprintf(f, "# HELP lockstock_lease_lost_total Leases found lost (renew, release, auto-renew).\n"
	           "# TYPE lockstock_lease_lost_total counter\nlockstock_lease_lost_total %lu\n",
	        m.lost);
	fprintf(f, "# HELP lockstock_cas_total Compare-and-swap updates by outcome.\n"
	           "# TYPE lockstock_cas_total counter\n"
	           "lockstock_cas_total{outcome=\"applied\"} %lu\n"
	           "lockstock_cas_total{outcome=\"conflict\"} %lu\n"
	           "lockstock_cas_total{outcome=\"not_found\"} %lu\n",
	        m.applied, m.conflict, m.not_found);
	fprintf(f, "# HELP lockstock_retry_total Retried attempts (conflict or transient).\n"
	           "# TYPE lockstock_retry_total counter\nlockstock_retry_total %lu\n"
	           "# HELP lockstock_transient_total Serialization failures and deadlocks.\n"
	           "# TYPE lockstock_transient_total counter\nlockstock_transient_total %lu\n",
	        m.retries, m.transient);
	put_histogram(f, "lockstock_acquire_wait_seconds", "Time from acquire to grant (or timeout).",
	              &m.acquire_wait);
	put_histogram(f, "lockstock_lease_held_seconds", "Time a lease was held until release.", &m.held);
	put_histogram(f, "lockstock_cas_seconds", "Time of one compare-and-swap statement.", &m.cas);
	pthread_mutex_unlock(&m.mu);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

/* ---- a workload to observe -------------------------------------------- */

static const char *url;
static atomic_int stop;

static int bump(lks_conn *c, int attempt, void *arg)
{
	lks_row_ref row = {"metrics_counter", "id", "version", LKS_INT(1)};
	const char *cols[] = {"n"};
	const char *const *texts;
	int64_t v, nv;
	int rc;
	(void)attempt;
	(void)arg;
	if ((rc = lks_cas_read(c, &row, cols, 1, &v, &texts)))
		return rc;
	lks_value n = LKS_INT(atoll(texts[0]) + 1);
	return lks_cas_update(c, &row, v, cols, &n, 1, &nv);
}

static void *worker(void *arg)
{
	lks_conn *c = NULL;
	(void)arg;
	if (lks_conn_open(&c, url) != LKS_OK)
		return NULL;
	lks_conn_set_event_hook(c, on_event, NULL);
	while (!atomic_load(&stop)) {
		lks_lease *l = NULL;
		if (lks_lease_acquire(&l, c, "metrics-demo", 2000, 200, NULL) == LKS_OK) {
			usleep(2000);
			lks_lease_release(c, l);
			lks_lease_free(l);
		}
		lks_retry(c, NULL, bump, NULL, NULL);
	}
	lks_conn_close(c);
	return NULL;
}

int main(int argc, char **argv)
{
	lks_conn *c = NULL;
	pthread_t th[4];
	if (argc < 3) {
		fprintf(stderr, "usage: prometheus URL OUT.prom [SECONDS]\n");
		return 64;
	}
	url = argv[1];
	lks_library_init();
	if (lks_conn_open(&c, url) || lks_lease_install(c)) {
		fprintf(stderr, "prometheus: %s\n", lks_conn_errmsg(c));
		return 69;
	}
	lks_conn_exec(c, "DROP TABLE IF EXISTS metrics_counter");
	lks_conn_exec(c, "CREATE TABLE metrics_counter (id int PRIMARY KEY, n bigint NOT NULL, version bigint NOT NULL)");
	lks_conn_exec(c, "INSERT INTO metrics_counter VALUES (1, 0, 0)");
	lks_conn_close(c);
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	sleep(argc > 3 ? (unsigned)atoi(argv[3]) : 2);
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	if (write_exposition(argv[2])) {
		perror("prometheus: writing the metrics");
		return 70;
	}
	printf("wrote %s\n", argv[2]);
	return 0;
}

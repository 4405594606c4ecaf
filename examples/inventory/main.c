/* inventory: reproduce overselling and compare the strategies that prevent
 * it, on PostgreSQL and MySQL/MariaDB. See --help. */
#include <stdlib.h>
#include <string.h>
#include "inventory.h"

static int check_urls(const workload *w)
{
	/* fail before touching any data when a database is unreachable */
	for (int i = 0; i < w->nurls; i++) {
		lks_conn *c = NULL;
		int rc = lks_conn_open(&c, w->urls[i]);
		if (rc) {
			char shown[1024];
			lks_url_redact(w->urls[i], shown, sizeof shown);
			fprintf(stderr, "inventory: cannot use %s: %s\n", shown, lks_conn_errmsg(c));
		}
		lks_conn_close(c);
		if (rc)
			return INV_EXIT_USAGE;
	}
	return 0;
}

static int run_all(const workload *w, result **out, int *n)
{
	int cap = 0, rc = 0;
	result *rs = NULL;
	static const int sweep_workers[] = {1, 2, 4, 8, 16, 32};
	static const int sweep_products[] = {1, 8};
	int nw = w->sweep ? 6 : 1, np = w->sweep ? 2 : 1, runs = 0, run = 0;
	for (int s = 0; s < S_COUNT; s++)
		runs += w->strategies[s] ? nw * np * w->nurls : 0;
	for (int pi = 0; pi < np; pi++)
		for (int wi = 0; wi < nw; wi++) {
			workload cur = *w;
			if (w->sweep) {
				cur.workers = sweep_workers[wi];
				cur.products = sweep_products[pi];
			}
			for (int u = 0; u < w->nurls; u++)
				for (int s = 0; s < S_COUNT; s++) {
					if (!w->strategies[s])
						continue;
					if (*n == cap) {
						cap = cap ? cap * 2 : 16;
						rs = realloc(rs, (size_t)cap * sizeof *rs);
						if (!rs) {
							fprintf(stderr, "inventory: out of memory\n");
							exit(INV_EXIT_USAGE);
						}
					}
					/* a sweep takes minutes: say where it is */
					if (w->sweep)
						fprintf(stderr, "inventory: sweep run %d of %d: %s, %d worker%s, %d"
						        " product%s, %s\n", ++run, runs, strategy_names[s],
						        cur.workers, cur.workers == 1 ? "" : "s", cur.products,
						        cur.products == 1 ? "" : "s",
						        strncmp(w->urls[u], "mysql", 5) ? "postgresql" : "mysql");
					if ((rc = run_strategy(&cur, w->urls[u], (strategy)s, &rs[*n])))
						goto done;
					(*n)++;
				}
		}
done:
	*out = rs;
	return rc;
}

int main(int argc, char **argv)
{
	workload w;
	result *rs = NULL;
	int n = 0, rc, exit_code = INV_EXIT_OK;
	rc = options_parse(argc, argv, &w);
	if (rc < 0)
		return 0; /* --help */
	if (rc)
		return rc;
	lks_library_init();
	if ((rc = check_urls(&w)))
		return rc;
	rc = run_all(&w, &rs, &n);
	report_table(stdout, rs, n);
	if (rc) {
		free(rs);
		return rc;
	}
	for (int i = 0; i < n; i++) {
		const result *r = &rs[i];
		if (strategy_is_safe(r->s) && !r->invariants_ok) {
			fprintf(stderr,
			        "inventory: INVARIANT BROKEN: %s on %s: sold %lld of %lld, final stock %lld, "
			        "oversold %lld, lost updates %lld\n",
			        strategy_names[r->s], r->backend == LKS_BACKEND_POSTGRESQL ? "postgresql" : "mysql",
			        (long long)r->units_sold, (long long)r->initial_stock, (long long)r->final_stock,
			        (long long)r->oversold, (long long)r->lost_updates);
			exit_code = INV_EXIT_INVARIANT;
		}
		if (!strategy_is_safe(r->s) && r->oversold > 0)
			printf("%s on %s oversold %lld units (expected: it is unsafe by design)\n",
			       strategy_names[r->s], r->backend == LKS_BACKEND_POSTGRESQL ? "postgresql" : "mysql",
			       (long long)r->oversold);
	}
	if (w.json && report_json(w.json, &w, rs, n))
		exit_code = INV_EXIT_USAGE;
	if (w.csv && report_csv(w.csv, rs, n))
		exit_code = INV_EXIT_USAGE;
	if (w.sweep && report_chart(w.chart, rs, n) == 0)
		fprintf(stderr, "inventory: chart written to %s\n", w.chart);
	free(rs);
	return exit_code;
}

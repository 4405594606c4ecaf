/* Results as a terminal table, JSON, CSV, and (for sweeps) an SVG chart. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "inventory.h"

static const char *db_name(lks_backend b)
{
	return b == LKS_BACKEND_POSTGRESQL ? "postgresql" : "mysql";
}

void report_table(FILE *out, const result *rs, int n)
{
	fprintf(out, "%-20s %-10s %3s %6s %6s %6s %6s %8s %6s %3s %9s %7s %7s %7s %8s %8s %7s %6s %8s %8s %5s %5s %7s\n",
	        "strategy", "db", "wrk", "prod", "orders", "sold", "final", "oversold", "lost", "ok",
	        "buys/s", "p50ms", "p95ms", "p99ms", "max_ms", "attempts", "retries", "waits",
	        "wait_p50", "wait_p99", "tmo", "err", "charged2x");
	for (int i = 0; i < n; i++) {
		const result *r = &rs[i];
		fprintf(out,
		        "%-20s %-10s %3d %6d %6lld %6lld %6lld %8lld %6lld %3s %9.1f %7.2f %7.2f %7.2f %8.2f %8lld %7lld %6lld %8.2f %8.2f %5lld %5lld %9lld\n",
		        strategy_names[r->s], db_name(r->backend), r->workers, r->products,
		        (long long)r->orders, (long long)r->units_sold, (long long)r->final_stock,
		        (long long)r->oversold, (long long)r->lost_updates, r->invariants_ok ? "yes" : "NO",
		        r->throughput, r->p50, r->p95, r->p99, r->max_ms, (long long)r->attempts,
		        (long long)r->retries, (long long)r->lock_waits, r->wait_p50, r->wait_p99,
		        (long long)r->timeouts, (long long)r->errors, (long long)r->charged_twice);
	}
	for (int i = 0; i < n; i++) {
		const result *r = &rs[i];
		if (r->duplicates)
			fprintf(out, "%-20s %-10s duplicates: %lld orders delivered again, %lld answered from"
			             " the record, %lld orders charged twice\n",
			        strategy_names[r->s], db_name(r->backend), (long long)r->duplicates,
			        (long long)r->replays, (long long)r->charged_twice);
		if (r->pauses || r->crashes || r->fenced_rejections)
			fprintf(out, "%-20s %-10s faults: %lld paused holders, %lld crashed holders, %lld stale writes refused by the fence\n",
			        strategy_names[r->s], db_name(r->backend), (long long)r->pauses,
			        (long long)r->crashes, (long long)r->fenced_rejections);
		if (r->deadlocks)
			fprintf(out, "%-20s %-10s deadlocks: %lld, each rolled back and retried\n",
			        strategy_names[r->s], db_name(r->backend), (long long)r->deadlocks);
		if (r->first_error[0])
			fprintf(out, "%-20s %-10s first error: %s\n", strategy_names[r->s], db_name(r->backend),
			        r->first_error);
	}
}

static FILE *open_out(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
	if (!f)
		perror(path);
	return f;
}

static int close_out(FILE *f)
{
	int rc = ferror(f) ? -1 : 0;
	if (f != stdout)
		rc |= fclose(f);
	else
		fflush(f);
	return rc;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

int report_json(const char *path, const workload *w, const result *rs, int n)
{
	FILE *f = open_out(path);
	if (!f)
		return -1;
	fprintf(f, "{\"workload\": {\"workers\": %d, \"products\": %d, \"stock_per_product\": %d, "
	           "\"qty\": %d, \"skew\": %g, \"think_ms\": %d, \"duration_s\": %g, \"seed\": %llu, "
	           "\"lease_ttl_ms\": %d, \"lease_wait_ms\": %d, \"max_attempts\": %d, "
	           "\"pause\": %g, \"crash\": %g, \"duplicates\": %g},\n \"results\": [",
	        w->workers, w->products, w->stock, w->qty, w->skew, w->think_ms, w->duration_s,
	        (unsigned long long)w->seed, w->lease_ttl_ms, w->lease_wait_ms, w->max_attempts,
	        w->pause, w->crash, w->duplicates);
	for (int i = 0; i < n; i++) {
		const result *r = &rs[i];
		fprintf(f, "%s\n  {\"strategy\": \"%s\", \"backend\": \"%s\", \"workers\": %d, \"products\": %d, "
		           "\"initial_stock\": %lld, \"final_stock\": %lld, \"orders\": %lld, "
		           "\"units_sold\": %lld, \"oversold\": %lld, \"lost_updates\": %lld, "
		           "\"invariants_ok\": %s, \"elapsed_s\": %.3f, \"throughput_per_s\": %.2f, "
		           "\"latency_ms\": {\"p50\": %.3f, \"p95\": %.3f, \"p99\": %.3f, \"max\": %.3f}, "
		           "\"attempts\": %lld, \"retries\": %lld, \"lock_waits\": %lld, "
		           "\"lock_wait_ms\": {\"p50\": %.3f, \"p99\": %.3f}, \"timeouts\": %lld, "
		           "\"errors\": %lld, \"fenced_rejections\": %lld, \"paused_holders\": %lld, "
		           "\"crashed_holders\": %lld, \"duplicates\": %lld, \"replays\": %lld, "
		           "\"charged_twice\": %lld, \"first_error\": ",
		        i ? "," : "", strategy_names[r->s], db_name(r->backend), r->workers, r->products,
		        (long long)r->initial_stock, (long long)r->final_stock, (long long)r->orders,
		        (long long)r->units_sold, (long long)r->oversold, (long long)r->lost_updates,
		        r->invariants_ok ? "true" : "false", r->elapsed_s, r->throughput, r->p50, r->p95,
		        r->p99, r->max_ms, (long long)r->attempts, (long long)r->retries,
		        (long long)r->lock_waits, r->wait_p50, r->wait_p99, (long long)r->timeouts,
		        (long long)r->errors, (long long)r->fenced_rejections, (long long)r->pauses,
		        (long long)r->crashes, (long long)r->duplicates, (long long)r->replays,
		        (long long)r->charged_twice);
		json_str(f, r->first_error);
		fputc('}', f);
	}
	fprintf(f, "\n]}\n");
	return close_out(f);
}

int report_csv(const char *path, const result *rs, int n)
{
	FILE *f = open_out(path);
	if (!f)
		return -1;
	fprintf(f, "strategy,backend,workers,products,initial_stock,final_stock,orders,units_sold,"
	           "oversold,lost_updates,invariants_ok,elapsed_s,throughput_per_s,latency_p50_ms,"
	           "latency_p95_ms,latency_p99_ms,latency_max_ms,attempts,retries,lock_waits,"
	           "lock_wait_p50_ms,lock_wait_p99_ms,timeouts,errors,fenced_rejections,paused_holders,"
	           "crashed_holders,duplicates,replays,charged_twice\n");
	for (int i = 0; i < n; i++) {
		const result *r = &rs[i];
		fprintf(f, "%s,%s,%d,%d,%lld,%lld,%lld,%lld,%lld,%lld,%s,%.3f,%.2f,%.3f,%.3f,%.3f,%.3f,%lld,%lld,%lld,%.3f,%.3f,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld\n",
		        strategy_names[r->s], db_name(r->backend), r->workers, r->products,
		        (long long)r->initial_stock, (long long)r->final_stock, (long long)r->orders,
		        (long long)r->units_sold, (long long)r->oversold, (long long)r->lost_updates,
		        r->invariants_ok ? "true" : "false", r->elapsed_s, r->throughput, r->p50, r->p95,
		        r->p99, r->max_ms, (long long)r->attempts, (long long)r->retries,
		        (long long)r->lock_waits, r->wait_p50, r->wait_p99, (long long)r->timeouts,
		        (long long)r->errors, (long long)r->fenced_rejections, (long long)r->pauses,
		        (long long)r->crashes, (long long)r->duplicates, (long long)r->replays,
		        (long long)r->charged_twice);
	}
	return close_out(f);
}

/* ---- SVG chart: throughput and oversold against workers, one panel per
 * product count, one line per strategy and database ---- */

static const char *const colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e",
                                     "#9467bd", "#7f7f7f", "#17becf", "#bcbd22"};
/* every strategy has its colour, in the lines and the legend */
_Static_assert(sizeof colors / sizeof *colors == S_COUNT, "a colour per strategy");

typedef struct panel {
	double x, y, w, h;
	int products;
	bool oversold; /* else throughput */
} panel;

static double xpos(const panel *p, int workers, int maxw)
{
	return p->x + p->w * (log2(workers) / (maxw > 1 ? log2(maxw) : 1));
}

/* Throughput spans three decades (atomic vs the read-write strategies), so
 * its axis is logarithmic; units oversold are linear. */
static double yfrac(const panel *p, double v, double ymax)
{
	if (!p->oversold)
		return v <= 10 ? 0 : log10(v / 10) / log10(ymax / 10);
	return v / ymax;
}

static void draw_panel(FILE *f, const panel *p, const result *rs, int n, int maxw)
{
	double ymax = p->oversold ? 1 : 100;
	for (int i = 0; i < n; i++) {
		if (rs[i].products != p->products)
			continue;
		double v = p->oversold ? (double)rs[i].oversold : rs[i].throughput;
		if (v > ymax)
			ymax = v;
	}
	ymax = p->oversold ? ymax * 1.1 : pow(10, ceil(log10(ymax)));
	fprintf(f, "<rect x='%.0f' y='%.0f' width='%.0f' height='%.0f' fill='none' stroke='#999'/>\n",
	        p->x, p->y, p->w, p->h);
	fprintf(f, "<text x='%.0f' y='%.0f' font-size='14' font-weight='bold'>%s, %d product%s</text>\n",
	        p->x, p->y - 8, p->oversold ? "Units oversold" : "Purchases per second (log scale)",
	        p->products, p->products == 1 ? " (one hot item)" : "s");
	int ticks = p->oversold ? 4 : (int)lround(log10(ymax / 10));
	for (int t = 0; t <= ticks; t++) {
		double yv = p->oversold ? ymax * t / 4 : 10 * pow(10, t);
		double y = p->y + p->h - p->h * yfrac(p, yv, ymax);
		fprintf(f, "<line x1='%.0f' x2='%.0f' y1='%.1f' y2='%.1f' stroke='#eee'/>\n", p->x, p->x + p->w, y, y);
		fprintf(f, "<text x='%.0f' y='%.1f' font-size='11' text-anchor='end'>%.0f</text>\n", p->x - 4, y + 4, yv);
	}
	for (int wk = 1; wk <= maxw; wk *= 2) {
		double x = xpos(p, wk, maxw);
		fprintf(f, "<text x='%.1f' y='%.0f' font-size='11' text-anchor='middle'>%d</text>\n", x, p->y + p->h + 14, wk);
	}
	fprintf(f, "<text x='%.0f' y='%.0f' font-size='11' text-anchor='middle'>concurrent buyers (workers)</text>\n",
	        p->x + p->w / 2, p->y + p->h + 30);
	for (int s = 0; s < S_COUNT; s++)
		for (int b = LKS_BACKEND_POSTGRESQL; b <= LKS_BACKEND_MYSQL; b++) {
			fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2'%s points='", colors[s],
			        b == LKS_BACKEND_MYSQL ? " stroke-dasharray='6,4'" : "");
			for (int i = 0; i < n; i++) {
				const result *r = &rs[i];
				if ((int)r->s != s || (int)r->backend != b || r->products != p->products)
					continue;
				double v = p->oversold ? (double)r->oversold : r->throughput;
				fprintf(f, "%.1f,%.1f ", xpos(p, r->workers, maxw), p->y + p->h - p->h * yfrac(p, v, ymax));
			}
			fprintf(f, "'/>\n");
		}
}

int report_chart(const char *path, const result *rs, int n)
{
	int products[2] = {0, 0}, np = 0, maxw = 1;
	FILE *f;
	for (int i = 0; i < n; i++) {
		if (rs[i].workers > maxw)
			maxw = rs[i].workers;
		bool seen = false;
		for (int j = 0; j < np; j++)
			seen |= products[j] == rs[i].products;
		if (!seen && np < 2)
			products[np++] = rs[i].products;
	}
	if (!(f = open_out(path)))
		return -1;
	int width = 1100, height = 820;
	fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-family='sans-serif'>\n",
	        width, height);
	fprintf(f, "<rect width='100%%' height='100%%' fill='white'/>\n");
	fprintf(f, "<text x='20' y='28' font-size='18' font-weight='bold'>lockstock inventory sweep: "
	           "throughput and overselling against contention</text>\n");
	for (int i = 0; i < np; i++) {
		panel tp = {80 + i * 520, 70, 420, 260, products[i], false};
		panel op = {80 + i * 520, 400, 420, 260, products[i], true};
		draw_panel(f, &tp, rs, n, maxw);
		draw_panel(f, &op, rs, n, maxw);
	}
	/* legend */
	for (int s = 0; s < S_COUNT; s++) {
		double x = 80 + (s % 3) * 330, y = 725 + (s / 3) * 22;
		fprintf(f, "<line x1='%.0f' x2='%.0f' y1='%.0f' y2='%.0f' stroke='%s' stroke-width='3'/>\n", x, x + 30, y, y, colors[s]);
		fprintf(f, "<text x='%.0f' y='%.0f' font-size='13'>%s</text>\n", x + 38, y + 4, strategy_names[s]);
	}
	fprintf(f, "<text x='80' y='790' font-size='12'>solid: PostgreSQL, dashed: MariaDB. "
	           "Each point: one run until sold out, same seed and stock.</text>\n");
	fprintf(f, "</svg>\n");
	return close_out(f);
}

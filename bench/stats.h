/* What the benchmarks share: percentiles of latency samples. */
#ifndef LKS_BENCH_STATS_H
#define LKS_BENCH_STATS_H

/* qsort order of doubles, ascending */
int bench_cmp_double(const void *a, const void *b);
/* The p-quantile (0..1, nearest rank) of v[0..n-1], which it sorts; 0 for
 * no samples. */
double bench_pct(double *v, int n, double p);

#endif

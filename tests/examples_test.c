/* The small examples, built and run against a real server, as a user would
 * run them. Usage: examples_test postgresql|mysql BUILD-DIR/examples */
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "support.h"
#include "tap.h"

static const char *dir;

/* run `dir/prog 'url' args`, output to out; its exit status */
static int run(const char *prog, const char *url, const char *args, const char *out)
{
	char cmd[4096];
	int st;
	snprintf(cmd, sizeof cmd, "%s/%s '%s' %s >%s 2>&1", dir, prog, url, args, out);
	st = system(cmd);
	st = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	if (st) {
		snprintf(cmd, sizeof cmd, "cat %s >&2", out);
		if (system(cmd) != 0)
			print_error("no output\n");
	}
	return st;
}

/* Output files: per process, since the suites of each database run side by
 * side. tmp("x") is valid until the fourth call after it. */
static const char *tmp(const char *what)
{
	static char ring[4][128];
	static int next;
	char *p = ring[next++ % 4];
	snprintf(p, sizeof ring[0], "/tmp/lks-ex-%d-%s", (int)getpid(), what);
	return p;
}

static char *slurp(const char *path)
{
	static char buf[16384];
	FILE *fp = fopen(path, "r");
	size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
	if (fp)
		fclose(fp);
	buf[n] = '\0';
	return buf;
}

/* #30: the README's program, extracted from README.md and built as a user
 * would, runs against a fresh database after the steps the README names
 * (its products table; the program installs the lease table itself): one
 * sale, one fenced restock, nothing on stderr. */
static void readme_program_runs(void **state)
{
	fx *f = *state;
	t_exec(f->c, "CREATE TABLE products (id int PRIMARY KEY, stock int NOT NULL,"
	             " version bigint NOT NULL DEFAULT 0)");
	t_exec(f->c, "INSERT INTO products VALUES (42, 10, 0)");
	assert_int_equal(run("basics/readme", f->url, "", tmp("readme.out")), 0);
	assert_string_equal(slurp(tmp("readme.out")), "");
	assert_int_equal(t_int1(f->c, "SELECT stock FROM products WHERE id = 42"), 10 - 1 + 100);
	assert_int_equal(t_int1(f->c, "SELECT version FROM products WHERE id = 42"), 1);
}

static void balance_stays_exact(void **state)
{
	fx *f = *state;
	assert_int_equal(run("basics/balance", f->url, "", tmp("balance.out")), 0);
	assert_non_null(strstr(slurp(tmp("balance.out")), "transfers 400 of 400, total 2000000"));
}

static void nightly_job_runs_once(void **state)
{
	fx *f = *state;
	char cmd[4096];
	/* two replicas at once: one runs the job, the other sees it busy */
	/* both must exit 0 (a sanitizer report would not) */
	char job1[128], job2[128];
	snprintf(job1, sizeof job1, "%s", tmp("job1.out"));
	snprintf(job2, sizeof job2, "%s", tmp("job2.out"));
	snprintf(cmd, sizeof cmd,
	         "%s/basics/nightly_job '%s' >%s 2>&1 & p=$!;"
	         " %s/basics/nightly_job '%s' >%s 2>&1; a=$?; wait $p; b=$?;"
	         " [ $a -eq 0 ] && [ $b -eq 0 ]",
	         dir, f->url, job1, dir, f->url, job2);
	int st = system(cmd);
	snprintf(cmd, sizeof cmd, "cat %s %s >&2", job1, job2);
	if (st != 0 && system(cmd) != 0)
		print_error("no output\n");
	assert_int_equal(st, 0);
	int ran = 0, skipped = 0;
	for (int i = 1; i <= 2; i++) {
		const char *out = slurp(i == 1 ? job1 : job2);
		ran += strstr(out, "report written with fence 1: ok") != NULL;
		skipped += strstr(out, "another replica runs the job") != NULL;
	}
	assert_int_equal(ran, 1);
	assert_int_equal(skipped, 1);
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM reports"), 1);
}

static void adopt_works(void **state)
{
	fx *f = *state;
	char path[4096];
	snprintf(path, sizeof path, "%s/basics/adopt", dir);
	if (access(path, X_OK) != 0)
		skip(); /* a build with one backend has no adopt example */
	assert_int_equal(run("basics/adopt", f->url, "", tmp("adopt.out")), 0);
	assert_non_null(strstr(slurp(tmp("adopt.out")), "on an adopted connection, fence 1"));
}

static void prometheus_metrics(void **state)
{
	fx *f = *state;
	unsigned long acquired = 0, applied = 0, inf = 0, count = 0, prev = 0, b;
	char *line;
	char prom_args[160];
	snprintf(prom_args, sizeof prom_args, "%s 1", tmp("metrics.prom"));
	assert_int_equal(run("metrics/prometheus", f->url, prom_args, tmp("prom.out")), 0);
	char *text = slurp(tmp("metrics.prom"));
	assert_non_null(strstr(text, "# TYPE lockstock_acquire_wait_seconds histogram"));
	for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		sscanf(line, "lockstock_acquire_total{outcome=\"acquired\"} %lu", &acquired);
		sscanf(line, "lockstock_cas_total{outcome=\"applied\"} %lu", &applied);
		sscanf(line, "lockstock_acquire_wait_seconds_count %lu", &count);
		if (!strncmp(line, "lockstock_acquire_wait_seconds_bucket", 37) &&
		    sscanf(strchr(line, '}') + 1, " %lu", &b) == 1) {
			assert_true(b >= prev); /* cumulative */
			prev = b;
			if (strstr(line, "+Inf"))
				inf = b;
		}
	}
	assert_true(acquired > 0 && applied > 0);
	assert_int_equal(inf, count);
	assert_true(count >= acquired);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(int argc, char **argv)
{
	tap_stdout();
	const struct CMUnitTest tests[] = {T(readme_program_runs), T(balance_stays_exact), T(nightly_job_runs_once), T(adopt_works),
	                                   T(prometheus_metrics)};
	char name[64];
	if (argc != 3 || support_init(argv[1])) {
		fprintf(stderr, "usage: examples_test postgresql|mysql BUILD-DIR/examples\n");
		return 1;
	}
	dir = argv[2];
	snprintf(name, sizeof name, "examples-%s", argv[1]);
	return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}

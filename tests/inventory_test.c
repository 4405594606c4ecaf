/* Integration tests of examples/inventory: short driver runs against a real
 * server. Usage: inventory_test postgresql|mysql PATH-TO-INVENTORY */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "support.h"

static const char *driver;

typedef struct row {
	char strategy[32], backend[16];
	long long initial, final, orders, sold, oversold, lost, attempts, retries, waits;
	long long timeouts, errors, fenced, paused, crashed;
	long long duplicates, replays, twice; /* the last three columns */
	int ok;
} row;

/* run the driver with args on f's database; returns its exit status */
static int run(fx *f, const char *args, const char *csv)
{
	char cmd[4096], own[64];
	int st;
	/* per process: the suites of each database run side by side */
	snprintf(own, sizeof own, "/tmp/lks-inv-%d", (int)getpid());
	snprintf(cmd, sizeof cmd, "%s --quiet --url '%s' %s %s%s >%s.out 2>&1", driver, f->url, args,
	         csv ? "--csv " : "", csv ? csv : "", csv ? csv : own);
	st = system(cmd);
	st = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	if (st != 0) { /* show what the driver said */
		snprintf(cmd, sizeof cmd, "cat %s.out >&2", csv ? csv : own);
		if (system(cmd) != 0)
			print_error("no driver output\n");
	}
	return st;
}

static int read_rows(const char *csv, row *rows, int max)
{
	char line[2048];
	int n = 0;
	FILE *fp = fopen(csv, "r");
	assert_non_null(fp);
	assert_non_null(fgets(line, sizeof line, fp)); /* header */
	while (n < max && fgets(line, sizeof line, fp)) {
		row *r = &rows[n];
		char ok[8];
		double skip;
		int got = sscanf(line,
		                 "%31[^,],%15[^,],%*d,%*d,%lld,%lld,%lld,%lld,%lld,%lld,%7[^,],%lf,%lf,%lf,%lf,%lf,%lf,"
		                 "%lld,%lld,%lld,%lf,%lf,%lld,%lld,%lld,%lld,%lld",
		                 r->strategy, r->backend, &r->initial, &r->final, &r->orders, &r->sold,
		                 &r->oversold, &r->lost, ok, &skip, &skip, &skip, &skip, &skip, &skip,
		                 &r->attempts, &r->retries, &r->waits, &skip, &skip, &r->timeouts,
		                 &r->errors, &r->fenced, &r->paused, &r->crashed);
		if (got != 25)
			fail_msg("bad CSV line (%d fields): %s", got, line);
		const char *tail = line;
		for (int commas = 0; commas < 27 && (tail = strchr(tail, ',')); commas++)
			tail++;
		if (!tail || sscanf(tail, "%lld,%lld,%lld", &r->duplicates, &r->replays, &r->twice) != 3)
			fail_msg("no duplicates columns: %s", line);
		r->ok = !strcmp(ok, "true");
		n++;
	}
	fclose(fp);
	return n;
}

static const row *find(const row *rows, int n, const char *strategy)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(rows[i].strategy, strategy))
			return &rows[i];
	fail_msg("no row for %s", strategy);
	return NULL;
}

#include <unistd.h>
#include "tap.h"
static void tmpname(char *out, size_t n, const char *what)
{
	snprintf(out, n, "/tmp/lks-inv-%d-%s", (int)getpid(), what);
}

static void naive_oversells(void **state)
{
	fx *f = *state;
	char csv[128];
	row rows[4];
	tmpname(csv, sizeof csv, "naive.csv");
	assert_int_equal(run(f, "--strategy naive --workers 8 --stock 40", csv), 0);
	assert_int_equal(read_rows(csv, rows, 4), 1);
	assert_true(rows[0].oversold > 0);
	assert_true(rows[0].lost > 0);
	assert_false(rows[0].ok);
	assert_int_equal(rows[0].sold - rows[0].lost, rows[0].initial - rows[0].final);
	print_message("    naive oversold %lld of %lld\n", rows[0].oversold, rows[0].initial);
	remove(csv);
}

static void safe_strategies_sell_exactly_the_stock(void **state)
{
	fx *f = *state;
	const char *safe[] = {"optimistic", "pessimistic", "select-for-update", "atomic"};
	char csv[128];
	row rows[8];
	tmpname(csv, sizeof csv, "safe.csv");
	assert_int_equal(run(f, "--strategy optimistic,pessimistic,select-for-update,atomic "
	                        "--workers 8 --products 3 --stock 30 --qty 2 --skew 0.5",
	                     csv),
	                 0);
	assert_int_equal(read_rows(csv, rows, 8), 4);
	for (int i = 0; i < 4; i++) {
		const row *r = find(rows, 4, safe[i]);
		assert_true(r->ok);
		assert_int_equal(r->initial, 90);
		assert_int_equal(r->sold, 90); /* 30 per product, 2 at a time */
		assert_int_equal(r->final, 0);
		assert_int_equal(r->orders, 45);
		assert_int_equal(r->oversold, 0);
		assert_int_equal(r->lost, 0);
		assert_int_equal(r->errors, 0);
	}
	assert_true(find(rows, 4, "optimistic")->retries > 0);
	remove(csv);
}

/* --items 3: every safe strategy sells whole orders (3 lines each) out of
 * the 4 hot products, never oversells, and leaves the cold one untouched. */
static void multi_item_orders(void **state)
{
	fx *f = *state;
	const char *safe[] = {"optimistic", "pessimistic", "pessimistic-all", "select-for-update",
	                      "atomic", "once"};
	char csv[128];
	row rows[8];
	tmpname(csv, sizeof csv, "items.csv");
	assert_int_equal(run(f, "--strategy optimistic,pessimistic,pessimistic-all,select-for-update,"
	                        "atomic,once --items 3 --products 5 --hot 4 --stock 30 --workers 6",
	                     csv),
	                 0);
	assert_int_equal(read_rows(csv, rows, 8), 6);
	for (int i = 0; i < 6; i++) {
		const row *r = find(rows, 6, safe[i]);
		assert_true(r->ok);
		assert_int_equal(r->initial, 150);
		assert_int_equal(r->oversold, 0);
		assert_int_equal(r->lost, 0);
		assert_int_equal(r->errors, 0);
		assert_int_equal(r->twice, 0);
		assert_int_equal(r->sold % 3, 0);      /* whole orders only */
		assert_true(r->sold >= 3 * 30 - 3 * 2); /* ran until fewer than 3 hot products had stock */
		assert_true(r->final >= 30);            /* the cold product: all of it left */
		assert_int_equal(r->sold, r->initial - r->final);
		print_message("    %-18s %lld units in %lld orders, %lld retries\n", safe[i], r->sold,
		              r->sold / 3, r->retries);
	}
	remove(csv);
}

static void json_has_the_documented_shape(void **state)
{
	fx *f = *state;
	char json[128], cmd[4096];
	tmpname(json, sizeof json, "out.json");
	char args[256];
	snprintf(args, sizeof args, "--strategy naive,atomic,optimistic --workers 4 --stock 20 --json %s", json);
	assert_int_equal(run(f, args, NULL), 0);
	/* python's json module: a real parser, and the arithmetic checks */
	snprintf(cmd, sizeof cmd,
	         "python3 -c '\n"
	         "import json, sys\n"
	         "d = json.load(open(\"%s\"))\n"
	         "assert set(d) >= {\"workload\", \"results\"}\n"
	         "assert len(d[\"results\"]) == 3\n"
	         "keys = {\"strategy\",\"backend\",\"initial_stock\",\"final_stock\",\"orders\",\"units_sold\","
	         "\"oversold\",\"lost_updates\",\"invariants_ok\",\"throughput_per_s\",\"latency_ms\",\"attempts\","
	         "\"retries\",\"lock_waits\",\"timeouts\",\"errors\"}\n"
	         "for r in d[\"results\"]:\n"
	         "    assert keys <= set(r), keys - set(r)\n"
	         "    assert set(r[\"latency_ms\"]) >= {\"p50\",\"p95\",\"p99\",\"max\"}\n"
	         "    assert r[\"backend\"] in (\"postgresql\", \"mysql\")\n"
	         "    assert r[\"lost_updates\"] == r[\"units_sold\"] - (r[\"initial_stock\"] - r[\"final_stock\"])\n"
	         "    assert r[\"initial_stock\"] == 20\n"
	         "    l = r[\"latency_ms\"]\n"
	         "    assert 0 <= l[\"p50\"] <= l[\"p95\"] <= l[\"p99\"] <= l[\"max\"]\n"
	         "    assert r[\"throughput_per_s\"] > 0\n"
	         "    assert r[\"invariants_ok\"] == (r[\"oversold\"] == 0 and r[\"lost_updates\"] == 0)\n"
	         "    if r[\"strategy\"] != \"naive\": assert r[\"units_sold\"] == 20 and r[\"invariants_ok\"]\n"
	         "'",
	         json);
	assert_int_equal(system(cmd), 0);
	remove(json);
}

static void pause_fencing_demonstration(void **state)
{
	fx *f = *state;
	char csv[128];
	row rows[4];
	tmpname(csv, sizeof csv, "pause.csv");
	assert_int_equal(run(f, "--strategy pessimistic,pessimistic-unfenced --pause 0.3 "
	                        "--lease-ttl-ms 150 --workers 6 --stock 40",
	                     csv),
	                 0);
	assert_int_equal(read_rows(csv, rows, 4), 2);
	const row *fenced = find(rows, 2, "pessimistic"), *unfenced = find(rows, 2, "pessimistic-unfenced");
	assert_true(fenced->ok);
	assert_int_equal(fenced->sold, 40);
	assert_true(fenced->paused > 0);
	assert_true(fenced->fenced > 0); /* stale writes were refused */
	assert_true(unfenced->paused > 0);
	assert_true(unfenced->lost > 0 || unfenced->oversold > 0);
	print_message("    unfenced: %lld lost updates, %lld oversold; fenced: %lld stale writes refused\n",
	              unfenced->lost, unfenced->oversold, fenced->fenced);
	remove(csv);
}

/* #18 item 5: a share of the orders is delivered again (while the first
 * attempt runs, and after it completed). Without idempotency orders are
 * charged twice; with the once strategy none is, and the stock is exact. */
static void duplicate_deliveries(void **state)
{
	fx *f = *state;
	char csv[128];
	row rows[4];
	tmpname(csv, sizeof csv, "dup.csv");
	assert_int_equal(run(f, "--strategy atomic,once --duplicates 0.3 --workers 8 --stock 60", csv), 0);
	assert_int_equal(read_rows(csv, rows, 4), 2);
	const row *atomic = find(rows, 2, "atomic"), *once = find(rows, 2, "once");
	assert_true(atomic->duplicates > 0);
	assert_true(atomic->twice > 0);
	assert_true(once->duplicates > 0);
	assert_true(once->replays > 0);
	assert_int_equal(once->twice, 0);
	assert_true(once->ok);
	assert_int_equal(once->sold, 60);
	assert_int_equal(once->final, 0);
	print_message("    atomic: %lld orders charged twice of %lld delivered again; once: 0 of %lld"
	              " (%lld replayed)\n", atomic->twice, atomic->duplicates, once->duplicates,
	              once->replays);
	remove(csv);
}

static void crash_demonstration(void **state)
{
	fx *f = *state;
	char csv[128];
	row rows[4];
	tmpname(csv, sizeof csv, "crash.csv");
	assert_int_equal(run(f, "--strategy pessimistic --crash 0.1 --lease-ttl-ms 150 --workers 6 --stock 40",
	                     csv),
	                 0);
	assert_int_equal(read_rows(csv, rows, 4), 1);
	assert_true(rows[0].crashed > 0);
	assert_true(rows[0].ok);
	assert_int_equal(rows[0].sold, 40);
	assert_int_equal(rows[0].final, 0);
	remove(csv);
}

/* thousands of products: the reset fills them in one statement */
static void many_products(void **state)
{
	fx *f = *state;
	char csv[128];
	row rows[2];
	tmpname(csv, sizeof csv, "many.csv");
	assert_int_equal(run(f, "--strategy atomic --products 3000 --stock 1 --workers 4", csv), 0);
	assert_int_equal(read_rows(csv, rows, 2), 1);
	assert_true(rows[0].ok);
	assert_int_equal(rows[0].initial, 3000);
	assert_int_equal(rows[0].sold, 3000);
	remove(csv);
}

static void bad_options_exit_2_and_touch_nothing(void **state)
{
	fx *f = *state;
	const char *bad[] = {"--workers -1", "--workers 0", "--stock 0", "--strategy bogus",
	                     "--strategy naive,bogus", "--qty 0", "--pause 2", "--crash -0.1",
	                     "--lease-ttl-ms 0", "--duration -1", "--no-such-option", "--workers",
	                     "--url mysql://lks:S3cretPW@127.0.0.1:1/db",
	                     "--url postgresql://lks:S3cretPW@127.0.0.1:1/db",
	                     "--url 'postgresql://lks:S3cretPW%zz@127.0.0.1/db'",
	                     "--url 'postgresql://lks:S3cretPW@[::1/db'",
	                     "--url redis://x", "--qty 5 --stock 4", "extra-argument",
	                     "--items 3 --products 2", "--items 2 --products 3 --hot 1",
	                     "--items 2 --products 2 --duplicates 0.1", "--items 17 --products 20"};
	char cmd[2048], out[64];
	snprintf(out, sizeof out, "/tmp/lks-inv-%d-bad.out", (int)getpid());
	t_exec(f->c, "CREATE TABLE inv_products (id int PRIMARY KEY, stock int NOT NULL, version bigint NOT NULL)");
	t_exec(f->c, "INSERT INTO inv_products VALUES (1, 12345, 7)");
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int st;
		/* the bad option last, so it is the one that decides */
		snprintf(cmd, sizeof cmd, "%s --quiet --url '%s' %s >%s 2>&1", driver,
		         strstr(bad[i], "--url") ? "postgresql://unused:1/x" : f->url, bad[i], out);
		if (strstr(bad[i], "--url"))
			snprintf(cmd, sizeof cmd, "%s --quiet %s >%s 2>&1", driver, bad[i], out);
		st = system(cmd);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 2)
			fail_msg("'%s' exited %d, want 2", bad[i], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		FILE *fp = fopen(out, "r");
		char msg[512] = "";
		assert_non_null(fp);
		assert_non_null(fgets(msg, sizeof msg, fp));
		fclose(fp);
		assert_non_null(strstr(msg, "inventory:")); /* a message, not silence */
		if (strstr(msg, "S3cretPW")) /* never the password (issue 7.14) */
			fail_msg("'%s' printed the password: %s", bad[i], msg);
	}
	assert_int_equal(t_int1(f->c, "SELECT stock FROM inv_products WHERE id = 1"), 12345);
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM inv_products"), 1);
	remove(out);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(int argc, char **argv)
{
	tap_stdout();
	const struct CMUnitTest tests[] = {
		T(naive_oversells),
		T(safe_strategies_sell_exactly_the_stock),
		T(json_has_the_documented_shape),
		T(pause_fencing_demonstration),
		T(duplicate_deliveries),
		T(crash_demonstration),
		T(many_products),
		T(multi_item_orders),
		T(bad_options_exit_2_and_touch_nothing),
	};
	char name[64];
	if (argc != 3 || support_init(argv[1]))
		return 1;
	driver = argv[2];
	snprintf(name, sizeof name, "inventory-%s", argv[1]);
	return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}

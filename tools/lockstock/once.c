/* lockstock run --once KEY / --once-per PERIOD: a job that runs once per
 * key, not only one at a time. The key's record is written when the
 * command exits 0, in a fenced transaction on the run's lease. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"

/* The server's clock in microseconds since 1970: replicas with skewed
 * clocks agree on the period. */
static int server_now_us(lks_conn *c, int64_t *us)
{
	return lks_conn_query_int(
		c,
		lks_conn_backend(c) == LKS_BACKEND_POSTGRESQL
			? "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
			: "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))",
		NULL, 0, us);
}

int cli_once_check_period(const char *period, char *err, size_t errsz)
{
	int64_t ms;
	if (!strcmp(period, "hour") || !strcmp(period, "day") || !strcmp(period, "week") ||
	    !strcmp(period, "month"))
		return 0;
	if (cli_parse_duration(period, 366LL * 86400 * 1000, &ms, err, errsz))
		return -1;
	if (ms < 1000) {
		snprintf(err, errsz, "a period must be at least 1s");
		return -1;
	}
	return 0;
}

int cli_once_key(lks_conn *c, const char *once, const char *period, char *key, size_t n)
{
	int64_t us, ms;
	time_t secs;
	struct tm tm;
	char err[128];
	int rc;
	if (once) {
		snprintf(key, n, "%s", once);
		return LKS_OK;
	}
	if ((rc = server_now_us(c, &us)))
		return rc;
	secs = (time_t)(us / 1000000);
	gmtime_r(&secs, &tm);
	if (!strcmp(period, "hour"))
		strftime(key, n, "%Y-%m-%dT%H", &tm);
	else if (!strcmp(period, "day"))
		strftime(key, n, "%Y-%m-%d", &tm);
	else if (!strcmp(period, "week"))
		strftime(key, n, "%G-W%V", &tm); /* ISO week: Monday to Sunday, UTC */
	else if (!strcmp(period, "month"))
		strftime(key, n, "%Y-%m", &tm);
	else if (cli_parse_duration(period, 366LL * 86400 * 1000, &ms, err, sizeof err) == 0)
		snprintf(key, n, "every-%lldms-%lld", (long long)ms, (long long)(us / 1000 / ms));
	return LKS_OK;
}

int cli_once_done(lks_conn *c, const char *name, const char *key, const char *table)
{
	lks_once_options o = LKS_ONCE_OPTIONS_INIT;
	lks_once_result r = {0};
	int rc;
	o.table = table;
	rc = lks_once_lookup(c, name, key, &o, &r);
	if (rc == LKS_OK) {
		time_t secs = (time_t)(r.completed_at_us / 1000000);
		struct tm tm;
		char when[32];
		gmtime_r(&secs, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(stderr, "lockstock: run: %s: key ", name);
		cli_put_text(stderr, key);
		fprintf(stderr, " was done at %s (fence %lld); not running it again\n", when,
		        (long long)r.fence);
		lks_once_result_clear(&r);
		return 1;
	}
	if (rc == LKS_NOT_FOUND)
		return 0;
	cli_error("run: --once: %s", lks_conn_errmsg(c));
	return rc == LKS_EINVAL ? -EXIT_USAGE : -cli_exit_for(rc);
}

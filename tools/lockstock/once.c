/* lockstock run --once KEY / --once-per PERIOD: a job that runs once per
 * key, not only one at a time. The key's record is written when the
 * command exits 0, in a fenced transaction on the run's lease. */
#include <getopt.h>
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

/* ---- lockstock once list|inspect|forget|purge -------------------------- */

enum { ONCE_URL = 256, ONCE_JSON, ONCE_OLDER, ONCE_BATCH, ONCE_LIMIT, ONCE_HELP };

typedef struct once_opts {
	cli_common co;
	bool json;
	int64_t older_ms;
	bool older_set;
	long batch, limit;
	int first; /* first operand */
} once_opts;

static int once_parse(int argc, char **argv, once_opts *o)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, ONCE_URL},
		{"json", no_argument, NULL, ONCE_JSON},
		{"older-than", required_argument, NULL, ONCE_OLDER},
		{"batch", required_argument, NULL, ONCE_BATCH},
		{"limit", required_argument, NULL, ONCE_LIMIT},
		{"help", no_argument, NULL, ONCE_HELP},
		{NULL, 0, NULL, 0},
	};
	char err[128], *end;
	int opt;
	o->batch = 100; /* as lockstock purge: short transactions beside live traffic */
	o->limit = 1000; /* list: an operator's screenful, not the whole table */
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case ONCE_URL: o->co.url = optarg; break;
		case ONCE_JSON: o->json = true; break;
		case ONCE_OLDER:
			if (cli_parse_duration(optarg, 100LL * 365 * 86400 * 1000, &o->older_ms, err, sizeof err)) {
				cli_error("once: --older-than: %s", err);
				return EXIT_USAGE;
			}
			o->older_set = true;
			break;
		case ONCE_BATCH:
		case ONCE_LIMIT: {
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < (opt == ONCE_BATCH ? 1 : 0) || v > 10000) {
				cli_error("once: --%s must be %d..10000, got '%s'", opt == ONCE_BATCH ? "batch" : "limit",
				          opt == ONCE_BATCH ? 1 : 0, optarg);
				return EXIT_USAGE;
			}
			*(opt == ONCE_BATCH ? &o->batch : &o->limit) = v;
			break;
		}
		case 'h':
		case ONCE_HELP: cli_help(stdout, "once"); return 0;
		case ':':
			cli_error("once: option %s needs a value (see lockstock once --help)", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			cli_error("once: unknown option %s (see lockstock once --help)", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	o->first = optind;
	return -1;
}

static void put_time(FILE *f, int64_t us)
{
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;
	char when[40];
	gmtime_r(&secs, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(f, "%s.%06lldZ", when, (long long)(us % 1000000));
}

typedef struct once_print {
	bool json;
	int n;
} once_print;

static int print_record(const char *scope, const char *key, const lks_once_result *r, void *arg)
{
	once_print *p = arg;
	if (p->json) {
		fputs(p->n++ ? ",{\"scope\":" : "{\"scope\":", stdout);
		cli_put_json(stdout, scope);
		fputs(",\"key\":", stdout);
		cli_put_json(stdout, key);
		printf(",\"code\":%d,\"failed\":%s,\"fence\":%lld,\"completed_at\":\"", r->code,
		       r->failed ? "true" : "false", (long long)r->fence);
		put_time(stdout, r->completed_at_us);
		fputs("\",\"result_hex\":\"", stdout);
		for (size_t i = 0; i < r->len; i++)
			printf("%02x", ((const unsigned char *)r->data)[i]);
		fputs("\"}", stdout);
		return 0;
	}
	p->n++;
	cli_put_text(stdout, scope);
	putchar('\t');
	cli_put_text(stdout, key);
	printf("\t%d%s\t%lld\t", r->code, r->failed ? " (failed)" : "", (long long)r->fence);
	put_time(stdout, r->completed_at_us);
	printf("\t%zu bytes\n", r->len);
	return 0;
}

int cli_once(int argc, char **argv)
{
	once_opts o = {0};
	once_print pr = {0};
	lks_conn *c = NULL;
	const char *verb;
	int rc, n;
	argc--, argv++; /* after "once" */
	if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
		cli_help(argc < 1 ? stderr : stdout, "once");
		return argc < 1 ? EXIT_USAGE : 0;
	}
	verb = argv[0];
	if ((rc = once_parse(argc, argv, &o)) >= 0)
		return rc;
	n = argc - o.first;
	if (!strcmp(verb, "list") ? n > 1
	    : !strcmp(verb, "inspect") || !strcmp(verb, "forget") ? n != 2
	    : !strcmp(verb, "purge") ? n != 0 || !o.older_set
	                             : 1) {
		cli_error("once: usage: lockstock once list [SCOPE] | inspect SCOPE KEY | forget SCOPE KEY"
		          " | purge --older-than D (see lockstock once --help)");
		return EXIT_USAGE;
	}
	if ((rc = cli_connect(&o.co, &c)))
		return rc;
	pr.json = o.json;
	if (!strcmp(verb, "list")) {
		if (o.json)
			putchar('[');
		else /* the columns, as lockstock list names its own */
			puts("SCOPE\tKEY\tCODE\tFENCE\tCOMPLETED\tRESULT");
		rc = lks_once_list(c, NULL, n ? argv[o.first] : NULL, (int)o.limit, print_record, &pr);
		if (o.json)
			puts("]");
	} else if (!strcmp(verb, "inspect")) {
		lks_once_result r = {0};
		rc = lks_once_lookup(c, argv[o.first], argv[o.first + 1], NULL, &r);
		if (rc == LKS_OK)
			print_record(argv[o.first], argv[o.first + 1], &r, &pr);
		if (rc == LKS_OK && o.json)
			putchar('\n');
		lks_once_result_clear(&r);
	} else if (!strcmp(verb, "forget")) {
		rc = lks_once_forget(c, NULL, argv[o.first], argv[o.first + 1]);
		if (rc == LKS_OK)
			printf("forgot the record; the key runs again on its next call\n");
	} else {
		int64_t deleted = 0;
		rc = lks_once_purge(c, NULL, o.older_ms, (int)o.batch, &deleted);
		if (rc == LKS_OK)
			printf("purged %lld records\n", (long long)deleted);
	}
	if (rc == LKS_NOT_FOUND) {
		cli_error("once %s: %s", verb, lks_conn_errmsg(c));
		lks_conn_close(c);
		return EXIT_NOT_HELD;
	}
	if (rc)
		cli_error("once %s: %s", verb, lks_conn_errmsg(c));
	lks_conn_close(c);
	return rc == LKS_EINVAL ? EXIT_USAGE : rc ? cli_exit_for(rc) : 0;
}

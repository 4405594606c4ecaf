/* lockstock install | list | inspect | release --force: look at and
 * administer the lease table. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

enum { OPT_URL = 256, OPT_TABLE, OPT_JSON, OPT_PRINT, OPT_FORCE, OPT_HELP };

/* Options shared by the admin subcommands; each accepts the ones it names
 * in `allowed` ("jpf": --json, --print, --force). Returns -1 to go on, or
 * an exit status. *first is the index of the first operand. */
static int parse(int argc, char **argv, const char *allowed, cli_common *co, bool *json,
                 bool *print, bool *force, int *first)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, OPT_URL},
		{"table", required_argument, NULL, OPT_TABLE},
		{"json", no_argument, NULL, OPT_JSON},
		{"print", no_argument, NULL, OPT_PRINT},
		{"force", no_argument, NULL, OPT_FORCE},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	int opt;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_URL: co->url = optarg; break;
		case OPT_TABLE: co->table = optarg; break;
		case 'h':
		case OPT_HELP: cli_help(stdout, argv[0]); return 0;
		case OPT_JSON:
		case OPT_PRINT:
		case OPT_FORCE:
			if (!strchr(allowed, opt == OPT_JSON ? 'j' : opt == OPT_PRINT ? 'p' : 'f'))
				goto unknown;
			*(opt == OPT_JSON ? json : opt == OPT_PRINT ? print : force) = true;
			break;
		case ':':
			cli_error("%s: option %s needs a value (see lockstock %s --help)", argv[0],
			          argv[optind - 1], argv[0]);
			return EXIT_USAGE;
		default:
		unknown:
			cli_error("%s: unknown option %s (see lockstock %s --help)", argv[0],
			          argv[optind - 1], argv[0]);
			return EXIT_USAGE;
		}
	}
	*first = optind;
	return -1;
}

static int operands(int argc, int first, int want, const char *cmd)
{
	if (argc - first == want)
		return -1;
	cli_error("%s: expected %s (see lockstock %s --help)", cmd,
	          want == 0 ? "no operands" : "one lease NAME", cmd);
	return EXIT_USAGE;
}

int cli_install(int argc, char **argv)
{
	cli_common co = {0};
	bool json = false, print = false, force = false;
	int first, rc;
	lks_conn *c;
	if ((rc = parse(argc, argv, "p", &co, &json, &print, &force, &first)) >= 0 ||
	    (rc = operands(argc, first, 0, "install")) >= 0)
		return rc;
	if (print) {
		/* the DDL for the URL's database, without connecting */
		const char *url = co.url ? co.url : getenv("LOCKSTOCK_URL");
		lks_backend b = url && !strncmp(url, "postgres", 8) ? LKS_BACKEND_POSTGRESQL
		                : url && (!strncmp(url, "mysql://", 8) || !strncmp(url, "mariadb://", 10))
		                    ? LKS_BACKEND_MYSQL : LKS_BACKEND_NONE;
		char ddl[4096];
		if (b == LKS_BACKEND_NONE) {
			cli_error("install --print: give --url or LOCKSTOCK_URL (postgresql:// or mysql://) to pick the dialect");
			return EXIT_USAGE;
		}
		if ((rc = lks_lease_ddl(b, co.table, ddl, sizeof ddl))) {
			cli_error("install --print: %s", rc == LKS_EINVAL ? "--table is not a plain identifier"
			                                                   : lks_strerror(rc));
			return rc == LKS_EINVAL ? EXIT_USAGE : EXIT_FAILURE_DB;
		}
		puts(ddl);
		return 0;
	}
	if ((rc = cli_connect(&co, &c)))
		return rc;
	rc = lks_lease_install(c);
	if (rc)
		cli_error("install: %s", lks_conn_errmsg(c));
	else
		printf("lease table %s is ready\n", co.table ? co.table : LKS_LEASE_TABLE_DEFAULT);
	/* the records of run --once */
	if (!rc && (rc = lks_once_install(c, NULL)))
		cli_error("install: %s", lks_conn_errmsg(c));
	else if (!rc)
		printf("once table lks_once is ready\n");
	lks_conn_close(c);
	return rc ? cli_exit_for(rc) : 0;
}

/* A lease's payload as the command shows it (none: no payload column, not
 * held, or none set). */
typedef struct payload {
	bool has;
	size_t len;
	unsigned char data[LKS_LEASE_PAYLOAD_MAX + 1];
	bool text; /* UTF-8 without NUL: shown as text */
} payload;

static void read_payload(lks_conn *c, const char *name, payload *p)
{
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	p->has = lks_lease_payload(c, name, &info, p->data, LKS_LEASE_PAYLOAD_MAX, &p->len) == LKS_OK &&
	         info.held && p->len > 0;
	if (!p->has)
		p->len = 0;
	p->data[p->len] = '\0';
	p->text = p->has && strlen((char *)p->data) == p->len && cli_utf8_valid((char *)p->data);
}

static void print_payload_json(const payload *p)
{
	fputs(",\"payload\":", stdout);
	if (p->text)
		cli_put_json(stdout, (const char *)p->data);
	else
		fputs("null", stdout);
	fputs(",\"payload_hex\":", stdout);
	if (!p->has) {
		fputs("null", stdout);
		return;
	}
	fputc('"', stdout);
	for (size_t i = 0; i < p->len; i++)
		printf("%02x", p->data[i]);
	fputc('"', stdout);
}

static void print_payload_text(const payload *p)
{
	if (!p->has)
		fputs("-", stdout);
	else if (p->text)
		cli_put_text(stdout, (const char *)p->data);
	else
		printf("(%zu bytes)", p->len);
}

static void print_info_json(const lks_lease_info *info)
{
	fputs("{\"name\":", stdout);
	cli_put_json(stdout, info->name);
	fputs(",\"name_hex\":", stdout);
	cli_put_hex(stdout, info->name); /* exact bytes, whatever wrote the row */
	printf(",\"held\":%s,\"owner\":", info->held ? "true" : "false");
	if (info->owner[0])
		cli_put_json(stdout, info->owner);
	else
		fputs("null", stdout);
	fputs(",\"holder\":", stdout);
	if (info->held)
		cli_put_json(stdout, info->holder);
	else
		fputs("null", stdout);
	printf(",\"fence\":%lld,\"remaining_ms\":%lld", (long long)info->fence,
	       (long long)(info->held ? info->remaining_ms : 0));
}

static void print_left(int64_t ms)
{
	if (ms >= 3600000)
		printf("%lldh%02lldm", (long long)(ms / 3600000), (long long)(ms / 60000 % 60));
	else if (ms >= 60000)
		printf("%lldm%02llds", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
	else
		printf("%lld.%03llds", (long long)(ms / 1000), (long long)(ms % 1000));
}

typedef struct list_state {
	bool json;
	int n;
	lks_conn *c;
	payload *p;
} list_state;

static int list_one(const lks_lease_info *info, void *arg)
{
	list_state *st = arg;
	read_payload(st->c, info->name, st->p); /* the rows are read already */
	if (st->json) {
		fputs(st->n ? ",\n  " : "\n  ", stdout);
		print_info_json(info);
		print_payload_json(st->p);
		fputc('}', stdout);
	} else {
		cli_put_text(stdout, info->name);
		fputc('\t', stdout);
		cli_put_text(stdout, info->owner[0] ? info->owner : "-");
		printf("\t%lld\t", (long long)info->fence);
		print_left(info->remaining_ms);
		fputc('\t', stdout);
		print_payload_text(st->p);
		fputc('\n', stdout);
	}
	st->n++;
	return 0;
}

int cli_list(int argc, char **argv)
{
	cli_common co = {0};
	bool json = false, print = false, force = false;
	list_state st = {0};
	int first, rc;
	lks_conn *c;
	if ((rc = parse(argc, argv, "j", &co, &json, &print, &force, &first)) >= 0 ||
	    (rc = operands(argc, first, 0, "list")) >= 0)
		return rc;
	if ((rc = cli_connect(&co, &c)))
		return rc;
	st.json = json;
	st.c = c;
	if (!(st.p = malloc(sizeof *st.p))) {
		cli_error("list: out of memory");
		lks_conn_close(c);
		return EXIT_FAILURE_DB;
	}
	if (json)
		fputs("[", stdout);
	else
		puts("NAME\tOWNER\tFENCE\tLEFT\tPAYLOAD");
	rc = lks_lease_list(c, list_one, &st);
	free(st.p);
	if (json)
		puts(st.n ? "\n]" : "]");
	if (rc)
		cli_error("list: %s", lks_conn_errmsg(c));
	lks_conn_close(c);
	return rc ? cli_exit_for(rc) : 0;
}

int cli_inspect(int argc, char **argv)
{
	cli_common co = {0};
	bool json = false, print = false, force = false;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	int first, rc;
	lks_conn *c;
	if ((rc = parse(argc, argv, "j", &co, &json, &print, &force, &first)) >= 0 ||
	    (rc = operands(argc, first, 1, "inspect")) >= 0)
		return rc;
	if ((rc = cli_connect(&co, &c)))
		return rc;
	rc = lks_lease_inspect(c, argv[first], &info);
	if (rc) {
		cli_error("inspect: %s", lks_conn_errmsg(c));
		lks_conn_close(c);
		return rc == LKS_EINVAL ? EXIT_USAGE : cli_exit_for(rc);
	}
	static payload p;
	read_payload(c, argv[first], &p);
	lks_conn_close(c);
	if (json) {
		print_info_json(&info);
		print_payload_json(&p);
		fputs("}\n", stdout);
		return 0;
	}
	fputs("name:    ", stdout);
	cli_put_text(stdout, info.name);
	printf("\nheld:    %s\n", info.held ? "yes" : "no");
	if (info.held) {
		fputs("owner:   ", stdout);
		cli_put_text(stdout, info.owner[0] ? info.owner : "-");
		fputs("\nholder:  ", stdout); /* anyone who can write the table wrote it */
		cli_put_text(stdout, info.holder);
		fputs("\nleft:    ", stdout);
		print_left(info.remaining_ms);
		fputs("\npayload: ", stdout);
		print_payload_text(&p);
		fputc('\n', stdout);
	}
	printf("fence:   %lld%s\n", (long long)info.fence, info.held ? "" : " (last granted)");
	return 0;
}

int cli_release(int argc, char **argv)
{
	cli_common co = {0};
	bool json = false, print = false, force = false;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	int first, rc;
	lks_conn *c;
	if ((rc = parse(argc, argv, "f", &co, &json, &print, &force, &first)) >= 0 ||
	    (rc = operands(argc, first, 1, "release")) >= 0)
		return rc;
	if (!force) {
		cli_error("release: needs --force (it frees a lease someone else holds; "
		          "lockstock run releases its own)");
		return EXIT_USAGE;
	}
	if ((rc = cli_connect(&co, &c)))
		return rc;
	rc = lks_lease_force_release(c, argv[first], &info);
	if (rc && rc != LKS_NOT_FOUND) {
		cli_error("release: %s", lks_conn_errmsg(c));
		lks_conn_close(c);
		return rc == LKS_EINVAL ? EXIT_USAGE : cli_exit_for(rc);
	}
	lks_conn_close(c);
	if (rc == LKS_NOT_FOUND) {
		fputs("not held: ", stdout);
		cli_put_text(stdout, info.name);
		printf(" (last fence %lld); nothing changed\n", (long long)info.fence);
		return EXIT_NOT_HELD;
	}
	fputs("released ", stdout);
	cli_put_text(stdout, info.name);
	fputs(" held by ", stdout);
	cli_put_text(stdout, info.owner[0] ? info.owner : "-");
	fputs(" (holder ", stdout);
	cli_put_text(stdout, info.holder);
	printf(", fence %lld, %lld ms left); its fenced writes now fail\n", (long long)info.fence,
	       (long long)info.remaining_ms);
	return 0;
}

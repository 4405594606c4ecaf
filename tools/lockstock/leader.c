/* lockstock leader NAME [--watch] [--json]: who leads election NAME (the
 * lease `lockstock elect NAME` campaigns for), its term and value; with
 * --watch, one line per change of leader until interrupted. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

enum { OPT_URL = 256, OPT_TABLE, OPT_JSON, OPT_WATCH, OPT_HELP };

static void put_value_json(const unsigned char *v, size_t len)
{
	char *text = malloc(len + 1);
	bool is_text = text != NULL;
	if (text) {
		memcpy(text, v, len);
		text[len] = '\0';
		is_text = strlen(text) == len && cli_utf8_valid(text);
	}
	fputs(",\"value\":", stdout);
	if (is_text)
		cli_put_json(stdout, text);
	else
		fputs("null", stdout);
	fputs(",\"value_hex\":\"", stdout);
	for (size_t i = 0; i < len; i++)
		printf("%02x", v[i]);
	fputc('"', stdout);
	free(text);
}

static void print_leader(const lks_lease_info *l, const unsigned char *v, size_t len, bool json)
{
	if (json) {
		fputs("{\"name\":", stdout);
		cli_put_json(stdout, l->name);
		printf(",\"held\":%s,\"term\":%lld,\"holder\":", l->held ? "true" : "false",
		       (long long)l->fence);
		if (l->held)
			cli_put_json(stdout, l->holder);
		else
			fputs("null", stdout);
		fputs(",\"owner\":", stdout);
		if (l->held && l->owner[0])
			cli_put_json(stdout, l->owner);
		else
			fputs("null", stdout);
		printf(",\"remaining_ms\":%lld", (long long)(l->held ? l->remaining_ms : 0));
		if (l->held)
			put_value_json(v, len);
		else
			fputs(",\"value\":null,\"value_hex\":null", stdout);
		fputs("}\n", stdout);
	} else if (!l->held) {
		fputs("no leader of ", stdout);
		cli_put_text(stdout, l->name);
		printf(" (last term %lld)\n", (long long)l->fence);
	} else {
		char *text = malloc(len + 1);
		fputs("leader of ", stdout);
		cli_put_text(stdout, l->name);
		fputs(": ", stdout);
		cli_put_text(stdout, l->owner[0] ? l->owner : l->holder);
		printf(", term %lld, %lld ms left, value ", (long long)l->fence,
		       (long long)l->remaining_ms);
		if (text) {
			memcpy(text, v, len);
			text[len] = '\0';
		}
		if (text && strlen(text) == len && cli_utf8_valid(text))
			cli_put_text(stdout, len ? text : "-");
		else
			printf("(%zu bytes)", len);
		fputc('\n', stdout);
		free(text);
	}
	fflush(stdout);
}

int cli_leader(int argc, char **argv)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, OPT_URL},
		{"table", required_argument, NULL, OPT_TABLE},
		{"json", no_argument, NULL, OPT_JSON},
		{"watch", no_argument, NULL, OPT_WATCH},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	static unsigned char value[LKS_LEASE_PAYLOAD_MAX];
	cli_common co = {0};
	bool json = false, watch = false;
	lks_lease_info seen = LKS_LEASE_INFO_INIT, now = LKS_LEASE_INFO_INIT;
	lks_conn *c;
	size_t len = 0;
	int opt, rc;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_URL: co.url = optarg; break;
		case OPT_TABLE: co.table = optarg; break;
		case OPT_JSON: json = true; break;
		case OPT_WATCH: watch = true; break;
		case 'h':
		case OPT_HELP: cli_help(stdout, "leader"); return 0;
		case ':':
			cli_error("leader: option %s needs a value (see lockstock leader --help)", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			cli_error("leader: unknown option %s (see lockstock leader --help)", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		cli_error("leader: expected one election NAME (see lockstock leader --help)");
		return EXIT_USAGE;
	}
	if ((rc = cli_connect(&co, &c)))
		return rc;
	rc = lks_election_leader(c, argv[optind], &now, value, sizeof value, &len);
	while (rc == LKS_OK) {
		print_leader(&now, value, len, json);
		if (!watch)
			break;
		seen = now;
		/* an hour at a time: a quiet election is not an error */
		while ((rc = lks_election_observe(c, argv[optind], &seen, 3600000, &now, value,
		                                  sizeof value, &len)) == LKS_TIMEOUT)
			;
	}
	if (rc)
		cli_error("leader: %s", lks_conn_errmsg(c));
	lks_conn_close(c);
	return rc == LKS_EINVAL ? EXIT_USAGE : rc ? cli_exit_for(rc) : 0;
}

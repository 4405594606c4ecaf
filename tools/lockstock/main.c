/* lockstock: guard jobs across replicas with fenced leases, and inspect and
 * administer the lease table. See `lockstock help`. */
#include <stdlib.h>
#include <string.h>
#include "cli.h"

/* --url's value stays readable in /proc/PID/cmdline for as long as the
 * process runs, and may carry a password: every subcommand gets a copy and
 * the original is blanked. Arguments after "--" are the command's own. */
static char *url_copies[8];
static size_t nurl_copies;

static int hide_urls(int argc, char **argv)
{
	for (int i = 2; i < argc && strcmp(argv[i], "--"); i++) {
		char *arg = NULL;
		size_t skip = 0;
		if (!strcmp(argv[i], "--url") && i + 1 < argc)
			arg = argv[++i];
		else if (!strncmp(argv[i], "--url=", 6))
			arg = argv[i], skip = 6;
		if (!arg)
			continue;
		if (nurl_copies == sizeof url_copies / sizeof *url_copies) {
			cli_error("too many --url options");
			return EXIT_USAGE;
		}
		char *copy = strdup(arg);
		if (!copy) {
			cli_error("out of memory");
			return EXIT_FAILURE_DB;
		}
		memset(arg + skip, '*', strlen(arg + skip));
		url_copies[nurl_copies++] = copy;
		argv[i] = copy;
	}
	return 0;
}

static void forget_urls(void)
{
	for (size_t i = 0; i < nurl_copies; i++) {
		explicit_bzero(url_copies[i], strlen(url_copies[i]));
		free(url_copies[i]);
	}
	nurl_copies = 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} subs[] = {{"run", cli_run},         {"install", cli_install}, {"list", cli_list},
	            {"inspect", cli_inspect}, {"release", cli_release}, {"once", cli_once},
	            {"purge", cli_purge},     {"elect", cli_elect},     {"leader", cli_leader},
	            {"check", cli_check}};
	const char *sub = argc > 1 ? argv[1] : NULL;
	if (!sub) {
		cli_help(stderr, NULL);
		return EXIT_USAGE;
	}
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
		if (!strcmp(sub, "help") && argc > 2 && !cli_help(stdout, argv[2])) {
			cli_error("help: no subcommand '%s' (run, elect, leader, install, list, inspect, release, once, purge, check)", argv[2]);
			return EXIT_USAGE;
		}
		if (strcmp(sub, "help") || argc <= 2)
			cli_help(stdout, NULL);
		return 0;
	}
	if (!strcmp(sub, "--version")) {
		printf("lockstock %s\n", LKS_VERSION_STRING);
		return 0;
	}
	for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
		if (strcmp(sub, subs[i].name))
			continue;
		int status = hide_urls(argc, argv);
		if (!status)
			status = subs[i].fn(argc - 1, argv + 1);
		forget_urls();
		return status;
	}
	cli_error("unknown subcommand '%s' (run, elect, leader, install, list, inspect, release, once, purge, check; see lockstock help)", sub);
	return EXIT_USAGE;
}

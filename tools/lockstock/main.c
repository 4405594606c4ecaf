/* lockstock: guard jobs across replicas with fenced leases, and inspect and
 * administer the lease table. See `lockstock help`. */
#include <string.h>
#include "cli.h"

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
	for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
		if (!strcmp(sub, subs[i].name))
			return subs[i].fn(argc - 1, argv + 1);
	cli_error("unknown subcommand '%s' (run, elect, leader, install, list, inspect, release, once, purge, check; see lockstock help)", sub);
	return EXIT_USAGE;
}

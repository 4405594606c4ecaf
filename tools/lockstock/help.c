/* The lockstock command: help pages. */
#include <string.h>
#include "cli.h"

static const char overview[] =
"NAME\n"
"    lockstock - guard jobs across replicas with fenced leases, and inspect\n"
"    and administer the lease table (PostgreSQL, MySQL/MariaDB)\n"
"\n"
"SYNOPSIS\n"
"    lockstock run NAME [options] -- COMMAND [ARGS...]\n"
"    lockstock install [--print]\n"
"    lockstock list [--json]\n"
"    lockstock inspect NAME [--json]\n"
"    lockstock release --force NAME\n"
"    lockstock help [SUBCOMMAND] | --help | --version\n"
"\n"
"    Every subcommand takes --url URL and --table NAME, and --help.\n"
"\n"
"DESCRIPTION\n"
"    A lease is a row in a table of the database your services already use.\n"
"    Each grant carries a fencing token that only grows; expiry is decided\n"
"    by the database server's clock. `lockstock run` holds a lease while a\n"
"    command runs, so a cron job or timer started on every replica runs on\n"
"    one of them at a time.\n"
"\n"
"CONNECTION\n"
"    --url URL        postgresql://user@host:port/db?... or\n"
"                     mysql://user@host:port/db?ssl-mode=VERIFY_IDENTITY&...\n"
"    LOCKSTOCK_URL    used when --url is absent; prefer it (or a password\n"
"                     file: PGPASSFILE, ~/.pgpass, MYSQL_PWD) to keep passwords\n"
"                     out of `ps`. lockstock never prints a password.\n"
"    --table NAME     lease table (default lks_lease); an identifier, may be\n"
"                     schema-qualified.\n"
"\n"
"EXIT STATUS\n"
"    0     success (run: the command's own status)\n"
"    1     release --force: the lease was not held; nothing changed\n"
"    64    bad usage: unknown option, missing --, bad duration, no URL\n"
"    69    the database is unreachable\n"
"    70    any other database or library error\n"
"    75    run: the lease is busy, or --wait ran out (see --busy-exit)\n"
"    79    run: the lease was lost while the command ran\n"
"    126   run: the command could not be executed; 127: not found\n"
"    128+N run: the command was killed by signal N\n"
"\n"
"    Run `lockstock help SUBCOMMAND` for each subcommand's page.\n";

static const char run_page[] =
"NAME\n"
"    lockstock run - run a command while holding a lease\n"
"\n"
"SYNOPSIS\n"
"    lockstock run NAME [--ttl D] [--wait D] [--owner TEXT] [--at-least D]\n"
"                       [--kill-after D] [--busy-exit N] [--pass-url]\n"
"                       [--url URL] [--table NAME] -- COMMAND [ARGS...]\n"
"\n"
"DESCRIPTION\n"
"    Acquires lease NAME, runs COMMAND, keeps the lease alive while it runs\n"
"    (renewed every third of the TTL on a connection of its own) and\n"
"    releases it when the command ends. When the lease is held elsewhere it\n"
"    does not run the command: it exits 75 at once, or after --wait.\n"
"\n"
"    The command's environment also has:\n"
"      LOCKSTOCK_LEASE   the lease name\n"
"      LOCKSTOCK_FENCE   this grant's fencing token (grows with every grant)\n"
"      LOCKSTOCK_HOLDER  this grant's holder id (32 hex characters)\n"
"      LOCKSTOCK_TABLE   the lease table, when --table was given\n"
"    LOCKSTOCK_URL is removed from it (it may hold the database password)\n"
"    unless --pass-url is given; --url is wiped from lockstock's argv after\n"
"    it is read, so /proc/PID/cmdline no longer shows it.\n"
"    Pass the fence to what the command writes, so a write from a run that\n"
"    lost its lease is refused (see the README: fenced writes from a shell\n"
"    or with lks_lease_adopt).\n"
"\n"
"    The command runs in a process group of its own, under a keeper that\n"
"    dies with lockstock: if lockstock is killed, even by SIGKILL, the\n"
"    whole group (the command and everything it started) is SIGKILLed.\n"
"    The group does not own the terminal: the command cannot read from it.\n"
"    SIGINT, SIGTERM and SIGHUP are forwarded to the group, once; signals\n"
"    ignored when lockstock started (nohup) stay ignored. lockstock\n"
"    waits for the command and exits with its status. If the lease is lost while the\n"
"    command runs (a renewal finds it taken over or force-released, or the\n"
"    database stays unreachable until the lease's local deadline), the\n"
"    command's group gets SIGTERM, then SIGKILL after --kill-after, and lockstock\n"
"    exits 79. A signal that arrives while lockstock is still waiting for\n"
"    the lease ends lockstock at once, with no command started.\n"
"\n"
;

/* split: C99 compilers need only take strings of 4095 bytes */
static const char run_options[] =
"OPTIONS\n"
"    --ttl D          lease time to live (default 30s). A lockstock that dies\n"
"                     (SIGKILL, crash, lost machine) keeps the lease at most\n"
"                     this long.\n"
"    --wait D         wait up to D for a busy lease (default 0: do not wait,\n"
"                     as a cron guard wants).\n"
"    --owner TEXT     label stored with the grant, shown by list and inspect\n"
"                     (default HOSTNAME:PID).\n"
"    --at-least D     hold the lease at least D after the start, even if the\n"
"                     command ends sooner, so a replica whose clock or\n"
"                     schedule is slightly off does not run the job again.\n"
"                     lockstock does not linger: it shortens the lease to the\n"
"                     time left, on the server's clock, and exits.\n"
"    --kill-after D   after a lost lease, wait D between SIGTERM and SIGKILL\n"
"                     (default 10s, at most TTL/4: a longer one is clamped\n"
"                     with a warning). The command is stopped once less\n"
"                     than D + TTL/20 (at most 250ms) is left before the\n"
"                     lease's local deadline (TTL/10 before the server's\n"
"                     expiry), checked every TTL/20, so with the database\n"
"                     silent SIGKILL lands before another replica can be\n"
"                     granted the lease. A lease taken away on the server\n"
"                     (release --force) is already free: the command may run\n"
"                     up to D into the next holder's lease; fence its writes.\n"
"    --pass-url       keep LOCKSTOCK_URL in the command's environment.\n"
"    --busy-exit N    exit status when the lease is busy (default 75; 0 for\n"
"                     cron setups that mail on any failure).\n"
"    --url, --table   see `lockstock help`.\n"
"\n"
"    Durations: a number and a unit: 500ms, 30s, 5m, 2h, 1d (or 0).\n"
"\n"
"EXIT STATUS\n"
"    The command's status when it ran (128+N when killed by signal N);\n"
"    75 (or --busy-exit) busy; 79 lease lost while running; 64 bad usage;\n"
"    69 database unreachable; 70 other database errors; 126/127 the command\n"
"    could not be executed / was not found.\n"
"\n"
"EXAMPLES\n"
"    # crontab on every replica: the report runs once per night\n"
"    0 3 * * * LOCKSTOCK_URL=postgresql://jobs@db/app lockstock run \\\n"
"        nightly-report --ttl 2m --at-least 5m -- /usr/local/bin/report\n"
"\n"
"    # wait up to a minute for the previous run to finish\n"
"    lockstock run reindex --wait 1m -- ./reindex.sh\n";

static const char install_page[] =
"NAME\n"
"    lockstock install - create the lease table\n"
"\n"
"SYNOPSIS\n"
"    lockstock install [--print] [--url URL] [--table NAME]\n"
"\n"
"DESCRIPTION\n"
"    Creates the lease table if it is missing (idempotent) and checks an\n"
"    existing one. A table from an older lockstock gains the owner column\n"
"    in place (catalog only), waiting at most 5 s for the table lock; run\n"
"    it again if a long transaction was in the way (exit 70).\n"
"\n"
"OPTIONS\n"
"    --print   print the CREATE TABLE statement for the URL's database\n"
"              instead, without connecting (for your migration tool).\n";

static const char list_page[] =
"NAME\n"
"    lockstock list - show the leases held now\n"
"\n"
"SYNOPSIS\n"
"    lockstock list [--json] [--url URL] [--table NAME]\n"
"\n"
"DESCRIPTION\n"
"    One line per held lease, in name order, tab-separated: NAME, OWNER\n"
"    (- when none), FENCE, and LEFT, the time until it expires on the\n"
"    server's clock. Control characters and bytes that are not UTF-8 in\n"
"    names and owners are shown as \\xNN, a backslash as \\\\.\n"
"\n"
"OPTIONS\n"
"    --json    a JSON array of objects: name, held, owner (null when none),\n"
"              holder, fence, remaining_ms.\n";

static const char inspect_page[] =
"NAME\n"
"    lockstock inspect - show one lease, held or not\n"
"\n"
"SYNOPSIS\n"
"    lockstock inspect NAME [--json] [--url URL] [--table NAME]\n"
"\n"
"DESCRIPTION\n"
"    Whether NAME is held, by which owner and holder, the time left, and\n"
"    its fence: the current grant's, or the last one granted when free\n"
"    (0: never granted).\n"
"\n"
"OPTIONS\n"
"    --json    one JSON object: name, held, owner, holder, fence,\n"
"              remaining_ms.\n";

static const char release_page[] =
"NAME\n"
"    lockstock release - free a lease held by a dead or stuck process\n"
"\n"
"SYNOPSIS\n"
"    lockstock release --force NAME [--url URL] [--table NAME]\n"
"\n"
"DESCRIPTION\n"
"    Frees NAME whoever holds it and advances its fence, so the old\n"
"    holder's renewals and fenced writes fail from now on (a `lockstock\n"
"    run` holding it stops its command and exits 79). A fenced write in\n"
"    flight finishes first. Prints the grant it ended. --force is required:\n"
"    `lockstock run` releases its own leases.\n"
"\n"
"EXIT STATUS\n"
"    0 released; 1 not held (nothing changed); 64, 69, 70 as for all.\n";

bool cli_help(FILE *f, const char *sub)
{
	static const struct {
		const char *name, *page, *more;
	} pages[] = {{"run", run_page, run_options}, {"install", install_page, ""},
	             {"list", list_page, ""},         {"inspect", inspect_page, ""},
	             {"release", release_page, ""}};
	if (!sub) {
		fputs(overview, f);
		return true;
	}
	for (size_t i = 0; i < sizeof pages / sizeof *pages; i++)
		if (!strcmp(sub, pages[i].name)) {
			fputs(pages[i].page, f);
			fputs(pages[i].more, f);
			return true;
		}
	return false;
}

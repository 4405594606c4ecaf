/* Command-line options of the inventory driver: defaults, parsing, --help.
 * Everything is validated before any database is touched. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "inventory.h"

const char *const strategy_names[S_COUNT] = {
	"naive", "optimistic", "pessimistic", "pessimistic-unfenced", "select-for-update", "atomic",
	"once", "pessimistic-all",
};

bool strategy_is_safe(strategy s)
{
	return s != S_NAIVE && s != S_PESSIMISTIC_UNFENCED;
}

void options_usage(FILE *out)
{
	fprintf(out,
	        "usage: inventory [options]\n"
	        "\n"
	        "Flash-sale load test: concurrent buyers on limited stock, one run per\n"
	        "strategy and database, then a table of the results. Naive overselling is\n"
	        "expected and reported; a safe strategy that breaks an invariant exits 1.\n"
	        "\n"
	        "Databases\n"
	        "  --url URL            postgresql://... or mysql://... (repeatable; default:\n"
	        "                       $LKS_PG_URL and $LKS_MYSQL_URL, which scripts/inventory.sh\n"
	        "                       sets for the throwaway servers it starts)\n"
	        "Strategies\n"
	        "  --strategy LIST      comma-separated, default all: naive, optimistic,\n"
	        "                       pessimistic, pessimistic-unfenced, select-for-update, atomic,\n"
	        "                       once (atomic, each order processed once by its request id),\n"
	        "                       pessimistic-all (every product's lease at once, for --items)\n"
	        "Workload\n"
	        "  --workers N          buyer threads, one connection each (default 16)\n"
	        "  --products N         products on sale (default 1)\n"
	        "  --stock N            initial stock per product (default 200)\n"
	        "  --qty N              units per purchase (default 1)\n"
	        "  --skew F             fraction of purchases aimed at product 1, the rest\n"
	        "                       spread evenly (default 0: even)\n"
	        "  --items K            distinct products per order, bought all or nothing\n"
	        "                       (default 1). With K > 1: pessimistic takes the leases\n"
	        "                       one by one in sorted order, pessimistic-all all at once,\n"
	        "                       select-for-update locks the rows in key order,\n"
	        "                       optimistic CASes every row in one transaction, atomic\n"
	        "                       runs one conditional UPDATE per row in one transaction\n"
	        "  --hot H              multi-item orders pick from products 1..H (default: all)\n"
	        "  --think-ms MS        think time inside the read-write window (default 2)\n"
	        "  --duration S         stop after S seconds (default 0: run until sold out)\n"
	        "  --max-duration S     safety stop for sold-out runs (default 120)\n"
	        "  --seed N             random seed (default 42)\n"
	        "Strategy settings\n"
	        "  --lease-ttl-ms MS    lease TTL (default 2000)\n"
	        "  --lease-wait-ms MS   how long a buyer waits for a lease (default 10000)\n"
	        "  --max-attempts N     optimistic attempts per purchase (default 100)\n"
	        "Faults (lease strategies)\n"
	        "  --pause F            fraction of lease holders that stall 1.5 x TTL inside\n"
	        "                       the critical section (default 0)\n"
	        "  --crash F            fraction of lease holders that abandon the lease\n"
	        "                       without releasing it (default 0)\n"
	        "Duplicate deliveries\n"
	        "  --duplicates F       fraction of orders delivered twice, as clients that retry\n"
	        "                       after a timeout and queues that redeliver do: half while\n"
	        "                       the first attempt runs (another buyer), half after it\n"
	        "                       completed (default 0); charged_twice counts the orders\n"
	        "                       paid for more than once\n"
	        "Output\n"
	        "  --json FILE          results as JSON ('-' for stdout)\n"
	        "  --csv FILE           results as CSV ('-' for stdout)\n"
	        "  --sweep              run over a range of contention (workers 1..32 on 1 and\n"
	        "                       8 products) and write --csv and --chart\n"
	        "  --chart FILE         SVG chart for --sweep (default inventory-sweep.svg)\n"
	        "  --quiet              no progress line\n"
	        "  --help               this text\n"
	        "\n"
	        "Exit status: 0 ok, 1 a safe strategy broke an invariant, 2 bad options or an\n"
	        "unreachable database (no data touched).\n");
}

/* Every value is shown through lks_url_redact: a URL that is rejected
 * before it is parsed still carries its password. */
static int bad(const char *opt, const char *val, const char *why)
{
	char shown[1024] = "";
	if (val && lks_url_redact(val, shown, sizeof shown) != LKS_OK)
		snprintf(shown, sizeof shown, "(%zu bytes, not shown)", strlen(val));
	fprintf(stderr, "inventory: %s %s: %s (see --help)\n", opt, shown, why);
	return INV_EXIT_USAGE;
}

static int int_arg(const char *opt, const char *v, long lo, long hi, int *out)
{
	char *end;
	long n;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || end == v || n < lo || n > hi) {
		char why[96];
		snprintf(why, sizeof why, "must be an integer from %ld to %ld", lo, hi);
		return bad(opt, v, why);
	}
	*out = (int)n;
	return 0;
}

static int frac_arg(const char *opt, const char *v, double lo, double hi, double *out)
{
	char *end;
	double d;
	errno = 0;
	d = strtod(v, &end);
	if (errno || *end || end == v || !(d >= lo && d <= hi)) {
		char why[96];
		snprintf(why, sizeof why, "must be a number from %g to %g", lo, hi);
		return bad(opt, v, why);
	}
	*out = d;
	return 0;
}

static int strategies_arg(const char *v, workload *w)
{
	char buf[256], *tok, *save = NULL;
	if (strlen(v) >= sizeof buf)
		return bad("--strategy", v, "too long");
	strcpy(buf, v);
	memset(w->strategies, 0, sizeof w->strategies);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int found = 0;
		if (!strcmp(tok, "all")) {
			for (int s = 0; s < S_COUNT; s++)
				w->strategies[s] = true;
			continue;
		}
		for (int s = 0; s < S_COUNT; s++)
			if (!strcmp(tok, strategy_names[s])) {
				w->strategies[s] = true;
				found = 1;
			}
		if (!found)
			return bad("--strategy", tok, "unknown strategy");
	}
	for (int s = 0; s < S_COUNT; s++)
		if (w->strategies[s])
			return 0;
	return bad("--strategy", v, "names no strategy");
}

int options_parse(int argc, char **argv, workload *w)
{
	enum { O_URL = 256, O_STRATEGY, O_WORKERS, O_PRODUCTS, O_STOCK, O_QTY, O_SKEW, O_THINK,
	       O_DURATION, O_MAXDUR, O_SEED, O_TTL, O_WAIT, O_ATTEMPTS, O_PAUSE, O_CRASH, O_DUPLICATES, O_JSON,
	       O_CSV, O_SWEEP, O_CHART, O_QUIET, O_HELP, O_ITEMS, O_HOT };
	static const struct option longopts[] = {
		{"url", required_argument, 0, O_URL},
		{"strategy", required_argument, 0, O_STRATEGY},
		{"workers", required_argument, 0, O_WORKERS},
		{"products", required_argument, 0, O_PRODUCTS},
		{"stock", required_argument, 0, O_STOCK},
		{"qty", required_argument, 0, O_QTY},
		{"skew", required_argument, 0, O_SKEW},
		{"items", required_argument, 0, O_ITEMS},
		{"hot", required_argument, 0, O_HOT},
		{"think-ms", required_argument, 0, O_THINK},
		{"duration", required_argument, 0, O_DURATION},
		{"max-duration", required_argument, 0, O_MAXDUR},
		{"seed", required_argument, 0, O_SEED},
		{"lease-ttl-ms", required_argument, 0, O_TTL},
		{"lease-wait-ms", required_argument, 0, O_WAIT},
		{"max-attempts", required_argument, 0, O_ATTEMPTS},
		{"pause", required_argument, 0, O_PAUSE},
		{"crash", required_argument, 0, O_CRASH},
		{"duplicates", required_argument, 0, O_DUPLICATES},
		{"json", required_argument, 0, O_JSON},
		{"csv", required_argument, 0, O_CSV},
		{"sweep", no_argument, 0, O_SWEEP},
		{"chart", required_argument, 0, O_CHART},
		{"quiet", no_argument, 0, O_QUIET},
		{"help", no_argument, 0, O_HELP},
		{0, 0, 0, 0},
	};
	int opt, rc = 0, seed = 42;
	*w = (workload){.workers = 16, .products = 1, .stock = 200, .qty = 1, .think_ms = 2, .items = 1,
	                .max_duration_s = 120, .lease_ttl_ms = 2000, .lease_wait_ms = 10000,
	                .max_attempts = 100};
	for (int s = 0; s < S_COUNT; s++)
		w->strategies[s] = true;
	opterr = 0;
	optind = 1;
	while (rc == 0 && (opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case O_URL:
			if (w->nurls == INV_MAX_URLS)
				return bad("--url", optarg, "at most 4 URLs");
			if (strncmp(optarg, "postgres", 8) && strncmp(optarg, "mysql://", 8) &&
			    strncmp(optarg, "mariadb://", 10))
				return bad("--url", optarg, "must start with postgresql://, mysql:// or mariadb://");
			w->urls[w->nurls++] = optarg;
			break;
		case O_STRATEGY: rc = strategies_arg(optarg, w); break;
		case O_WORKERS: rc = int_arg("--workers", optarg, 1, 256, &w->workers); break;
		case O_PRODUCTS: rc = int_arg("--products", optarg, 1, 100000, &w->products); break;
		case O_STOCK: rc = int_arg("--stock", optarg, 1, 100000000, &w->stock); break;
		case O_QTY: rc = int_arg("--qty", optarg, 1, 1000000, &w->qty); break;
		case O_SKEW: rc = frac_arg("--skew", optarg, 0, 1, &w->skew); break;
		case O_ITEMS: rc = int_arg("--items", optarg, 1, INV_MAX_ITEMS, &w->items); break;
		case O_HOT: rc = int_arg("--hot", optarg, 1, 100000, &w->hot); break;
		case O_THINK: rc = int_arg("--think-ms", optarg, 0, 60000, &w->think_ms); break;
		case O_DURATION: rc = frac_arg("--duration", optarg, 0, 86400, &w->duration_s); break;
		case O_MAXDUR: rc = frac_arg("--max-duration", optarg, 0.1, 86400, &w->max_duration_s); break;
		case O_SEED: rc = int_arg("--seed", optarg, 0, 2147483647, &seed); break;
		case O_TTL: rc = int_arg("--lease-ttl-ms", optarg, 1, 3600000, &w->lease_ttl_ms); break;
		case O_WAIT: rc = int_arg("--lease-wait-ms", optarg, 0, 3600000, &w->lease_wait_ms); break;
		case O_ATTEMPTS: rc = int_arg("--max-attempts", optarg, 1, 1000000, &w->max_attempts); break;
		case O_PAUSE: rc = frac_arg("--pause", optarg, 0, 1, &w->pause); break;
		case O_CRASH: rc = frac_arg("--crash", optarg, 0, 1, &w->crash); break;
		case O_DUPLICATES: rc = frac_arg("--duplicates", optarg, 0, 0.9, &w->duplicates); break;
		case O_JSON: w->json = optarg; break;
		case O_CSV: w->csv = optarg; break;
		case O_SWEEP: w->sweep = true; break;
		case O_CHART: w->chart = optarg; break;
		case O_QUIET: w->quiet = true; break;
		case O_HELP: options_usage(stdout); return -1;
		default:
			return bad(argv[optind - 1], NULL, "unknown option or missing value");
		}
	}
	if (rc)
		return rc;
	if (optind < argc)
		return bad(argv[optind], NULL, "unexpected argument");
	if (w->pause + w->crash > 1)
		return bad("--pause/--crash", NULL, "together at most 1");
	if (w->qty > w->stock)
		return bad("--qty", NULL, "larger than --stock: nothing could be sold");
	if (!w->hot)
		w->hot = w->products;
	if (w->hot > w->products || w->items > w->hot)
		return bad("--items/--hot", NULL, "need items <= hot <= products");
	if (w->items > 1 && (w->duplicates > 0 || w->pause > 0 || w->crash > 0))
		return bad("--items", NULL, "multi-item orders do not take --duplicates, --pause or --crash");
	w->seed = (uint64_t)seed;
	if (w->sweep && !w->chart)
		w->chart = "inventory-sweep.svg";
	if (w->nurls == 0) {
		const char *pg = getenv("LKS_PG_URL"), *my = getenv("LKS_MYSQL_URL");
		if (pg && *pg)
			w->urls[w->nurls++] = pg;
		if (my && *my)
			w->urls[w->nurls++] = my;
		if (w->nurls == 0)
			return bad("--url", NULL,
			           "no database: give --url, set LKS_PG_URL / LKS_MYSQL_URL, or run "
			           "scripts/inventory.sh, which starts throwaway servers");
	}
	return 0;
}

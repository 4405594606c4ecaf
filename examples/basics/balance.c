/* Optimistic update of an account balance with lks_retry: 8 threads move
 * money between two accounts at once; every transfer reads both rows and
 * writes them with version checks, retried on conflict. The total never
 * changes and no transfer is lost. Usage: balance URL */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <lockstock.h>

#define THREADS 8
#define TRANSFERS 50

static const char *url;

typedef struct transfer { int from, to, amount; } transfer;

/* one attempt: read both balances, write both with their versions, in one
 * transaction (a conflict on either rolls both back and retries). Rows are
 * always touched in id order, so two transfers never deadlock. */
static int move(lks_conn *c, int attempt, void *arg)
{
	transfer *t = arg;
	int lo = t->from < t->to ? t->from : t->to, hi = t->from < t->to ? t->to : t->from;
	lks_row_ref rows[2] = {{"accounts", "id", "version", LKS_INT(lo)},
	                       {"accounts", "id", "version", LKS_INT(hi)}};
	const char *cols[] = {"balance"};
	const char *const *texts;
	int64_t ver[2], bal[2], nv;
	int rc;
	(void)attempt;
	if ((rc = lks_conn_exec(c, "BEGIN")))
		return rc;
	for (int i = 0; i < 2; i++) {
		if ((rc = lks_cas_read(c, &rows[i], cols, 1, &ver[i], &texts)))
			return rc;
		bal[i] = atoll(texts[0]);
	}
	/* money leaves `from` and arrives at `to` */
	int64_t delta = t->from == lo ? -t->amount : t->amount;
	for (int i = 0; i < 2; i++) {
		lks_value v = LKS_INT(bal[i] + (i == 0 ? delta : -delta));
		if ((rc = lks_cas_update(c, &rows[i], ver[i], cols, &v, 1, &nv)))
			return rc; /* lks_retry rolls back */
	}
	return lks_conn_exec(c, "COMMIT");
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg, *done = calloc(1, sizeof *done);
	lks_conn *c = NULL;
	lks_retry_options o = LKS_RETRY_OPTIONS_INIT; /* until it applies, for up to 10 s */
	if (lks_conn_open(&c, url) == LKS_OK)
		for (int i = 0; i < TRANSFERS; i++) {
			transfer t = {id % 2 ? 1 : 2, id % 2 ? 2 : 1, 1 + i % 7};
			if (lks_retry(c, &o, move, &t, NULL) == LKS_OK)
				++*done;
			else
				fprintf(stderr, "transfer failed: %s\n", lks_conn_errmsg(c));
		}
	lks_conn_close(c);
	return done;
}

int main(int argc, char **argv)
{
	lks_conn *c = NULL;
	pthread_t th[THREADS];
	int64_t total = 0;
	int moved = 0;
	if (argc != 2) {
		fprintf(stderr, "usage: balance URL\n");
		return 64;
	}
	url = argv[1];
	lks_library_init();
	if (lks_conn_open(&c, url)) {
		fprintf(stderr, "balance: %s\n", lks_conn_errmsg(c));
		return 69;
	}
	lks_conn_exec(c, "DROP TABLE IF EXISTS accounts");
	if (lks_conn_exec(c, "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL,"
	                     " version bigint NOT NULL)") ||
	    lks_conn_exec(c, "INSERT INTO accounts VALUES (1, 1000000, 0), (2, 1000000, 0)")) {
		fprintf(stderr, "balance: %s\n", lks_conn_errmsg(c));
		return 70;
	}
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
	for (int i = 0; i < THREADS; i++) {
		void *done;
		pthread_join(th[i], &done);
		moved += *(int *)done;
		free(done);
	}
	lks_conn_query_int(c, "SELECT sum(balance) FROM accounts", NULL, 0, &total);
	printf("transfers %d of %d, total %lld (expected 2000000)\n", moved, THREADS * TRANSFERS,
	       (long long)total);
	lks_conn_close(c);
	return moved == THREADS * TRANSFERS && total == 2000000 ? 0 : 1;
}

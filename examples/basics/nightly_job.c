/* A lease-guarded job: whichever replica gets the lease runs the job,
 * keeps the lease alive with auto-renew while it works, and writes its
 * result through a fenced write, so a replica that stalled past its lease
 * writes nothing. Usage: nightly_job URL */
#include <stdio.h>
#include <lockstock.h>
#include <unistd.h>

static void lost(const lks_lease *l, int status, void *arg)
{
	(void)arg;
	fprintf(stderr, "lease %s lost (%s): stop working\n", lks_lease_name(l), lks_strerror(status));
}

static int write_report(lks_conn *c, int64_t fence, void *arg)
{
	char sql[160];
	/* the fence goes with the data: a reader can tell which run wrote it */
	snprintf(sql, sizeof sql, "INSERT INTO reports (fence, body) VALUES (%lld, '%s')",
	         (long long)fence, (const char *)arg);
	return lks_conn_exec(c, sql);
}

int main(int argc, char **argv)
{
	lks_conn *c = NULL;
	lks_lease *l = NULL;
	lks_lease_autorenew_options ao = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	int rc;
	if (argc != 2) {
		fprintf(stderr, "usage: nightly_job URL\n");
		return 64;
	}
	lks_library_init();
	if (lks_conn_open(&c, argv[1]) || lks_lease_install(c)) {
		fprintf(stderr, "nightly_job: %s\n", lks_conn_errmsg(c));
		lks_conn_close(c);
		return 69;
	}
	lks_conn_exec(c, "CREATE TABLE IF NOT EXISTS reports (fence bigint NOT NULL, body varchar(100))");
	rc = lks_lease_acquire(&l, c, "nightly", 3000, 0, NULL);
	if (rc == LKS_BUSY) {
		printf("another replica runs the job\n");
		lks_conn_close(c);
		return 0;
	}
	if (rc) {
		fprintf(stderr, "nightly_job: %s\n", lks_conn_errmsg(c));
		lks_conn_close(c);
		return 70;
	}
	ao.on_lost = lost;
	lks_lease_autorenew_start(l, c, NULL, &ao);
	sleep(4); /* the work: longer than the TTL, kept by auto-renew */
	rc = lks_lease_fenced_write(c, l, write_report, "done");
	printf("report written with fence %lld: %s\n", (long long)lks_lease_fence(l), lks_strerror(rc));
	lks_lease_release(c, l);
	lks_lease_free(l);
	lks_conn_close(c);
	return rc == LKS_OK ? 0 : 1;
}

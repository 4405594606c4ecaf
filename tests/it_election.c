/* Integration: lease payloads and leader election. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include "it.h"

static int fail_after_payload(lks_conn *c, int64_t fence, void *arg)
{
	(void)fence;
	int rc = lks_lease_set_payload(c, arg, "rolled back", 11);
	return rc ? rc : LKS_CONFLICT; /* the caller's failure: roll back */
}

void lease_payload_set_and_shown(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	lks_lease *l = NULL, *next = NULL;
	static unsigned char big[LKS_LEASE_PAYLOAD_MAX], back[LKS_LEASE_PAYLOAD_MAX + 1];
	char small[4];
	size_t len = 99;
	o.payload = "hello";
	o.payload_len = 5;
	assert_int_equal(lks_lease_acquire(&l, f->c, "p", 120000, 0, &o), LKS_OK);
	assert_int_equal(lks_lease_payload(other, "p", &info, back, sizeof back, &len), LKS_OK);
	assert_true(info.held);
	assert_int_equal(info.fence, lks_lease_fence(l));
	assert_int_equal(len, 5);
	assert_memory_equal(back, "hello", 5);
	/* a buffer too small says how much is needed, and changes nothing */
	assert_int_equal(lks_lease_payload(other, "p", &info, small, sizeof small, &len), LKS_EINVAL);
	assert_int_equal(len, 5);
	assert_int_equal(lks_lease_payload(other, "p", &info, NULL, 0, &len), LKS_EINVAL);
	assert_int_equal(len, 5);
	/* the largest payload, every byte value, NULs included */
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7);
	assert_int_equal(lks_lease_set_payload(f->c, l, big, sizeof big), LKS_OK);
	assert_int_equal(lks_lease_payload(other, "p", &info, back, sizeof back, &len), LKS_OK);
	assert_int_equal(len, sizeof big);
	assert_memory_equal(back, big, sizeof big);
	/* bad input changes nothing */
	assert_int_equal(lks_lease_set_payload(f->c, l, big, LKS_LEASE_PAYLOAD_MAX + 1), LKS_EINVAL);
	assert_int_equal(lks_lease_set_payload(f->c, l, NULL, 3), LKS_EINVAL);
	assert_int_equal(lks_lease_set_payload(f->c, NULL, "x", 1), LKS_EINVAL);
	assert_int_equal(lks_lease_payload(other, NULL, &info, back, sizeof back, &len), LKS_EINVAL);
	assert_int_equal(lks_lease_payload(other, "p", NULL, back, sizeof back, &len), LKS_EINVAL);
	o.payload_len = LKS_LEASE_PAYLOAD_MAX + 1;
	assert_int_equal(lks_lease_acquire(&next, other, "q", 1000, 0, &o), LKS_EINVAL);
	assert_null(next);
	/* inside a fenced write: part of its transaction, rolled back with it */
	assert_int_equal(lks_lease_fenced_write(f->c, l, fail_after_payload, l), LKS_CONFLICT);
	assert_int_equal(lks_lease_payload(other, "p", &info, back, sizeof back, &len), LKS_OK);
	assert_int_equal(len, sizeof big);
	/* an empty payload is a payload of 0 bytes */
	assert_int_equal(lks_lease_set_payload(f->c, l, NULL, 0), LKS_OK);
	assert_int_equal(lks_lease_payload(other, "p", &info, back, sizeof back, &len), LKS_OK);
	assert_int_equal(len, 0);
	assert_int_equal(lks_lease_set_payload(f->c, l, "v1", 2), LKS_OK);
	/* released: none shown; the next grant starts without it */
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	assert_int_equal(lks_lease_payload(other, "p", &info, back, sizeof back, &len), LKS_OK);
	assert_false(info.held);
	assert_int_equal(len, 0);
	assert_int_equal(lks_lease_acquire(&next, other, "p", 10000, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_payload(f->c, "p", &info, back, sizeof back, &len), LKS_OK);
	assert_true(info.held);
	assert_int_equal(len, 0);
	/* the old grant cannot write the new one's payload */
	assert_int_equal(lks_lease_set_payload(f->c, l, "stale", 5), LKS_LOST);
	assert_int_equal(lks_lease_payload(f->c, "p", &info, back, sizeof back, &len), LKS_OK);
	assert_int_equal(len, 0);
	/* never granted: free, nothing */
	assert_int_equal(lks_lease_payload(f->c, "never", &info, back, sizeof back, &len), LKS_OK);
	assert_false(info.held);
	assert_int_equal(info.fence, 0);
	assert_int_equal(lks_lease_release(other, next), LKS_OK);
	lks_lease_free(l);
	lks_lease_free(next);
	lks_conn_close(other);
}

/* A lease table made before payloads: grants without one work, a payload
 * says to install, install adds the column in place. */
void lease_payload_migration(void **state)
{
	fx *f = *state;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *l = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	char back[8];
	size_t len = 0;
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL)
		t_exec(f->c, "CREATE TABLE pre (name text PRIMARY KEY, holder text, fence bigint NOT NULL,"
		             " acquired_at timestamptz, expires_at timestamptz NOT NULL, owner text)");
	else
		t_exec(f->c, "CREATE TABLE pre (name VARBINARY(255) NOT NULL PRIMARY KEY,"
		             " holder CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,"
		             " fence BIGINT NOT NULL, acquired_at DATETIME(6) NULL,"
		             " expires_at DATETIME(6) NOT NULL, owner VARBINARY(288) NULL,"
		             " writes BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB");
	assert_int_equal(lks_lease_set_table(f->c, "pre"), LKS_OK);
	assert_int_equal(lks_lease_acquire(&l, f->c, "m", 5000, 0, NULL), LKS_OK);
	assert_int_equal(lks_lease_set_payload(f->c, l, "x", 1), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "install"));
	assert_int_equal(lks_lease_payload(f->c, "m", &info, back, sizeof back, &len), LKS_EINVAL);
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
	o.payload = "x";
	o.payload_len = 1;
	assert_int_equal(lks_lease_acquire(&l, f->c, "m", 5000, 0, &o), LKS_EINVAL);
	assert_null(l);
	assert_int_equal(lks_lease_install(f->c), LKS_OK);
	assert_int_equal(lks_lease_acquire(&l, f->c, "m", 5000, 0, &o), LKS_OK);
	assert_int_equal(lks_lease_payload(f->c, "m", &info, back, sizeof back, &len), LKS_OK);
	assert_int_equal(len, 1);
	assert_int_equal(info.fence, 2); /* the row was kept */
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
}

void election_terms_values_and_observe(void **state)
{
	fx *f = *state;
	lks_conn *b = t_open(f->url), *w = t_open(f->url);
	lks_lease *la = NULL, *lb = NULL, *lc = NULL;
	lks_lease_info seen = LKS_LEASE_INFO_INIT, now = LKS_LEASE_INFO_INIT;
	char value[64];
	size_t len = 0;
	/* nobody leads yet */
	assert_int_equal(lks_election_leader(w, "lead", &seen, value, sizeof value, &len), LKS_OK);
	assert_false(seen.held);
	assert_int_equal(lks_election_observe(w, "lead", &seen, 100, &now, value, sizeof value, &len),
	                 LKS_TIMEOUT);
	/* a takes office: observe sees it, with its value and term */
	assert_int_equal(lks_election_campaign(&la, f->c, "lead", "a:1", 3, 10000, 0, NULL), LKS_OK);
	assert_int_equal(lks_election_observe(w, "lead", &seen, 30000, &now, value, sizeof value, &len),
	                 LKS_OK);
	assert_true(now.held);
	assert_int_equal(now.fence, lks_lease_fence(la));
	assert_int_equal(len, 3);
	assert_memory_equal(value, "a:1", 3);
	seen = now;
	/* b campaigns without waiting: busy */
	assert_int_equal(lks_election_campaign(&lb, b, "lead", "b", 1, 10000, 0, NULL), LKS_BUSY);
	assert_null(lb);
	/* proclaim: a new value, same term; observe waits for leaders only */
	assert_int_equal(lks_election_proclaim(f->c, la, "a:2", 3), LKS_OK);
	assert_int_equal(lks_election_leader(w, "lead", &now, value, sizeof value, &len), LKS_OK);
	assert_memory_equal(value, "a:2", 3);
	assert_int_equal(now.fence, seen.fence);
	assert_int_equal(lks_election_observe(w, "lead", &seen, 100, &now, value, sizeof value, &len),
	                 LKS_TIMEOUT);
	/* a resigns: observe sees nobody, then b's term, strictly greater */
	assert_int_equal(lks_election_resign(f->c, la), LKS_OK);
	assert_int_equal(lks_election_observe(w, "lead", &seen, 30000, &now, value, sizeof value, &len),
	                 LKS_OK);
	assert_false(now.held);
	seen = now;
	assert_int_equal(lks_election_campaign(&lb, b, "lead", "b", 1, 10000, 5000, NULL), LKS_OK);
	assert_int_equal(lks_election_observe(w, "lead", &seen, 30000, &now, value, sizeof value, &len),
	                 LKS_OK);
	assert_true(now.held);
	assert_true(now.fence > lks_lease_fence(la));
	assert_memory_equal(value, "b", 1);
	/* the old leader's proclaim is refused; b's term taken away on the
	 * server ends its proclaims too, and c's term is greater again */
	assert_int_equal(lks_election_proclaim(f->c, la, "a:3", 3), LKS_LOST);
	assert_int_equal(lks_lease_force_release(w, "lead", NULL), LKS_OK);
	assert_int_equal(lks_election_proclaim(b, lb, "b:2", 3), LKS_LOST);
	assert_int_equal(lks_election_campaign(&lc, f->c, "lead", NULL, 0, 10000, 5000, NULL), LKS_OK);
	assert_true(lks_lease_fence(lc) > lks_lease_fence(lb));
	assert_int_equal(lks_election_leader(w, "lead", &now, value, sizeof value, &len), LKS_OK);
	assert_int_equal(len, 0);
	/* bad input */
	lks_lease *none = NULL;
	assert_int_equal(lks_election_campaign(&none, f->c, "lead", NULL, 3, 1000, 0, NULL), LKS_EINVAL);
	assert_null(none);
	assert_int_equal(lks_election_observe(w, "lead", &seen, -1, &now, value, sizeof value, &len),
	                 LKS_EINVAL);
	assert_int_equal(lks_election_observe(w, "", &seen, 10, &now, value, sizeof value, &len),
	                 LKS_EINVAL);
	assert_int_equal(lks_election_resign(f->c, lc), LKS_OK);
	lks_lease_free(la);
	lks_lease_free(lb);
	lks_lease_free(lc);
	lks_conn_close(b);
	lks_conn_close(w);
}

/* the child's part: in office as "dead" (out[0]: its term) */
static void take_office(lks_conn *c, int64_t out[2], void *arg)
{
	lks_lease *l = NULL;
	(void)arg;
	if (lks_election_campaign(&l, c, "killed", "dead", 4, 1500, 0, NULL) == LKS_OK)
		out[0] = lks_lease_fence(l);
}

/* Leaders SIGKILLed in office, three times: no resign, the session gone.
 * An observer sees each term end; a waiting candidate takes office at the
 * dead leader's expiry on the server's clock (not before) with a greater
 * term; the dead term's value is never shown as the new leader's. */
void election_killed_leader_replaced_at_ttl(void **state)
{
	fx *f = *state;
	lks_conn *w = t_open(f->url);
	int64_t last = 0;
	for (int round = 0; round < 3; round++) {
		lks_lease_info seen = LKS_LEASE_INFO_INIT, now = LKS_LEASE_INFO_INIT;
		lks_lease *l = NULL;
		int64_t got[2];
		int status;
		char value[64];
		size_t len = 0;
		pid_t pid = t_fork_holder(f->url, take_office, NULL, got);
		int64_t term = got[0];
		assert_true(term > 0);
		assert_true(term > last);
		assert_int_equal(lks_election_leader(w, "killed", &seen, value, sizeof value, &len), LKS_OK);
		assert_true(seen.held);
		assert_int_equal(seen.fence, term);
		assert_memory_equal(value, "dead", 4);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		t_exec(f->c, "CREATE TABLE dead_term AS SELECT expires_at FROM lks_lease WHERE name = 'killed'");
		/* the observer: the dead term ends (nobody) or the next begins */
		assert_int_equal(lks_election_observe(w, "killed", &seen, 60000, &now, value, sizeof value,
		                                      &len),
		                 LKS_OK);
		assert_true(!now.held || now.fence > term);
		assert_int_equal(lks_election_campaign(&l, f->c, "killed", "next", 4, 60000, 60000, NULL),
		                 LKS_OK);
		assert_true(lks_lease_fence(l) > term);
		assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease l, dead_term d WHERE"
		                              " l.name = 'killed' AND l.acquired_at >= d.expires_at"),
		                 1);
		t_exec(f->c, "DROP TABLE dead_term");
		assert_int_equal(lks_election_leader(w, "killed", &now, value, sizeof value, &len), LKS_OK);
		assert_int_equal(now.fence, lks_lease_fence(l));
		assert_int_equal(len, 4);
		assert_memory_equal(value, "next", 4);
		last = lks_lease_fence(l);
		assert_int_equal(lks_election_resign(f->c, l), LKS_OK);
		lks_lease_free(l);
	}
	lks_conn_close(w);
}

/* A resign wakes an observer waiting in the name's line: it returns with
 * nobody in office, then with the next term; many rounds, observed in
 * order, never a term twice. (How fast: bench/election_bench.) */
void election_observer_follows_resigns(void **state)
{
	fx *f = *state;
	lks_conn *w = t_open(f->url);
	lks_lease_info seen = LKS_LEASE_INFO_INIT, now = LKS_LEASE_INFO_INIT;
	char value[16];
	size_t len;
	int64_t last = 0;
	for (int i = 0; i < 20; i++) {
		lks_lease *l = NULL;
		char v[16];
		snprintf(v, sizeof v, "r%d", i);
		assert_int_equal(lks_election_campaign(&l, f->c, "follow", v, strlen(v), 60000, 0, NULL),
		                 LKS_OK);
		assert_int_equal(lks_election_observe(w, "follow", i ? &seen : NULL, 60000, &now, value,
		                                      sizeof value, &len),
		                 LKS_OK);
		assert_true(now.held);
		assert_true(now.fence > last);
		assert_int_equal(now.fence, lks_lease_fence(l));
		assert_int_equal(len, strlen(v));
		assert_memory_equal(value, v, len);
		last = now.fence;
		seen = now;
		assert_int_equal(lks_election_resign(f->c, l), LKS_OK);
		lks_lease_free(l);
		assert_int_equal(lks_election_observe(w, "follow", &seen, 60000, &now, value,
		                                      sizeof value, &len),
		                 LKS_OK);
		assert_false(now.held);
		seen = now;
	}
	lks_conn_close(w);
}

/* ---- candidates and an observer --------------------------------------- */

enum { CANDIDATES = 8 };

typedef struct ballot {
	const char *url;
	int terms;
	atomic_int inside, overlaps, errors, done;
	pthread_mutex_t mu;
	int64_t last_term;
	int regressions;
} ballot;

static int count_term(lks_conn *c, int64_t fence, void *arg)
{
	int64_t rows = 0;
	lks_value p = LKS_INT(fence);
	(void)arg;
	return t_int(c, &rows, "UPDATE terms SET n = n + 1, last = ? WHERE id = 1", &p, 1);
}

static void *candidate(void *arg)
{
	ballot *b = arg;
	lks_conn *c = NULL;
	char me[16];
	snprintf(me, sizeof me, "c%p", (void *)&c);
	if (lks_conn_open(&c, b->url) != LKS_OK) {
		atomic_fetch_add(&b->errors, 1);
		lks_conn_close(c);
		return NULL;
	}
	for (int i = 0; i < b->terms; i++) {
		lks_lease *l = NULL;
		/* every third term ends with the leader gone (a crash: no resign),
		 * so the next takes office at its TTL */
		bool crash = i % 3 == 2;
		if (lks_election_campaign(&l, c, "office", me, strlen(me), crash ? 1000 : 20000, 60000, NULL) !=
		    LKS_OK) {
			atomic_fetch_add(&b->errors, 1);
			continue;
		}
		if (atomic_fetch_add(&b->inside, 1))
			atomic_fetch_add(&b->overlaps, 1);
		pthread_mutex_lock(&b->mu);
		if (lks_lease_fence(l) <= b->last_term)
			b->regressions++;
		b->last_term = lks_lease_fence(l);
		pthread_mutex_unlock(&b->mu);
		if (lks_election_proclaim(c, l, "working", 7) != LKS_OK ||
		    lks_lease_fenced_write(c, l, count_term, NULL) != LKS_OK)
			atomic_fetch_add(&b->errors, 1);
		atomic_fetch_sub(&b->inside, 1);
		if (crash) {
			/* gone: it writes nothing more; a stalled leader's proclaim
			 * after its term is refused */
			while (!lks_lease_is_lost(l))
				usleep(10000);
			int rc = LKS_OK;
			for (int k = 0; k < 200 && (rc = lks_election_proclaim(c, l, "stale", 5)) == LKS_OK; k++)
				usleep(10000);
			if (rc != LKS_LOST)
				atomic_fetch_add(&b->errors, 1);
		} else if (lks_election_resign(c, l) != LKS_OK) {
			atomic_fetch_add(&b->errors, 1);
		}
		lks_lease_free(l);
	}
	atomic_fetch_add(&b->done, 1);
	lks_conn_close(c);
	return NULL;
}

/* Eight candidates, each taking office several times, a third of the terms
 * ended by a crash (the next leader takes office at the TTL): never two
 * leaders, terms strictly increasing, one counted write per term, a stalled
 * leader's proclaim refused; an observer sees terms only in increasing
 * order (a term greater than the last seen + 1 says terms were skipped). */
void election_never_two_leaders(void **state)
{
	fx *f = *state;
	static ballot b;
	pthread_t th[CANDIDATES];
	lks_conn *w = t_open(f->url);
	lks_lease_info seen = LKS_LEASE_INFO_INIT, now = LKS_LEASE_INFO_INIT;
	int64_t last_seen = 0;
	int observed = 0, backwards = 0;
	char value[64];
	size_t len;
	memset(&b, 0, sizeof b);
	b.url = f->url;
	b.terms = 6;
	pthread_mutex_init(&b.mu, NULL);
	t_exec(f->c, "CREATE TABLE terms (id int PRIMARY KEY, n int NOT NULL, last bigint NOT NULL)");
	t_exec(f->c, "INSERT INTO terms VALUES (1, 0, 0)");
	for (int i = 0; i < CANDIDATES; i++)
		pthread_create(&th[i], NULL, candidate, &b);
	while (atomic_load(&b.done) < CANDIDATES) {
		int rc = lks_election_observe(w, "office", observed ? &seen : NULL, 200, &now, value,
		                              sizeof value, &len);
		if (rc == LKS_TIMEOUT)
			continue;
		if (rc != LKS_OK) {
			atomic_fetch_add(&b.errors, 1);
			break;
		}
		if (now.fence < last_seen)
			backwards++;
		last_seen = now.fence;
		seen = now;
		observed++;
	}
	for (int i = 0; i < CANDIDATES; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&b.mu);
	assert_int_equal(atomic_load(&b.errors), 0);
	assert_int_equal(atomic_load(&b.overlaps), 0);
	assert_int_equal(b.regressions, 0);
	assert_int_equal(backwards, 0);
	assert_true(observed >= 1);
	assert_int_equal(t_int1(f->c, "SELECT n FROM terms"), CANDIDATES * b.terms);
	assert_int_equal(t_int1(f->c, "SELECT last FROM terms"), b.last_term);
	print_message("    %d terms, %d changes observed\n", CANDIDATES * b.terms, observed);
	lks_conn_close(w);
}

/* Integration: owner labels, the owner-column migration of an older lease
 * table, and force release (issue #8's library additions). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "it.h"

static lks_lease *acquire_owned(lks_conn *c, const char *name, const char *owner, int64_t wait_ms)
{
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *l = NULL;
	int rc;
	o.owner = owner;
	rc = lks_lease_acquire(&l, c, name, 10000, wait_ms, &o);
	if (rc)
		fail_msg("acquire %s as %s: %s (%s)", name, owner ? owner : "-", lks_strerror(rc),
		         lks_conn_errmsg(c));
	return l;
}

static int collect_owner(const lks_lease_info *info, void *arg)
{
	if (!strcmp(info->name, "owned"))
		snprintf(arg, LKS_LEASE_OWNER_MAX + 1, "%s", info->owner);
	return 0;
}

typedef struct waiter {
	const char *url;
	lks_lease *l;
} waiter;

static void *wait_as_b(void *arg)
{
	waiter *w = arg;
	lks_conn *c = t_open(w->url);
	w->l = acquire_owned(c, "owned", "replica-b:2", 10000);
	lks_lease_release(c, w->l);
	lks_lease_free(w->l);
	w->l = NULL;
	lks_conn_close(c);
	return NULL;
}

void lease_owner_label(void **state)
{
	fx *f = *state;
	lks_conn *other = t_open(f->url);
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *a, *b = NULL;
	char listed[LKS_LEASE_OWNER_MAX + 1] = "", big[LKS_LEASE_OWNER_MAX + 2];
	const char *bad[] = {"", "tab\there", "esc\x1b[2J", "bad\xc3(", "\xed\xa0\x80", "c1\xc2\x85", big};
	pthread_t th;
	waiter w = {f->url, NULL};

	/* held with wake_on_release: a waiter waits in line on the holder */
	o.owner = "replica-a:1 \xe2\x9c\x93";
	o.wake_on_release = 1;
	assert_int_equal(lks_lease_acquire(&a, f->c, "owned", 10000, 0, &o), LKS_OK);
	o = (lks_lease_acquire_options)LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	assert_string_equal(lks_lease_owner(a), "replica-a:1 \xe2\x9c\x93");
	assert_int_equal(lks_lease_inspect(other, "owned", &info), LKS_OK);
	assert_string_equal(info.owner, "replica-a:1 \xe2\x9c\x93");
	assert_int_equal(lks_lease_list(other, collect_owner, listed), LKS_OK);
	assert_string_equal(listed, "replica-a:1 \xe2\x9c\x93");
	/* a bad label is refused before anything is sent */
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		o.owner = bad[i];
		assert_int_equal(lks_lease_acquire(&b, other, "owned-too", 1000, 0, &o), LKS_EINVAL);
		assert_null(b);
	}
	assert_int_equal(lks_lease_inspect(other, "owned-too", &info), LKS_OK);
	assert_int_equal(info.fence, 0);
	/* a waiter's grant (the waiting-room path) stores its own label */
	assert_int_equal(pthread_create(&th, NULL, wait_as_b, &w), 0);
	/* released once the waiter is seen in line; behind a pooler it polls,
	 * and its grant is the same statement whenever it comes */
	if (!T_POOLED)
		t_wait_in_line(f->c, 1);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	assert_int_equal(pthread_join(th, NULL), 0);
	/* released: no owner; a grant without a label shows none, not the last */
	assert_int_equal(lks_lease_inspect(other, "owned", &info), LKS_OK);
	assert_false(info.held);
	assert_string_equal(info.owner, "");
	a = acquire_owned(f->c, "owned", NULL, 0);
	assert_string_equal(lks_lease_owner(a), "");
	assert_int_equal(lks_lease_inspect(other, "owned", &info), LKS_OK);
	assert_true(info.held);
	assert_string_equal(info.owner, "");
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	lks_conn_close(other);
}

/* The table as lockstock 0.1 made it: no owner column; on PostgreSQL the
 * CHECK constraints 0.2 dropped, beside one of the caller's own. */
static void create_old_table(lks_conn *c)
{
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL)
		t_exec(c, "CREATE TABLE old_lease (name text PRIMARY KEY CHECK (octet_length(name)"
		          " BETWEEN 1 AND 255), holder text, fence bigint NOT NULL CHECK (fence >= 0),"
		          " acquired_at timestamptz, expires_at timestamptz NOT NULL,"
		          " CONSTRAINT callers_own CHECK (fence < 1000000000))");
	else
		t_exec(c, "CREATE TABLE old_lease (name VARBINARY(255) NOT NULL PRIMARY KEY,"
		          " holder CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,"
		          " fence BIGINT NOT NULL, acquired_at DATETIME(6) NULL,"
		          " expires_at DATETIME(6) NOT NULL) ENGINE=InnoDB");
}

void lease_owner_migration(void **state)
{
	fx *f = *state;
	lks_conn *reader = t_open(f->url), *other = t_open(f->url);
	lks_lease *l = NULL;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	int64_t fence;
	create_old_table(f->c);
	assert_int_equal(lks_lease_set_table(f->c, "old_lease"), LKS_OK);
	assert_int_equal(lks_lease_set_table(other, "old_lease"), LKS_OK);
	/* an unmigrated table works, except for labels, which say what to do */
	l = acquire_owned(f->c, "m", NULL, 0);
	fence = lks_lease_fence(l);
	assert_int_equal(lks_lease_inspect(other, "m", &info), LKS_OK);
	assert_true(info.held);
	assert_string_equal(info.owner, "");
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
	l = NULL;
	o.owner = "job-runner";
	assert_int_equal(lks_lease_acquire(&l, other, "m", 1000, 0, &o), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(other), "install"));
	/* a long transaction reading the table: the migration gives up after
	 * its lock wait instead of queueing every lease call behind it */
	t_exec(reader, "BEGIN");
	assert_int_equal(t_int1(reader, "SELECT count(*) FROM old_lease"), 1);
	assert_int_equal(lks_lease_install(f->c), LKS_ETRANSIENT);
	/* and left no transaction open: a lease call (refused inside one) works */
	l = acquire_owned(f->c, "m2", NULL, 0);
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
	t_exec(reader, "COMMIT");
	/* now it migrates, keeps the rows, and labels work */
	assert_int_equal(lks_lease_install(f->c), LKS_OK);
	assert_int_equal(lks_lease_install(f->c), LKS_OK); /* idempotent */
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL) /* lockstock's CHECKs gone, the caller's kept */
		assert_int_equal(t_int1(f->c, "SELECT (string_agg(conname, ',') = 'callers_own')::int"
		                              " FROM pg_constraint WHERE conrelid = 'old_lease'::regclass"
		                              " AND contype = 'c'"),
		                 1);
	assert_int_equal(lks_lease_set_table(other, "old_lease"), LKS_OK); /* asks again */
	l = acquire_owned(other, "m", "job-runner", 0);
	assert_int_equal(lks_lease_fence(l), fence + 1);
	assert_int_equal(lks_lease_inspect(f->c, "m", &info), LKS_OK);
	assert_string_equal(info.owner, "job-runner");
	assert_int_equal(lks_lease_release(other, l), LKS_OK);
	lks_lease_free(l);
	/* a version without labels granting on the migrated table (its plain
	 * grant statement): no stale label is shown for its grant */
	t_exec(f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                 ? "UPDATE old_lease SET holder = '0123456789abcdef0123456789abcdef',"
	                   " fence = fence + 1, expires_at = now() + interval '10 seconds' WHERE name = 'm'"
	                 : "UPDATE old_lease SET holder = '0123456789abcdef0123456789abcdef',"
	                   " fence = fence + 1, expires_at = UTC_TIMESTAMP(6) + INTERVAL 10 SECOND"
	                   " WHERE name = 'm'");
	assert_int_equal(lks_lease_inspect(f->c, "m", &info), LKS_OK);
	assert_true(info.held);
	assert_string_equal(info.owner, "");
	lks_conn_close(reader);
	lks_conn_close(other);
}

static int write_marker(lks_conn *c, int64_t fence, void *arg)
{
	(void)arg;
	(void)fence;
	return lks_conn_exec(c, "UPDATE marker SET n = n + 1");
}

void lease_force_release(void **state)
{
	fx *f = *state;
	lks_conn *admin = t_open(f->url);
	lks_lease *a, *b;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	int64_t fence;
	t_exec(f->c, "CREATE TABLE marker (n int NOT NULL)");
	t_exec(f->c, "INSERT INTO marker VALUES (0)");
	a = acquire_owned(f->c, "stuck", "host-a:42", 0);
	fence = lks_lease_fence(a);
	assert_int_equal(lks_lease_fenced_write(f->c, a, write_marker, NULL), LKS_OK);
	/* bad input changes nothing */
	assert_int_equal(lks_lease_force_release(admin, NULL, &info), LKS_EINVAL);
	assert_int_equal(lks_lease_force_release(admin, "", &info), LKS_EINVAL);
	assert_int_equal(lks_lease_force_release(NULL, "stuck", &info), LKS_EINVAL);
	t_exec(admin, "BEGIN");
	assert_int_equal(lks_lease_force_release(admin, "stuck", &info), LKS_EINVAL);
	t_exec(admin, "ROLLBACK");
	assert_int_equal(lks_lease_inspect(admin, "stuck", &info), LKS_OK);
	assert_true(info.held);
	/* freed: reports the grant it ended */
	info = (lks_lease_info)LKS_LEASE_INFO_INIT;
	assert_int_equal(lks_lease_force_release(admin, "stuck", &info), LKS_OK);
	assert_string_equal(info.name, "stuck");
	assert_string_equal(info.holder, lks_lease_holder(a));
	assert_string_equal(info.owner, "host-a:42");
	assert_int_equal(info.fence, fence);
	assert_true(info.held);
	/* the old holder lost everything: renew, fenced write, release */
	assert_int_equal(lks_lease_renew(f->c, a, 10000), LKS_LOST);
	assert_int_equal(lks_lease_fenced_write(f->c, a, write_marker, NULL), LKS_LOST);
	assert_int_equal(lks_lease_release(f->c, a), LKS_LOST);
	assert_int_equal(t_int1(admin, "SELECT n FROM marker"), 1);
	lks_lease_free(a);
	/* free now, fence advanced; the next grant's is higher still */
	assert_int_equal(lks_lease_inspect(admin, "stuck", &info), LKS_OK);
	assert_false(info.held);
	assert_int_equal(info.fence, fence + 1);
	assert_int_equal(lks_lease_force_release(admin, "stuck", &info), LKS_NOT_FOUND);
	assert_false(info.held);
	assert_int_equal(info.fence, fence + 1);
	b = acquire_owned(admin, "stuck", NULL, 0);
	assert_int_equal(lks_lease_fence(b), fence + 2);
	assert_int_equal(lks_lease_release(admin, b), LKS_OK);
	lks_lease_free(b);
	/* a name never granted */
	assert_int_equal(lks_lease_force_release(admin, "never", &info), LKS_NOT_FOUND);
	assert_int_equal(info.fence, 0);
	assert_int_equal(lks_lease_force_release(admin, "never", NULL), LKS_NOT_FOUND);
	lks_conn_close(admin);
}

static lks_lease *must_acquire_on(lks_conn *c, const char *name, int64_t ttl_ms)
{
	lks_lease *l = NULL;
	if (lks_lease_acquire(&l, c, name, ttl_ms, 2000, NULL))
		fail_msg("acquire %s: %s", name, lks_conn_errmsg(c));
	return l;
}

static int mark_fence(lks_conn *c, int64_t fence, void *arg)
{
	lks_value p = LKS_INT(fence);
	int64_t n;
	(void)arg;
	return lks_conn_query_int(c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                                 ? "INSERT INTO guard_marks VALUES ($1)"
	                                 : "INSERT INTO guard_marks VALUES (?)",
	                          &p, 1, &n);
}

/* A bad fence-guard value is refused (the message names it); the handle
 * returned has fence-guard=write. */
static lks_conn *open_write_guarded(fx *f)
{
	char url[1200];
	lks_conn *w = NULL;
	snprintf(url, sizeof url, "%s%sfence-guard=sideways", f->url, strchr(f->url, '?') ? "&" : "?");
	assert_int_equal(lks_conn_open(&w, url), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(w), "fence-guard"));
	lks_conn_close(w);
	snprintf(url, sizeof url, "%s%sfence-guard=write", f->url, strchr(f->url, '?') ? "&" : "?");
	return t_open(url);
}

/* PostgreSQL: fence-guard=write makes the guard an UPDATE of the lease row
 * (for engines that ignore share locks); a stale holder is still refused
 * and every acknowledged write is counted once */
static void guard_modes_on_postgresql(fx *f)
{
	lks_conn *w;
	lks_lease *l = NULL, *l2 = NULL;
	w = open_write_guarded(f);
	t_exec(f->c, "CREATE TABLE guard_marks (fence bigint PRIMARY KEY)");
	l = must_acquire_on(w, "g", 5000);
	assert_int_equal(lks_lease_fenced_write(w, l, mark_fence, NULL), LKS_OK);
	if (!T_POOLED) /* the guard that ran is the UPDATE */
		assert_int_equal(t_int1(w, "SELECT count(*) FROM pg_prepared_statements"
		                           " WHERE statement LIKE 'UPDATE % SET expires_at = expires_at %'"), 1);
	assert_int_equal(lks_lease_release(w, l), LKS_OK);
	lks_lease_free(l);
	/* taken over after expiry: the stale holder's write is LKS_LOST */
	l = must_acquire_on(w, "g", 200);
	l2 = must_acquire_on(f->c, "g", 5000); /* waits for the expiry */
	assert_int_equal(lks_lease_fenced_write(w, l, mark_fence, NULL), LKS_LOST);
	assert_int_equal(lks_lease_fenced_write(f->c, l2, mark_fence, NULL), LKS_OK);
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM guard_marks"), 2);
	assert_int_equal(lks_lease_release(f->c, l2), LKS_OK);
	lks_lease_free(l);
	lks_lease_free(l2);
	lks_conn_close(w);
}

/* fence-guard=write (what a Galera node uses) on one server: the guard
 * writes the lease row, a table without the writes column says to run
 * install (which adds it), a stale holder writes nothing, and a bad value
 * is refused. */
void fenced_write_guard_modes(void **state)
{
	fx *f = *state;
	lks_conn *w;
	lks_lease *l = NULL, *l2 = NULL;
	if (T_BACKEND != LKS_BACKEND_MYSQL) {
		guard_modes_on_postgresql(f);
		return;
	}
	w = open_write_guarded(f);
	t_exec(f->c, "CREATE TABLE guard_marks (fence bigint PRIMARY KEY)");
	create_old_table(f->c);
	assert_int_equal(lks_lease_set_table(w, "old_lease"), LKS_OK);
	l = must_acquire_on(w, "g", 5000);
	assert_int_equal(lks_lease_fenced_write(w, l, mark_fence, NULL), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(w), "lks_lease_install"));
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM guard_marks"), 0);
	assert_int_equal(lks_lease_install(w), LKS_OK); /* adds writes and owner */
	assert_int_equal(lks_lease_fenced_write(w, l, mark_fence, NULL), LKS_OK);
	assert_int_equal(t_int1(f->c, "SELECT writes FROM old_lease WHERE name = 'g'"), 1);
	/* taken over after expiry: the stale holder's write is LKS_LOST */
	assert_int_equal(lks_lease_release(w, l), LKS_OK);
	lks_lease_free(l);
	assert_int_equal(lks_lease_set_table(f->c, "old_lease"), LKS_OK);
	l = must_acquire_on(w, "g", 200);
	l2 = must_acquire_on(f->c, "g", 5000); /* waits for the expiry */
	assert_int_equal(lks_lease_fenced_write(w, l, mark_fence, NULL), LKS_LOST);
	assert_int_equal(t_int1(f->c, "SELECT count(*) FROM guard_marks"), 1);
	assert_int_equal(lks_lease_fenced_write(f->c, l2, mark_fence, NULL), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, l2), LKS_OK);
	lks_lease_free(l);
	lks_lease_free(l2);
	lks_conn_close(w);
}

/* ---- a serialization failure at COMMIT of a fenced write (PostgreSQL) -- */

typedef struct skew {
	pthread_barrier_t *read, *wrote;
	int row;         /* the row this side updates */
	lks_conn *c;
	lks_lease *l;
	lks_conn *admin; /* watches b's lease expire (lost variant) */
	bool expire;
	int rc;
} skew;

/* write skew under SERIALIZABLE: both read both rows, each updates its
 * own; the second to commit fails (40001), at its UPDATE or its COMMIT */
static int skew_write(lks_conn *c, int64_t fence, void *arg)
{
	skew *s = arg;
	lks_value p = LKS_INT(s->row);
	int64_t n;
	int rc;
	(void)fence;
	/* every barrier is passed whatever fails, so neither side hangs */
	rc = t_int(c, &n, "SELECT sum(v) FROM sk", NULL, 0);
	pthread_barrier_wait(s->read);
	if (rc == LKS_OK)
		rc = t_int(c, &n, "UPDATE sk SET v = v + 1 WHERE id = ?", &p, 1);
	pthread_barrier_wait(s->wrote);
	if (s->row == 2) {
		pthread_barrier_wait(s->read); /* b commits second: after a */
		/* the lost variant: b's lease expires on the server meanwhile
		 * (seen by a plain read: the guard's share lock blocks no read) */
		for (int i = 0; s->expire && i < 3000; i++) {
			if (t_int1(s->admin, "SELECT count(*) FROM lks_lease WHERE name = 'skew-b'"
			                     " AND expires_at <= clock_timestamp()") == 1)
				break;
			usleep(10000);
		}
	}
	return rc;
}

static void *skew_a(void *arg)
{
	skew *s = arg;
	s->rc = lks_lease_fenced_write(s->c, s->l, skew_write, s);
	pthread_barrier_wait(s->read); /* a has committed: b goes on */
	return NULL;
}

/* #20 item 3: a fenced write whose transaction the server fails with a
 * serialization failure (SERIALIZABLE, write skew) wrote nothing and says
 * so: LKS_ETRANSIENT while the lease is still current, LKS_LOST when it
 * expired meanwhile, as on Galera. */
void fenced_write_serialization_failure(void **state)
{
	fx *f = *state;
	if (T_BACKEND != LKS_BACKEND_POSTGRESQL || T_POOLED) {
		/* a pooler may run the session's SET and the BEGIN on two server
		 * connections */
		print_message("    PostgreSQL's SERIALIZABLE, not pooled (Galera's certification"
		              " failures: galera_test)\n");
		return;
	}
	t_exec(f->c, "CREATE TABLE sk (id int PRIMARY KEY, v int NOT NULL)");
	for (int round = 0; round < 2; round++) {
		pthread_barrier_t read, wrote;
		skew a = {.read = &read, .wrote = &wrote, .row = 1};
		skew b = {.read = &read, .wrote = &wrote, .row = 2, .admin = f->c, .expire = round == 1};
		pthread_t th;
		t_exec(f->c, "DELETE FROM sk");
		t_exec(f->c, "INSERT INTO sk VALUES (1, 0), (2, 0)");
		a.c = t_open(f->url);
		b.c = t_open(f->url);
		/* the fenced writes' transactions: SERIALIZABLE */
		t_exec(a.c, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE");
		t_exec(b.c, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE");
		assert_int_equal(lks_lease_acquire(&a.l, a.c, "skew-a", 30000, 0, NULL), LKS_OK);
		assert_int_equal(lks_lease_acquire(&b.l, b.c, "skew-b", round == 1 ? 1000 : 30000, 0, NULL),
		                 LKS_OK);
		pthread_barrier_init(&read, NULL, 2);
		pthread_barrier_init(&wrote, NULL, 2);
		pthread_create(&th, NULL, skew_a, &a);
		b.rc = lks_lease_fenced_write(b.c, b.l, skew_write, &b);
		pthread_join(th, NULL);
		print_message("    round %d: a %s, b %s (%s)\n", round, lks_strerror(a.rc), lks_strerror(b.rc),
		              lks_conn_errmsg(b.c));
		assert_int_equal(a.rc, LKS_OK);
		assert_int_equal(b.rc, round == 0 ? LKS_ETRANSIENT : LKS_LOST);
		/* nothing of b's was written */
		assert_int_equal(t_int1(f->c, "SELECT v FROM sk WHERE id = 2"), 0);
		assert_int_equal(t_int1(f->c, "SELECT v FROM sk WHERE id = 1"), 1);
		pthread_barrier_destroy(&read);
		pthread_barrier_destroy(&wrote);
		lks_lease_release(a.c, a.l);
		lks_lease_release(b.c, b.l);
		lks_lease_free(a.l);
		lks_lease_free(b.l);
		lks_conn_close(a.c);
		lks_conn_close(b.c);
	}
}

/* #30 item 2: a table that does not exist gets one status and one message
 * on both databases, naming the call that installs it; nothing is
 * written (the table is still missing). */
static int noop_once(lks_conn *c, lks_once_ctx *ctx, void *arg)
{
	(void)c, (void)ctx, (void)arg;
	return LKS_OK;
}

void missing_tables_say_how_to_install(void **state)
{
	fx *f = *state;
	lks_conn *c = t_open(f->url);
	lks_lease *l = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	lks_once_options o = LKS_ONCE_OPTIONS_INIT;
	const char *exists = T_BACKEND == LKS_BACKEND_POSTGRESQL
	                         ? "SELECT count(*) FROM pg_class WHERE relname LIKE 'no\\_such%'"
	                         : "SELECT COUNT(*) FROM information_schema.TABLES"
	                           " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'no\\_such%'";
	T_OK(c, lks_lease_set_table(c, "no_such_lease"));
	assert_int_equal(lks_lease_acquire(&l, c, "x", 1000, 0, NULL), LKS_EDB);
	assert_string_equal(lks_conn_errmsg(c), "lease table no_such_lease does not exist: run"
	                                        " lks_lease_install(c) (or the command `lockstock"
	                                        " install`) once");
	assert_null(l);
	assert_int_equal(lks_lease_inspect(c, "x", &info), LKS_EDB);
	assert_non_null(strstr(lks_conn_errmsg(c), "lks_lease_install"));
	T_OK(c, lks_lease_set_table(c, "lks_lease"));
	o.table = "no_such_once";
	assert_int_equal(lks_once_run(c, "s", "k", &o, noop_once, NULL, NULL), LKS_EDB);
	assert_string_equal(lks_conn_errmsg(c), "once table no_such_once does not exist: run"
	                                        " lks_once_install(c, table) (or the command"
	                                        " `lockstock install`) once");
	assert_int_equal(t_int1(f->c, exists), 0);
	lks_conn_close(c);
}

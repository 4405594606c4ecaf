/* Integration: cancel tokens end a waiting acquire and a retry loop from
 * another thread, quickly and holding nothing (issue #10, item 1). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "it.h"

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct waiter {
	const char *url;
	lks_cancel *token;
	int waiting_room;
	int rc;
	int64_t returned_us;
	lks_conn *c;
} waiter;

static void *wait_60s(void *arg)
{
	waiter *w = arg;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *l = NULL;
	o.cancel = w->token;
	o.waiting_room = w->waiting_room;
	o.max_delay_us = 10000000; /* polling: long sleeps between polls */
	w->rc = lks_lease_acquire(&l, w->c, "cancel-me", 60000, 60000, &o);
	w->returned_us = mono_us();
	lks_lease_free(l);
	return NULL;
}

static void cancel_one_wait(fx *f, lks_conn *holder_c, int waiting_room)
{
	lks_cancel *token = NULL;
	waiter w = {.url = f->url, .waiting_room = waiting_room};
	pthread_t th;
	int64_t tripped;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	assert_int_equal(lks_cancel_new(&token), LKS_OK);
	w.token = token;
	w.c = t_open(f->url);
	pthread_create(&th, NULL, wait_60s, &w);
	/* in line (seen on the server); a poller's sleep between polls cannot
	 * be seen: a trip before its first poll ends the call all the same */
	if (waiting_room)
		t_wait_in_line(f->c, 1);
	else
		usleep(500 * 1000);
	tripped = mono_us();
	lks_cancel_trip(token);
	pthread_join(th, NULL);
	print_message("    %s: LKS_CANCELED %lld us after the trip\n",
	              waiting_room ? "waiting room" : "polling", (long long)(w.returned_us - tripped));
	/* how soon is a figure for bench/lease_bench (cancel latency), not a
	 * bound here; that the sleep itself ends at the trip is a unit test */
	assert_int_equal(w.rc, LKS_CANCELED);
	/* nothing changed hands: still the holder's */
	assert_int_equal(lks_lease_inspect(holder_c, "cancel-me", &info), LKS_OK);
	assert_true(info.held);
	/* the canceled handle is usable again (MariaDB: after a reset) */
	if (T_BACKEND == LKS_BACKEND_MYSQL && waiting_room)
		assert_int_equal(lks_conn_reset(w.c), LKS_OK);
	assert_int_equal(lks_lease_inspect(w.c, "cancel-me", &info), LKS_OK);
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL) /* and holds no session lock */
		assert_int_equal(t_int1(w.c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
		                              " AND pid = pg_backend_pid()"), 0);
	lks_conn_close(w.c);
	lks_cancel_free(token);
}

void acquire_wait_is_canceled(void **state)
{
	fx *f = *state;
	lks_lease_acquire_options keep = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_cancel *token = NULL;
	lks_lease *a = NULL, *b = NULL, *next = NULL;
	lks_conn *other = t_open(f->url);
	/* the holder keeps its baton: a waiter blocks in the server's line */
	keep.wake_on_release = 1;
	assert_int_equal(lks_lease_acquire(&a, f->c, "cancel-me", 60000, 0, &keep), LKS_OK);
	if (!T_POOLED) /* behind a pooler there is no line: it polls */
		cancel_one_wait(f, f->c, 1);
	cancel_one_wait(f, f->c, 0);
	/* a token tripped before the call: nothing is sent */
	assert_int_equal(lks_cancel_new(&token), LKS_OK);
	lks_cancel_trip(token);
	keep.wake_on_release = 0;
	keep.cancel = token;
	assert_int_equal(lks_lease_acquire(&b, other, "cancel-me", 1000, 5000, &keep), LKS_CANCELED);
	assert_null(b);
	assert_true(lks_cancel_is_tripped(token));
	/* re-armed, it lets the next waiter through as usual at the release */
	lks_cancel_reset(token);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	assert_int_equal(lks_lease_acquire(&next, other, "cancel-me", 1000, 5000, &keep), LKS_OK);
	assert_int_equal(lks_lease_release(other, next), LKS_OK);
	lks_lease_free(next);
	lks_cancel_free(token);
	lks_conn_close(other);
}

static int always_conflict(lks_conn *c, int attempt, void *arg)
{
	(void)c;
	if (arg)
		atomic_fetch_add((atomic_int *)arg, 1);
	return LKS_CONFLICT;
}

typedef struct retrier {
	lks_conn *c;
	lks_cancel *token;
	lks_retry_stats st;
	atomic_int attempts;
	int rc;
	int64_t returned_us;
} retrier;

static void *retry_forever(void *arg)
{
	retrier *r = arg;
	lks_retry_options o = LKS_RETRY_OPTIONS_INIT;
	o.max_attempts = 1000;
	o.timeout_ms = 60000;
	o.base_delay_us = 2000000; /* long backoff sleeps */
	o.max_delay_us = 5000000;
	o.cancel = r->token;
	r->rc = lks_retry(r->c, &o, always_conflict, &r->attempts, &r->st);
	r->returned_us = mono_us();
	return NULL;
}

void retry_loop_is_canceled(void **state)
{
	fx *f = *state;
	retrier r = {.c = f->c};
	pthread_t th;
	int64_t tripped;
	lks_retry_options v1 = LKS_RETRY_OPTIONS_INIT;
	lks_retry_stats st;
	assert_int_equal(lks_cancel_new(&r.token), LKS_OK);
	pthread_create(&th, NULL, retry_forever, &r);
	/* the first attempt failed: it sleeps its backoff (2 s or more) */
	for (int i = 0; i < 6000 && !atomic_load(&r.attempts); i++)
		usleep(10000);
	assert_true(atomic_load(&r.attempts) >= 1);
	tripped = mono_us();
	lks_cancel_trip(r.token);
	pthread_join(th, NULL);
	print_message("    retry: LKS_CANCELED %lld us after the trip, after %d attempts\n",
	              (long long)(r.returned_us - tripped), r.st.attempts);
	assert_int_equal(r.rc, LKS_CANCELED);
	assert_int_equal(r.st.gave_up, LKS_CANCELED);
	lks_cancel_free(r.token);
	/* version 1 options (no token field) still work */
	v1.version = 1;
	v1.max_attempts = 2;
	v1.base_delay_us = 0;
	v1.max_delay_us = 0;
	assert_int_equal(lks_retry(f->c, &v1, always_conflict, NULL, &st), LKS_CONFLICT);
	assert_int_equal(st.attempts, 2);
}

/* ---- hardening 3, items 7-9: no lost interrupt, no kept place, no block */

uint64_t lks_baton_key(const char *table_q, const char *name); /* src/util.c */

typedef struct room_waiter {
	lks_conn *c;
	lks_cancel *token;
	int rc;
	atomic_int done;
} room_waiter;

static void *wait_in_room(void *arg)
{
	room_waiter *w = arg;
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *l = NULL;
	o.cancel = w->token;
	o.base_delay_us = 10000000; /* the head sleeps ~10 s between polls */
	o.max_delay_us = 10000000;
	w->rc = lks_lease_acquire(&l, w->c, "room", 60000, 60000, &o);
	lks_lease_free(l);
	atomic_store(&w->done, 1);
	return NULL;
}

/* The head of the line holds the name's baton and sleeps between polls; a
 * trip that lands in that sleep gives the baton back (MariaDB kept it for
 * the connection's life: every later hand-off waited about 1 s). */
void canceled_head_gives_its_place_back(void **state)
{
	fx *f = *state;
	room_waiter w = {0};
	lks_lease *a = NULL;
	pthread_t th;
	char sql[256];
	int64_t id;
	if (T_POOLED) {
		print_message("    no waiting room behind a transaction pooler: nothing to give back\n");
		return;
	}
	assert_int_equal(lks_lease_acquire(&a, f->c, "room", 60000, 0, NULL), LKS_OK);
	assert_int_equal(lks_cancel_new(&w.token), LKS_OK);
	w.c = t_open(f->url);
	id = t_session_id(w.c);
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL)
		snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
		                          " AND granted AND pid = %lld", (long long)id);
	else
		snprintf(sql, sizeof sql, "SELECT COALESCE(IS_USED_LOCK('lks:%016llx'), 0) = %lld",
		         (unsigned long long)lks_baton_key("`lks_lease`", "room"), (long long)id);
	pthread_create(&th, NULL, wait_in_room, &w);
	t_wait_for(f->c, sql, 1); /* it is the head: it holds the baton */
	lks_cancel_trip(w.token);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, LKS_CANCELED);
	/* its connection is still open, and holds no baton */
	assert_int_equal(t_int1(f->c, sql), 0);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	lks_conn_close(w.c);
	lks_cancel_free(w.token);
}

/* One token shared by several waits in the line: every one ends with
 * LKS_CANCELED and nothing held (the token used to remember only the last
 * statement it could interrupt; the unit suite checks each is). */
void shared_token_ends_every_wait(void **state)
{
	fx *f = *state;
	enum { N = 4 };
	room_waiter w[N];
	pthread_t th[N];
	lks_cancel *token = NULL;
	lks_lease *a = NULL;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	char sql[256];
	assert_int_equal(lks_lease_acquire(&a, f->c, "room", 60000, 0, NULL), LKS_OK);
	assert_int_equal(lks_cancel_new(&token), LKS_OK);
	for (int i = 0; i < N; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].c = t_open(f->url);
		w[i].token = token;
		pthread_create(&th[i], NULL, wait_in_room, &w[i]);
	}
	if (!T_POOLED) {
		/* all in line: one head with the baton, the others blocked on it */
		if (T_BACKEND == LKS_BACKEND_POSTGRESQL)
			snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
			                          " AND NOT granted");
		else
			snprintf(sql, sizeof sql, "SELECT count(*) FROM information_schema.PROCESSLIST"
			                          " WHERE INFO LIKE 'SELECT COALESCE(GET_LOCK(%%'");
		t_wait_for(f->c, sql, N - 1);
	}
	lks_cancel_trip(token);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].rc, LKS_CANCELED);
		lks_conn_close(w[i].c);
	}
	assert_int_equal(lks_lease_inspect(f->c, "room", &info), LKS_OK);
	assert_true(info.held);
	assert_int_equal(info.fence, lks_lease_fence(a));
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	lks_cancel_free(token);
}

static int stop_process(pid_t pid, int sig)
{
	return kill(pid, sig);
}

static pid_t parent_of(pid_t pid)
{
	char path[64];
	int ppid = -1;
	FILE *fp;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (!(fp = fopen(path, "r")))
		return -1;
	/* pid (comm) state ppid: comm has no ')' for postgres processes */
	if (fscanf(fp, "%*d (%*[^)]) %*c %d", &ppid) != 1)
		ppid = -1;
	fclose(fp);
	return ppid;
}

typedef struct tripper {
	lks_cancel *token;
	atomic_int done;
} tripper;

static void *trip_it(void *arg)
{
	tripper *t = arg;
	lks_cancel_trip(t->token);
	atomic_store(&t->done, 1);
	return NULL;
}

/* Wait until *flag is set; 60 s means hung. */
static bool wait_flag(atomic_int *flag)
{
	for (int i = 0; i < 6000 && !atomic_load(flag); i++)
		usleep(10000);
	return atomic_load(flag);
}

/* PostgreSQL does not answer at all (its postmaster and the waiter's backend
 * stopped): lks_cancel_trip returns at once, and the canceled wait returns
 * LKS_CANCELED while the server is still stopped, well inside its op timeout
 * (it used to send the cancel request from the tripping thread, under the
 * token's lock, and wait for a server that never answered). */
void trip_returns_while_postgres_is_silent(void **state)
{
	fx *f = *state;
	room_waiter w = {0};
	tripper tr = {0};
	lks_lease *a = NULL;
	pthread_t th, tt;
	char url[1200], sql[256];
	pid_t backend, postmaster;
	bool tripped, returned;
	if (T_BACKEND != LKS_BACKEND_POSTGRESQL || T_POOLED) {
		print_message("    PostgreSQL without a pooler only: it stops the server's processes\n");
		return;
	}
	snprintf(url, sizeof url, "%s%sop_timeout=600", f->url, strchr(f->url, '?') ? "&" : "?");
	assert_int_equal(lks_lease_acquire(&a, f->c, "room", 60000, 0, NULL), LKS_OK);
	assert_int_equal(lks_cancel_new(&w.token), LKS_OK);
	tr.token = w.token;
	w.c = t_open(url);
	backend = (pid_t)t_session_id(w.c);
	assert_true(backend > 1); /* a pid we read ourselves, before we signal it */
	postmaster = parent_of(backend);
	assert_true(postmaster > 1);
	/* a second waiter is the head; w blocks in the server on the baton */
	room_waiter head = {.token = NULL};
	pthread_t hth;
	head.c = t_open(f->url);
	pthread_create(&hth, NULL, wait_in_room, &head);
	t_wait_for(f->c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted", 1);
	pthread_create(&th, NULL, wait_in_room, &w);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
	                          " AND NOT granted AND pid = %d", (int)backend);
	t_wait_for(f->c, sql, 1);
	assert_int_equal(stop_process(backend, SIGSTOP), 0);
	assert_int_equal(stop_process(postmaster, SIGSTOP), 0);
	pthread_create(&tt, NULL, trip_it, &tr);
	tripped = wait_flag(&tr.done);
	returned = tripped && wait_flag(&w.done);
	/* observed while the server is still stopped */
	stop_process(postmaster, SIGCONT);
	stop_process(backend, SIGCONT);
	pthread_join(tt, NULL);
	pthread_join(th, NULL);
	assert_true(tripped);
	assert_true(returned);
	assert_int_equal(w.rc, LKS_CANCELED);
	/* the handle works again after a reset */
	assert_int_equal(lks_conn_reset(w.c), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, a), LKS_OK);
	lks_lease_free(a);
	pthread_join(hth, NULL); /* the head gets it at the release */
	assert_int_equal(head.rc, LKS_OK);
	lks_conn_close(head.c);
	lks_conn_close(w.c);
	lks_cancel_free(w.token);
}

typedef struct slow_write {
	lks_conn *c;
	lks_lease *l;
	atomic_int inside, finish;
	int rc;
} slow_write;

static int hold_row(lks_conn *c, int64_t fence, void *arg)
{
	slow_write *s = arg;
	(void)c;
	(void)fence;
	atomic_store(&s->inside, 1);
	for (int i = 0; i < 6000 && !atomic_load(&s->finish); i++)
		usleep(10000);
	return LKS_OK;
}

static void *write_slowly(void *arg)
{
	slow_write *s = arg;
	s->rc = lks_lease_fenced_write(s->c, s->l, hold_row, s);
	return NULL;
}

typedef struct trip_arg {
	lks_conn *obs;
	const char *sql;
	lks_cancel *token;
} trip_arg;

/* Trip once sql (a count) sees the grant waiting on the row lock. */
static void *trip_when_waiting(void *arg)
{
	trip_arg *a = arg;
	for (int i = 0; i < 6000 && !lks_cancel_is_tripped(a->token); i++) {
		if (t_int1(a->obs, a->sql) == 1)
			break;
		usleep(1000);
	}
	lks_cancel_trip(a->token);
	return NULL;
}

/* Hardening 3, item 6: an acquire canceled while its grant waits on the
 * row lock (behind a fenced write that outlives its TTL) holds nothing,
 * also after the row lock is freed: MariaDB's cancel only cut the socket,
 * and the server completed the grant for a holder nobody knew. */
void canceled_grant_never_completes_later(void **state)
{
	fx *f = *state;
	slow_write s = {.c = f->c};
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *g = NULL;
	lks_cancel *token = NULL;
	lks_conn *obs = t_open(f->url), *c = t_open(f->url);
	pthread_t ws, tt;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	char sql[256];
	int64_t id;
	trip_arg ta = {obs, sql, NULL};
	if (T_POOLED) {
		/* a pooler gives each transaction any server session: nothing to
		 * watch, and no session a cancel could cost */
		print_message("    behind a transaction pooler the statement's session is not known\n");
		lks_conn_close(obs);
		lks_conn_close(c);
		return;
	}
	id = t_session_id(c);
	assert_int_equal(lks_lease_acquire(&s.l, f->c, "ghost", 300, 0, NULL), LKS_OK);
	pthread_create(&ws, NULL, write_slowly, &s);
	for (int i = 0; i < 6000 && !atomic_load(&s.inside); i++)
		usleep(10000);
	assert_true(atomic_load(&s.inside));
	/* the lease expires while its fenced write still holds the row */
	for (int i = 0; i < 6000; i++) {
		assert_int_equal(lks_lease_inspect(obs, "ghost", &info), LKS_OK);
		if (!info.held)
			break;
		usleep(10000);
	}
	assert_false(info.held);
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL)
		snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld"
		                          " AND wait_event_type = 'Lock'", (long long)id);
	else
		snprintf(sql, sizeof sql, "SELECT count(*) FROM information_schema.INNODB_TRX"
		                          " WHERE trx_mysql_thread_id = %lld AND trx_state = 'LOCK WAIT'",
		         (long long)id);
	assert_int_equal(lks_cancel_new(&token), LKS_OK);
	ta.token = token;
	o.cancel = token;
	o.waiting_room = 0;
	pthread_create(&tt, NULL, trip_when_waiting, &ta);
	int rc = lks_lease_acquire(&g, c, "ghost", 60000, 60000, &o);
	if (rc != LKS_CANCELED)
		lks_cancel_trip(token); /* the thread ends before this frame does */
	pthread_join(tt, NULL);
	if (rc != LKS_CANCELED)
		fail_msg("acquire: %d %s", rc, lks_conn_errmsg(c));
	assert_null(g);
	/* the fenced write ends and frees the row */
	atomic_store(&s.finish, 1);
	pthread_join(ws, NULL);
	/* the canceled grant's old session has no statement left running */
	if (T_BACKEND == LKS_BACKEND_POSTGRESQL)
		snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld"
		                          " AND state = 'active'", (long long)id);
	else
		snprintf(sql, sizeof sql, "SELECT count(*) FROM information_schema.PROCESSLIST"
		                          " WHERE ID = %lld AND COMMAND <> 'Sleep'", (long long)id);
	t_wait_for(obs, sql, 0);
	assert_int_equal(lks_lease_inspect(obs, "ghost", &info), LKS_OK);
	assert_false(info.held);
	lks_lease_free(s.l);
	lks_conn_close(obs);
	lks_conn_close(c);
	lks_cancel_free(token);
}

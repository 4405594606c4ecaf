/* MySQL backend: the lease statements that grant and keep a lease (grant
 * with fence hints, renew, release, the fenced-write guard) and cleaning up
 * after a canceled grant. Reads and administration: lease_admin.c. */
#include "my.h"

/* A new name starts at the table's fence floor + 1 (lks_lease_purge). The
 * floor is read with a share lock: a locking read sees the latest value,
 * where a consistent read could predate a purge whose delete the insert's
 * key check then sees; the floor's one writer holds it for one statement. */
#define MY_FLOOR_FENCE "COALESCE((SELECT fence FROM %s WHERE name = X'FF' LOCK IN SHARE MODE), 0)"

/*
 * MariaDB: one statement decides, whether the name is new, free, expired or
 * held. The VALUES row is evaluated once, and carries whether we may grant
 * an existing lease in acquired_at: the statement's time when we have the
 * baton (or need none), 1 us earlier when not. Without the baton only a
 * lease free for LKS_BATON_STALE_MS is granted (lks_baton_mode); a new name
 * is granted by its insert either way. ON DUPLICATE KEY UPDATE assigns left
 * to right, so expires_at, which every condition reads, is set last.
 * RETURNING shows the row as it is now: granted when the holder is ours.
 * innodb_lock_wait_timeout bounds the row-lock wait by the caller's time
 * left (whole seconds: 1 with more than 1.2 s left, else 0, a locked row
 * being busy).
 */
static int my_lease_try_returning(lks_conn *c, const char *t, const char *name,
                                  const char *holder, const char *owner_tag, int64_t ttl_us,
                                  lks_baton_mode mode, uint64_t baton,
                                  int64_t lock_wait_us, lks_grant *g)
{
	static const char *const baton_expr[] = {
		[LKS_BATON_TRY] = "GET_LOCK(?, 0) = 1",
		[LKS_BATON_HELD] = "? IS NOT NULL",
		[LKS_BATON_NONE] = "? IS NOT NULL",
		[LKS_BATON_PEEK] = "COALESCE(IS_USED_LOCK(?), CONNECTION_ID()) = CONNECTION_ID()",
	};
	lks_sql q = {.len = 0}, cond = {.len = 0}, own = {.len = 0}, base = {.len = 0};
	char bn[24];
	lks_value p[6] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_TEXT(bn), LKS_INT(ttl_us), LKS_TEXT(bn),
	                  LKS_TEXT(owner_tag)};
	lks_rows r;
	int rc;
	lks_my_baton_name(baton, bn);
	lks_sql_add(&cond,
	            "expires_at <= UTC_TIMESTAMP(6) AND (VALUES(acquired_at) = UTC_TIMESTAMP(6)"
	            " OR expires_at <= UTC_TIMESTAMP(6) - INTERVAL %d MICROSECOND)",
	            LKS_STALE_MS(g) * 1000);
	if (owner_tag) /* the last parameter; assigned before expires_at, which cond reads */
		lks_sql_add(&own, " owner = IF(%s, VALUES(owner), owner),", cond.buf);
	if (c->base_col == 1) /* the last VALUES: no parameter after it */
		lks_sql_add(&base, ", " MY_FLOOR_FENCE " + 1", t);
	lks_sql_add(&q,
	            "SET STATEMENT innodb_lock_wait_timeout = %d FOR"
	            " INSERT INTO %s (name, holder, fence, acquired_at, expires_at%s%s)"
	            " VALUES (?, ?, " MY_FLOOR_FENCE " + 1,"
	            " IF(%s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) - INTERVAL 1 MICROSECOND),"
	            " UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND%s%s)"
	            " ON DUPLICATE KEY UPDATE holder = IF(%s, VALUES(holder), holder),"
	            " fence = IF(%s, fence + 1, fence),"
	            " acquired_at = IF(%s, UTC_TIMESTAMP(6), acquired_at),%s"
	            " expires_at = IF(%s, VALUES(expires_at), expires_at)"
	            " RETURNING holder, fence, TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at),"
	            " COALESCE(IS_USED_LOCK(?) = CONNECTION_ID(), 0)",
	            lock_wait_us >= 1200000 ? 1 : 0, t, owner_tag ? ", owner" : "",
	            c->base_col == 1 ? ", base" : "", t, baton_expr[mode], owner_tag ? ", ?" : "",
	            base.buf, cond.buf, cond.buf, cond.buf, own.buf, cond.buf);
	if (owner_tag) { /* VALUES order: name, holder, baton, ttl, owner; then RETURNING's baton */
		p[4] = LKS_TEXT(owner_tag);
		p[5] = LKS_TEXT(bn);
	}
	g->baton = mode == LKS_BATON_HELD;
	rc = lks_my_query(c, q.buf, p, owner_tag ? 6 : 5, &r);
	if (rc) /* LKS_ETRANSIENT: lease.c takes it as busy */
		return rc;
	if (r.nrows == 1) {
		const char *h = lks_rows_get(&r, 0, 0);
		g->granted = h && !strcmp(h, holder);
		g->released = !h;
		lks_parse_i64(lks_rows_get(&r, 0, 1), &g->fence);
		lks_parse_i64(lks_rows_get(&r, 0, 2), &g->remaining_us);
		g->baton = (mode == LKS_BATON_TRY || mode == LKS_BATON_HELD) && lks_rows_get(&r, 0, 3) &&
		           !strcmp(lks_rows_get(&r, 0, 3), "1");
		if (g->granted && g->remaining_us > ttl_us)
			g->remaining_us = ttl_us;
	}
	lks_rows_clear(&r);
	return LKS_OK;
}

static int64_t *hint_slot(lks_conn *c, uint64_t key)
{
	for (int i = 0; i < MY_HINTS_MAX; i++)
		if (ST(c)->hint[i].key == key && ST(c)->hint[i].fence > 0)
			return &ST(c)->hint[i].fence;
	return NULL;
}

static void hint_put(lks_conn *c, uint64_t key, int64_t fence)
{
	int64_t *slot = hint_slot(c, key);
	if (!slot) {
		unsigned i = ST(c)->hint_next++ % MY_HINTS_MAX;
		ST(c)->hint[i].key = key;
		slot = &ST(c)->hint[i].fence;
	}
	*slot = fence;
}

/*
 * A lease this handle released last is most often still free with the fence
 * it left: a plain UPDATE that names that fence grants it, and the new fence
 * is known without reading it back (MariaDB's UPDATE has no RETURNING). It
 * costs about what the statement a service would write itself costs, where
 * INSERT ... ON DUPLICATE KEY UPDATE ... RETURNING takes a third more server
 * CPU. The hint is only a guess: the WHERE re-checks fence, expiry and the
 * waiting room, so a wrong hint (another grant since, a key collision)
 * matches nothing, and the full statement decides. A locked row is busy.
 */
static int my_lease_try_hinted(lks_conn *c, const char *t, const char *name,
                               const char *holder, const char *owner_tag, int64_t ttl_us,
                               uint64_t baton, int64_t fence, lks_grant *g)
{
	lks_sql q = {.len = 0};
	char bn[24];
	lks_value p[7] = {LKS_TEXT(holder), LKS_INT(fence + 1), LKS_INT(ttl_us)};
	size_t np = 3;
	lks_rows r;
	int rc;
	lks_my_baton_name(baton, bn);
	if (owner_tag)
		p[np++] = LKS_TEXT(owner_tag);
	p[np++] = LKS_TEXT(name);
	p[np++] = LKS_INT(fence);
	p[np++] = LKS_TEXT(bn);
	lks_sql_add(&q,
	            "SET STATEMENT innodb_lock_wait_timeout = 0 FOR"
	            " UPDATE %s SET holder = ?, fence = ?, acquired_at = UTC_TIMESTAMP(6),"
	            " expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND%s"
	            " WHERE name = ? AND fence = ? AND expires_at <= UTC_TIMESTAMP(6)"
	            " AND COALESCE(IS_USED_LOCK(?), CONNECTION_ID()) = CONNECTION_ID()",
	            t, owner_tag ? ", owner = ?" : "");
	rc = lks_my_query(c, q.buf, p, np, &r);
	if (rc)
		return rc; /* LKS_ETRANSIENT: locked, busy */
	if (r.affected == 1) {
		g->granted = 1;
		g->fence = fence + 1;
		g->remaining_us = ttl_us; /* from the statement's own UTC_TIMESTAMP(6) */
	}
	lks_rows_clear(&r);
	return LKS_OK;
}

/*
 * MySQL and MariaDB < 10.5. Free or expired: one UPDATE grants,
 * LAST_INSERT_ID(fence + 1) hands the new fence back without a second query.
 * Otherwise one SELECT reads the holder's remaining time; a name never seen
 * gets its row first (INSERT ... ON DUPLICATE KEY UPDATE, not INSERT IGNORE,
 * which would hide real errors). No waiting room here: waiters poll.
 */
int lks_my_lease_try(lks_conn *c, const char *t, const char *name,
                     const char *holder, const char *owner_tag, int64_t ttl_us,
                     lks_baton_mode mode, uint64_t baton, int64_t lock_wait_us,
                     lks_grant *g)
{
	lks_sql up = {.len = 0}, sel = {.len = 0}, ins = {.len = 0}, base = {.len = 0};
	lks_value pu[4] = {LKS_TEXT(holder), LKS_INT(ttl_us), LKS_TEXT(name)};
	lks_value pn = LKS_TEXT(name);
	lks_rows r;
	int rc;
	lks_grant_clear(g);
	if (mode == LKS_BATON_WOKEN) /* one statement here either way */
		mode = LKS_BATON_HELD;
	if (ST(c)->returning && (mode == LKS_BATON_PEEK || mode == LKS_BATON_NONE)) {
		int64_t *hint = hint_slot(c, baton);
		if (hint) {
			int64_t fence = *hint;
			*hint = 0; /* one try per release */
			if ((rc = my_lease_try_hinted(c, t, name, holder, owner_tag, ttl_us, baton, fence,
			                              g)) || g->granted)
				return rc;
			g->statements++;
		}
	}
	if (ST(c)->returning)
		return my_lease_try_returning(c, t, name, holder, owner_tag, ttl_us, mode, baton,
		                              lock_wait_us, g);
	lks_sql_add(&up,
	            "UPDATE %s SET holder = ?, fence = LAST_INSERT_ID(fence + 1),"
	            " acquired_at = UTC_TIMESTAMP(6),"
	            " expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND%s"
	            " WHERE name = ? AND expires_at <= UTC_TIMESTAMP(6)",
	            t, owner_tag ? ", owner = ?" : "");
	if (owner_tag) {
		pu[2] = LKS_TEXT(owner_tag);
		pu[3] = LKS_TEXT(name);
	}
	lks_sql_add(&sel,
	            "SELECT fence, TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at)"
	            " FROM %s WHERE name = ?",
	            t);
	if (c->base_col == 1)
		lks_sql_add(&base, ", " MY_FLOOR_FENCE " + 1", t);
	lks_sql_add(&ins,
	            "INSERT INTO %s (name, holder, fence, acquired_at, expires_at%s)"
	            " VALUES (?, NULL, " MY_FLOOR_FENCE ", NULL, '1970-01-01'%s)"
	            " ON DUPLICATE KEY UPDATE name = name",
	            t, c->base_col == 1 ? ", base" : "", t, base.buf);
	for (int round = 0; round < 3; round++) {
		if ((rc = lks_my_query(c, up.buf, pu, owner_tag ? 4 : 3, &r)))
			return rc == LKS_ETRANSIENT ? (lks_clear_error(c), LKS_OK) : rc; /* locked: busy */
		int64_t granted = r.affected;
		uint64_t fence = r.insert_id;
		lks_rows_clear(&r);
		if (granted == 1) {
			g->granted = 1;
			g->fence = (int64_t)fence;
			g->remaining_us = ttl_us;
			return LKS_OK;
		}
		g->statements++;
		if ((rc = lks_my_query(c, sel.buf, &pn, 1, &r)))
			return rc;
		if (r.nrows == 1) {
			lks_parse_i64(lks_rows_get(&r, 0, 0), &g->fence);
			lks_parse_i64(lks_rows_get(&r, 0, 1), &g->remaining_us);
			lks_rows_clear(&r);
			if (g->remaining_us > 0)
				return LKS_OK; /* held */
			continue;          /* expired since the UPDATE: try again */
		}
		lks_rows_clear(&r);
		g->statements += 2;
		if ((rc = lks_my_query(c, ins.buf, &pn, 1, &r)))
			return rc;
		lks_rows_clear(&r);
	}
	return LKS_OK;
}

int lks_my_lease_renew(lks_conn *c, const char *t, const char *name,
                       const char *holder, int64_t fence, int64_t ttl_us,
                       int64_t *remaining_us)
{
	lks_sql q = {.len = 0};
	lks_value p[4] = {LKS_INT(ttl_us), LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	int rc;
	lks_sql_add(&q,
	            "%sUPDATE %s SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND"
	            " WHERE name = ? AND holder = ? AND fence = ? AND expires_at > UTC_TIMESTAMP(6)",
	            SYNC(c), t);
	if ((rc = lks_query_grant(c, &q, p, 4, NULL)) == LKS_OK)
		*remaining_us = ttl_us; /* from the statement's own UTC_TIMESTAMP(6) */
	return rc;
}

/* A failed transaction's end: ROLLBACK if it is still open, the first
 * error kept. */
void lks_my_rollback_keeping_error(lks_conn *c)
{
	lks_error_saved saved;
	if (!c->native || !lks_my_in_transaction(c))
		return;
	lks_error_save(c, &saved);
	lks_my_exec(c, "ROLLBACK");
	lks_error_restore(c, &saved);
}

/* Every current grant of the list renewed, then read back, in one
 * transaction (a multi-table UPDATE has no RETURNING). The list is joined
 * first (STRAIGHT_JOIN): primary-key lookups, whatever the table's size. */
#define MY_RENEW_LIST \
	"JSON_TABLE(?, '$[*]' COLUMNS (n VARCHAR(255) CHARACTER SET utf8mb4 PATH '$.n'," \
	" h CHAR(32) CHARACTER SET ascii PATH '$.h', f BIGINT PATH '$.f', t BIGINT PATH '$.t')) AS v" \
	" STRAIGHT_JOIN %s AS l ON l.name = CAST(v.n AS BINARY) AND l.holder = v.h AND l.fence = v.f"

int lks_my_lease_renew_many(lks_conn *c, const char *t, const char *json, lks_rows *out)
{
	lks_sql up = {.len = 0}, sel = {.len = 0};
	lks_value p = LKS_TEXT(json);
	lks_rows r;
	int rc;
	memset(out, 0, sizeof *out);
	lks_sql_add(&up, "UPDATE " MY_RENEW_LIST " SET l.expires_at = UTC_TIMESTAMP(6) + INTERVAL v.t MICROSECOND"
	                 " WHERE l.expires_at > UTC_TIMESTAMP(6)", t);
	lks_sql_add(&sel, "SELECT l.name, l.holder, l.fence,"
	                  " TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), l.expires_at) FROM " MY_RENEW_LIST
	                  " WHERE l.expires_at > UTC_TIMESTAMP(6) LOCK IN SHARE MODE", t);
	if ((rc = lks_my_exec(c, "BEGIN")))
		return rc;
	if ((rc = lks_my_query(c, up.buf, &p, 1, &r)) == LKS_OK) {
		lks_rows_clear(&r);
		rc = lks_my_query(c, sel.buf, &p, 1, out);
	}
	if (rc == LKS_OK && (rc = lks_my_commit(c)))
		lks_rows_clear(out);
	if (rc)
		lks_my_rollback_keeping_error(c);
	return rc;
}

/* With the baton: RELEASE_LOCK runs inside the matched row's update, before
 * the commit; the woken waiter's grant then waits on the row lock for that
 * commit (its row-lock wait is bounded, see my_lease_try_returning). */
int lks_my_lease_release(lks_conn *c, const char *t, const char *name,
                         const char *holder, int64_t fence, bool give_baton,
                         uint64_t baton)
{
	lks_sql q = {.len = 0};
	char bn[24];
	lks_value p[4] = {LKS_TEXT(bn), LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	int rc;
	lks_my_baton_name(baton, bn);
	lks_sql_add(&q, "%sUPDATE %s SET holder = NULL, expires_at = UTC_TIMESTAMP(6)", SYNC(c), t);
	if (give_baton)
		lks_sql_add(&q, " + INTERVAL (COALESCE(RELEASE_LOCK(?), 0) * 0) MICROSECOND");
	lks_sql_add(&q, " WHERE name = ? AND holder = ? AND fence = ? AND expires_at > UTC_TIMESTAMP(6)");
	rc = lks_query_grant(c, &q, give_baton ? p : p + 1, give_baton ? 4 : 3, NULL);
	if (rc == LKS_OK && !give_baton)
		hint_put(c, baton, fence); /* nobody was in line: likely free next time */
	if (rc == LKS_LOST && give_baton) {
		int rc2 = c->ops->baton_give(c, baton); /* the row did not match */
		if (rc2)
			return rc2;
	}
	return rc;
}

/*
 * The fenced write's guard, first statement of its transaction. On one
 * server a share-mode lock on the current grant's row makes a takeover wait
 * for this commit. A Galera node's row locks are its own, and certification
 * compares only what transactions write: there the guard writes the row
 * (writes + 1), so a takeover committed on any node first makes this commit
 * fail certification (lease.c reports LKS_LOST), and a takeover this node
 * applies first aborts the write. See README, "Galera".
 */
int lks_my_lease_guard(lks_conn *c, const char *t, const char *name,
                       const char *holder, int64_t fence)
{
	lks_sql q = {.len = 0};
	lks_value p[3] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	int rc;
	if (!ST(c)->write_guard) {
		lks_sql_add(&q,
		            "SELECT 1 FROM %s WHERE name = ? AND holder = ? AND fence = ?"
		            " AND expires_at > UTC_TIMESTAMP(6) LOCK IN SHARE MODE",
		            t);
		return lks_query_grant(c, &q, p, 3, NULL);
	}
	lks_sql_add(&q,
	            "%sUPDATE %s SET writes = writes + 1 WHERE name = ? AND holder = ? AND fence = ?"
	            " AND expires_at > UTC_TIMESTAMP(6)",
	            SYNC(c), t);
	rc = lks_query_grant(c, &q, p, 3, NULL);
	if (rc == LKS_EDB && c->err_no == 1054) /* ER_BAD_FIELD_ERROR */
		return lks_set_error(c, LKS_EINVAL,
		                     "lease table %s has no writes column, which fenced writes need on"
		                     " Galera: run lks_lease_install (or lockstock install) once",
		                     c->lease_table);
	return rc;
}

/*
 * After a cancel cut the socket, the server still runs the statement: a
 * grant waiting on a row lock would complete when the lock is freed and
 * hold the lease for a whole TTL for a holder nobody knows. So: reconnect
 * (the handle is usable again), KILL the old session, wait until it is gone
 * from the process list, then free any grant with this acquire's holder id
 * (unique to it), in case the grant committed before the kill.
 */
int lks_my_after_cancel(lks_conn *c, const char *t, const char *name, const char *holder)
{
	char sql[160];
	unsigned long id;
	lks_value p[2] = {LKS_TEXT(name), LKS_TEXT(holder)};
	lks_sql q = {.len = 0};
	int64_t gone = 1;
	int rc;
	if (!ST(c)->interrupted)
		return LKS_OK; /* the trip came between statements: the session is whole */
	id = mysql_thread_id(MY(c));
	if ((rc = lks_conn_reset(c)))
		return rc; /* the old session ends when the server sees the socket closed */
	snprintf(sql, sizeof sql, "KILL CONNECTION %lu", id);
	if (lks_my_exec(c, sql) && c->err_no != 1094 /* ER_NO_SUCH_THREAD: already gone */)
		return c->err;
	snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %lu",
	         id);
	for (int i = 0; i < 500 && gone; i++) { /* a killed session ends at its next check */
		if ((rc = lks_query_int(c, sql, NULL, 0, &gone)))
			return rc;
		if (gone)
			lks_sleep_us(10000);
	}
	lks_sql_add(&q, "%sUPDATE %s SET holder = NULL, expires_at = UTC_TIMESTAMP(6)"
	                " WHERE name = ? AND holder = ? AND expires_at > UTC_TIMESTAMP(6)",
	            SYNC(c), t);
	rc = lks_query_grant(c, &q, p, 2, NULL);
	return rc == LKS_LOST ? LKS_OK : rc; /* LKS_LOST: it never got it */
}

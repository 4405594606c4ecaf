/* PostgreSQL backend: the lease statements that grant and keep a lease
 * (grant, a semaphore's grant, renew, release, the fenced-write guard).
 * Reads and administration: lease_admin.c; batons: baton.c. */
#include "pg.h"

/* The plain UPDATE that grants a free or expired lease (see lks_pg_lease_try);
 * a busy, locked or never-seen lease matches nothing here. The baton is
 * checked (PEEK: taken and given back at once) only once the row qualifies;
 * TRY, which keeps it, always goes through the full statement. */
static int pg_lease_try_lean(lks_conn *c, const char *t, const lks_value *p, size_t np,
                             lks_baton_mode mode, lks_grant *g)
{
	lks_sql q = {.len = 0};
	lks_rows r;
	int rc;
	/* without the waiting room (NONE) no text names an advisory-lock
	 * function: engines that lack them (CockroachDB) run these statements */
	lks_sql_add(&q,
	            "UPDATE %s SET holder = $2, fence = fence + 1, acquired_at = clock_timestamp(),"
	            " expires_at = clock_timestamp() + $3::bigint * interval '1 microsecond'%s"
	            " WHERE name = $1 AND expires_at <= clock_timestamp()"
	            " AND CASE WHEN (SELECT CASE WHEN $4::int <> 3 THEN true %s"
	            " ELSE false END FROM (SELECT set_config('lock_timeout', $6::text, true)) s) THEN true"
	            " ELSE expires_at <= clock_timestamp() - interval '%d milliseconds' END"
	            " RETURNING fence, " REMAINING_US,
	            t, np > 6 ? ", owner = $7" : "",
	            mode == LKS_BATON_NONE ? "WHEN $5::bigint IS NULL THEN false"
	                                   : "WHEN pg_try_advisory_lock($5::bigint) THEN pg_advisory_unlock($5::bigint)",
	            LKS_STALE_MS(g));
	rc = lks_pg_query(c, q.buf, p, np, &r);
	if (rc) /* LKS_ETRANSIENT: the row is locked and the wait used up: busy */
		return rc;
	if (r.nrows == 1) {
		g->granted = 1;
		lks_parse_i64(lks_rows_get(&r, 0, 0), &g->fence);
		lks_parse_i64(lks_rows_get(&r, 0, 1), &g->remaining_us);
	}
	lks_rows_clear(&r);
	return LKS_OK;
}

/*
 * One round trip decides the grant. The UPDATE grants a free or expired
 * lease: rows that do not match its WHERE in the snapshot are skipped without
 * a row lock, and a row that changed meanwhile is re-checked on its latest
 * version (EvalPlanQual, with clock_timestamp() evaluated again), so two
 * callers never both win. A name never seen is inserted (ON CONFLICT DO
 * NOTHING: a racing insert just makes this attempt busy). The last branch
 * reports the holder's fence and time left.
 *
 * CTE b runs first and once: it takes the baton (unless held already; see
 * lks_baton_mode for grants without it: a new name, a baton left behind) and
 * bounds this statement's row-lock wait by the caller's time left
 * (set_config(..., true) lasts until the end of this implicit transaction;
 * lease.c refuses to run inside the caller's transaction). A row lock is
 * only ever waited for when the snapshot shows the lease free or expired,
 * that is behind a stale holder's fenced write or a racing grant.
 *
 * A new name starts at the table's fence floor + 1 (lks_lease_purge). The
 * floor is read with a share lock, which sees its latest committed value
 * (or waits for a purge raising it): the statement's snapshot alone could
 * predate a whole insert, release and purge of the same name. Evaluated
 * only when the insert runs (a name the snapshot has no row for).
 *
 * Why not the single INSERT ... ON CONFLICT DO UPDATE ... WHERE expired: it
 * locks the row even when the lease is held, so every busy poll queues on the
 * row lock, in front of the holder's fenced write.
 */
/* The shortest row-lock wait a grant statement is given, whatever the
 * caller's time left: a poll overruns the deadline by at most this much. */
#define LOCK_WAIT_FLOOR_US 50000

/* The fence floor, read with a share lock (see above); a new name starts
 * above it, and says so in base where the table has it. */
#define PG_FLOOR_FENCE "coalesce((SELECT fence FROM %s WHERE name = '' FOR SHARE), 0)"

static void base_value(lks_conn *c, const char *t, lks_sql *out)
{
	if (c->base_col == 1)
		lks_sql_add(out, ", " PG_FLOOR_FENCE " + 1", t);
}

/*
 * grant=single: the same decision in statements that each modify the lease
 * table once at most (CockroachDB refuses two modifications of one table in
 * a statement). The lean UPDATE of a free or expired row; if it matched
 * nothing, the INSERT of a name never seen (at the fence floor + 1, ON
 * CONFLICT DO NOTHING: a racing insert makes this poll busy); if neither,
 * a read of the holder for the busy report. No waiting room (mode NONE):
 * lks_pg_baton_supported says so.
 */
static int pg_lease_try_single(lks_conn *c, const char *t, const lks_value *p, size_t np,
                               lks_grant *g)
{
	lks_sql q = {.len = 0};
	lks_rows r;
	int rc;
	lks_value ins[5] = {p[0], p[1], p[2], p[5], np > 6 ? p[6] : LKS_NULLV};
	lks_sql base = {.len = 0};
	if ((rc = pg_lease_try_lean(c, t, p, np, LKS_BATON_NONE, g)) || g->granted)
		return rc;
	g->statements++;
	base_value(c, t, &base);
	lks_sql_add(&q,
	            "INSERT INTO %s (name, holder, fence, acquired_at, expires_at%s%s)"
	            " SELECT $1, $2, " PG_FLOOR_FENCE " + 1,"
	            " clock_timestamp(), clock_timestamp() + $3::bigint * interval '1 microsecond'%s%s"
	            " FROM (SELECT set_config('lock_timeout', $4::text, true)) s"
	            " WHERE NOT EXISTS (SELECT 1 FROM %s WHERE name = $1)"
	            " ON CONFLICT (name) DO NOTHING RETURNING fence, " REMAINING_US,
	            t, np > 6 ? ", owner" : "", c->base_col == 1 ? ", base" : "", t,
	            np > 6 ? ", $5" : "", base.buf, t);
	if ((rc = lks_pg_query(c, q.buf, ins, np > 6 ? 5 : 4, &r)))
		return rc;
	if (r.nrows == 1) {
		g->granted = 1;
		lks_parse_i64(lks_rows_get(&r, 0, 0), &g->fence);
		lks_parse_i64(lks_rows_get(&r, 0, 1), &g->remaining_us);
	}
	lks_rows_clear(&r);
	if (g->granted)
		return LKS_OK;
	g->statements++;
	q.len = 0;
	lks_sql_add(&q,
	            "SELECT fence, CASE WHEN expires_at > clock_timestamp() THEN " REMAINING_US " ELSE 0 END,"
	            " holder IS NULL FROM %s WHERE name = $1",
	            t);
	if ((rc = lks_pg_query(c, q.buf, p, 1, &r)))
		return rc;
	if (r.nrows == 1) {
		lks_parse_i64(lks_rows_get(&r, 0, 0), &g->fence);
		lks_parse_i64(lks_rows_get(&r, 0, 1), &g->remaining_us);
		g->released = lks_rows_get(&r, 0, 2) && !strcmp(lks_rows_get(&r, 0, 2), "t");
	}
	lks_rows_clear(&r);
	return LKS_OK;
}

int lks_pg_lease_try(lks_conn *c, const char *t, const char *name,
                     const char *holder, const char *owner_tag, int64_t ttl_us,
                     lks_baton_mode mode, uint64_t baton, int64_t lock_wait_us,
                     lks_grant *g)
{
	lks_sql q = {.len = 0};
	char timeout[32];
	lks_value p[7] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(ttl_us), LKS_INT(mode),
	                  LKS_INT((int64_t)baton), LKS_TEXT(timeout), LKS_TEXT(owner_tag)};
	size_t np = owner_tag ? 7 : 6;
	lks_sql base = {.len = 0};
	bool lean_first = mode == LKS_BATON_WOKEN ||
	                  ((mode == LKS_BATON_PEEK || mode == LKS_BATON_NONE) && !g->skip_lean);
	lks_rows r;
	int rc;
	if (mode == LKS_BATON_WOKEN)
		p[3] = LKS_INT(mode = LKS_BATON_HELD);
	/* lock_timeout 0 would mean "wait forever"; the floor lets a free lease's
	 * grant ride out a short relation-extension or index lock wait instead
	 * of calling it busy (seen at 16 threads with 1 ms) */
	snprintf(timeout, sizeof timeout, "%lldms",
	         (long long)(lock_wait_us > LOCK_WAIT_FLOOR_US ? lock_wait_us : LOCK_WAIT_FLOOR_US) / 1000);
	lks_grant_clear(g);
	g->baton = mode == LKS_BATON_HELD;
	if (ST(c)->single_grant)
		return pg_lease_try_single(c, t, p, np, g);
	if (lean_first) {
		/* A first poll, and a waiter the release just woke, try the common
		 * case first, as lean as the statement a service would write
		 * itself: a plain UPDATE of a free or expired lease (and cheap to
		 * plan: the full statement's custom plan alone costs 0.5-1 ms).
		 * Only when it matches nothing does the full statement above run.
		 * The head's other polls (HELD) go straight to it. */
		if ((rc = pg_lease_try_lean(c, t, p, np, mode, g)) || g->granted)
			return rc; /* LKS_ETRANSIENT: lease.c takes it as busy */
		g->statements++;
	}
	base_value(c, t, &base);
	lks_sql_add(&q,
	            "WITH b AS (SELECT %s AS got,"
	            " set_config('lock_timeout', $6::text, true) AS cfg),"
	            " u AS (UPDATE %s SET holder = $2, fence = fence + 1,"
	            " acquired_at = clock_timestamp(),"
	            " expires_at = clock_timestamp() + $3::bigint * interval '1 microsecond'%s"
	            " WHERE name = $1 AND expires_at <= clock_timestamp()"
	            " AND ((SELECT got OR $4::int = 2 FROM b)"
	            " OR expires_at <= clock_timestamp() - interval '%d milliseconds')"
	            " RETURNING fence, expires_at),"
	            " i AS (INSERT INTO %s (name, holder, fence, acquired_at, expires_at%s%s)"
	            " SELECT $1, $2, " PG_FLOOR_FENCE " + 1,"
	            " clock_timestamp(), clock_timestamp() + $3::bigint * interval '1 microsecond'%s%s"
	            " WHERE NOT EXISTS (SELECT 1 FROM %s WHERE name = $1)"
	            " ON CONFLICT (name) DO NOTHING RETURNING fence, expires_at)"
	            " SELECT 1, fence, " REMAINING_US ", (SELECT got AND $4::int <> 3 FROM b), false FROM u"
	            " UNION ALL SELECT 1, fence, " REMAINING_US ", (SELECT got AND $4::int <> 3 FROM b), false FROM i"
	            " UNION ALL SELECT 0, fence, " REMAINING_US ", (SELECT got AND $4::int <> 3 FROM b),"
	            " holder IS NULL FROM %s"
	            " WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM u) AND NOT EXISTS (SELECT 1 FROM i)"
	            " UNION ALL SELECT 0, 0, 0, (SELECT got AND $4::int <> 3 FROM b), true"
	            " WHERE NOT EXISTS (SELECT 1 FROM %s WHERE name = $1)",
	            mode == LKS_BATON_NONE
	                ? "($4::int = 1 AND $5::bigint IS NOT NULL)" /* NONE is 2: false */
	                : "CASE WHEN $4::int = 1 THEN true WHEN $4::int = 2 THEN false"
	                  " WHEN $4::int = 3 THEN CASE WHEN pg_try_advisory_lock($5::bigint)"
	                  " THEN pg_advisory_unlock($5::bigint) ELSE false END"
	                  " ELSE pg_try_advisory_lock($5::bigint) END",
	            t, owner_tag ? ", owner = $7" : "", LKS_STALE_MS(g), t,
	            owner_tag ? ", owner" : "", c->base_col == 1 ? ", base" : "", t,
	            owner_tag ? ", $7" : "", base.buf, t, t, t);
	rc = lks_pg_query(c, q.buf, p, np, &r);
	if (rc) /* LKS_ETRANSIENT: lease.c takes it as busy */
		return rc;
	for (int i = 0; i < r.nrows && !g->granted; i++) {
		/* a granted row wins over the busy report of the same snapshot */
		g->granted = !strcmp(lks_rows_get(&r, i, 0), "1");
		lks_parse_i64(lks_rows_get(&r, i, 1), &g->fence);
		lks_parse_i64(lks_rows_get(&r, i, 2), &g->remaining_us);
		g->baton = lks_rows_get(&r, i, 3) && !strcmp(lks_rows_get(&r, i, 3), "t");
		g->released = lks_rows_get(&r, i, 4) && !strcmp(lks_rows_get(&r, i, 4), "t");
	}
	lks_rows_clear(&r);
	return LKS_OK;
}

int lks_pg_lease_renew(lks_conn *c, const char *t, const char *name,
                       const char *holder, int64_t fence, int64_t ttl_us,
                       int64_t *remaining_us)
{
	lks_sql q = {.len = 0};
	lks_value p[4] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence), LKS_INT(ttl_us)};
	lks_sql_add(&q,
	            "UPDATE %s SET expires_at = clock_timestamp() + $4::bigint * interval '1 microsecond'"
	            " WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > clock_timestamp()"
	            " RETURNING " REMAINING_US,
	            t);
	return lks_query_grant(c, &q, p, 4, remaining_us);
}

/* Every current grant of the list, renewed in one UPDATE (a join with the
 * list, primary-key lookups). */
int lks_pg_lease_renew_many(lks_conn *c, const char *t, const char *json, lks_rows *out)
{
	lks_sql q = {.len = 0};
	lks_value p = LKS_TEXT(json);
	lks_sql_add(&q,
	            "UPDATE %s AS l SET expires_at = clock_timestamp() + v.t * interval '1 microsecond'"
	            " FROM json_to_recordset($1::json) AS v (n text, h text, f bigint, t bigint)"
	            " WHERE l.name = v.n AND l.holder = v.h AND l.fence = v.f"
	            " AND l.expires_at > clock_timestamp()"
	            " RETURNING l.name, l.holder, l.fence, " REMAINING_US,
	            t);
	return lks_pg_query(c, q.buf, &p, 1, out);
}

/* Read one pipelined statement's result and its sync; the matched-row count
 * goes to *affected. A lost connection leaves nothing more to read. */
static int pg_pipeline_result(lks_conn *c, int64_t deadline, int64_t *affected)
{
	PGresult *res;
	int rc = LKS_OK;
	bool synced = false;
	while (!synced) {
		if (!lks_pg_wait_ready(c, deadline))
			return lks_pg_error(c, NULL);
		res = PQgetResult(PG(c));
		if (!res) {
			if (PQstatus(PG(c)) == CONNECTION_BAD)
				return rc ? rc : lks_pg_error(c, NULL);
			continue; /* end of one statement's results */
		}
		switch (PQresultStatus(res)) {
		case PGRES_PIPELINE_SYNC:
			synced = true;
			break;
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
			if (affected)
				*affected = *PQcmdTuples(res) ? strtoll(PQcmdTuples(res), NULL, 10) : 0;
			break;
		case PGRES_PIPELINE_ABORTED:
			break;
		default:
			if (!rc)
				rc = lks_pg_error(c, res);
		}
		PQclear(res);
	}
	return rc;
}

/*
 * The release, then the baton handed on, in one round trip: pipelined as two
 * implicit transactions, so the next waiter wakes only after the release has
 * committed and its grant sees the lease free. Releasing the baton inside
 * the release statement would wake it before the commit.
 */
int lks_pg_lease_release(lks_conn *c, const char *t, const char *name,
                         const char *holder, int64_t fence, bool give_baton,
                         uint64_t baton)
{
	lks_sql q = {.len = 0};
	lks_value p[3] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	lks_value k = LKS_INT((int64_t)baton);
	pg_params rel, unl;
	const char *rel_name, *unl_name;
	int64_t released = 0;
	int rc, rc2;
	/* Committed without waiting for the WAL flush: a release lost in a crash
	 * only keeps the lease until its TTL, and the next grant's durable commit
	 * flushes it anyway (WAL is written in order). Grants stay durable. */
	lks_sql_add(&q,
	            "UPDATE %s SET holder = NULL, expires_at = clock_timestamp()"
	            " WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > clock_timestamp()"
	            " AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL",
	            t);
	if (!give_baton)
		return lks_query_grant(c, &q, p, 3, NULL);
	if ((rc = lks_pg_bind(c, p, 3, &rel)) || (rc = lks_pg_bind(c, &k, 1, &unl)))
		return rc;
	if (!(rel_name = lks_pg_prepare(c, q.buf, 3)) ||
	    !(unl_name = lks_pg_prepare(c, "SELECT pg_advisory_unlock($1::bigint)", 1)))
		return c->err;
	int64_t deadline = lks_pg_deadline(c);
	if (!PQenterPipelineMode(PG(c)))
		return lks_pg_error(c, NULL);
	if (!PQsendQueryPrepared(PG(c), rel_name, 3, rel.vals, NULL, NULL, 0) ||
	    !PQpipelineSync(PG(c)) ||
	    !PQsendQueryPrepared(PG(c), unl_name, 1, unl.vals, NULL, NULL, 0) ||
	    !PQpipelineSync(PG(c))) {
		rc = lks_pg_error(c, NULL);
		if (PQstatus(PG(c)) == CONNECTION_BAD)
			return rc;
	}
	rc2 = pg_pipeline_result(c, deadline, &released);
	rc = rc ? rc : rc2;
	if (PQstatus(PG(c)) != CONNECTION_BAD && !ST(c)->timed_out) {
		rc2 = pg_pipeline_result(c, deadline, NULL);
		rc = rc ? rc : rc2;
	}
	PQexitPipelineMode(PG(c));
	if (rc)
		return rc;
	return released == 1 ? LKS_OK : LKS_LOST;
}

int lks_pg_lease_guard(lks_conn *c, const char *t, const char *name,
                         const char *holder, int64_t fence)
{
	lks_sql q = {.len = 0};
	lks_value p[3] = {LKS_TEXT(name), LKS_TEXT(holder), LKS_INT(fence)};
	/* fence-guard=write: an UPDATE that rewrites the row (a new row version
	 * on PostgreSQL, a write intent on optimistic engines), so a takeover
	 * committed meanwhile makes this transaction fail instead of passing
	 * beside a share lock the engine ignores */
	if (ST(c)->write_guard)
		lks_sql_add(&q,
		            "UPDATE %s SET expires_at = expires_at WHERE name = $1 AND holder = $2"
		            " AND fence = $3 AND expires_at > clock_timestamp() RETURNING 1",
		            t);
	else
		lks_sql_add(&q,
		            "SELECT 1 FROM %s WHERE name = $1 AND holder = $2 AND fence = $3"
		            " AND expires_at > clock_timestamp() FOR SHARE",
		            t);
	return lks_query_grant(c, &q, p, 3, NULL);
}

/* A semaphore's grant in one statement, as a hand-written slot table
 * grabs a row (FOR UPDATE SKIP LOCKED), with the lease's fence and
 * expiry; when nothing is free the last branch reports the soonest expiry
 * and how many slot rows exist (fewer than permits: new ones go through
 * lks_pg_lease_try, which inserts at the fence floor). */
int lks_pg_semaphore_grab(lks_conn *c, const char *t, const char *prefix, int permits,
                          const char *holder, const char *owner_tag, int64_t ttl_us,
                          lks_baton_mode mode, uint64_t baton, int *slot, int *existing,
                          lks_grant *g)
{
	lks_sql q = {.len = 0};
	lks_value p[6] = {LKS_TEXT(prefix), LKS_TEXT(holder), LKS_INT(ttl_us), LKS_INT(permits),
	                  LKS_INT((int64_t)baton), LKS_TEXT(owner_tag)};
	bool peek = mode == LKS_BATON_PEEK;
	lks_rows r;
	int rc;
	/* a newcomer (PEEK) takes a free permit only while nobody waits in the
	 * semaphore's line (its baton is free), or from a slot free for
	 * LKS_SEMAPHORE_LINE_STALE_MS, which a stalled head left: so a releasing worker
	 * never takes its permit back ahead of the line. Without a line (NONE)
	 * no text names an advisory-lock function (CockroachDB). */
	lks_sql_add(&q,
	            "WITH b AS (SELECT %s AS line_free),"
	            " s AS (SELECT $1::text || k::text AS n FROM generate_series(0, $4::int - 1) k),"
	            " u AS (UPDATE %s SET holder = $2, fence = fence + 1, acquired_at = clock_timestamp(),"
	            " expires_at = clock_timestamp() + $3::bigint * interval '1 microsecond'%s"
	            " WHERE name = (SELECT name FROM %s WHERE name IN (SELECT n FROM s)"
	            " AND expires_at <= clock_timestamp() AND ((SELECT line_free FROM b)"
	            " OR expires_at <= clock_timestamp() - interval '%d milliseconds')"
	            " ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED)"
	            " AND expires_at <= clock_timestamp() RETURNING name, fence, " REMAINING_US " AS remaining)"
	            " SELECT name, fence, remaining, 0, true FROM u"
	            " UNION ALL SELECT NULL, 0, min(CASE WHEN expires_at > clock_timestamp() THEN " REMAINING_US
	            " END), count(*), (SELECT line_free FROM b) FROM %s WHERE name IN (SELECT n FROM s)"
	            " AND NOT EXISTS (SELECT 1 FROM u)",
	            peek ? "CASE WHEN pg_try_advisory_lock($5::bigint) THEN pg_advisory_unlock($5::bigint)"
	                   " ELSE false END"
	                 : "$5::bigint IS NOT NULL",
	            t, owner_tag ? ", owner = $6" : "", t, LKS_STALE_MS(g), t);
	if ((rc = lks_pg_query(c, q.buf, p, owner_tag ? 6 : 5, &r)))
		return rc;
	lks_grant_clear(g);
	*slot = -1;
	*existing = 0;
	for (int i = 0; i < r.nrows; i++) {
		int64_t v = 0;
		if (lks_rows_get(&r, i, 0)) {
			g->granted = 1;
			*slot = lks_slot_of(lks_rows_get(&r, i, 0));
			lks_parse_i64(lks_rows_get(&r, i, 1), &g->fence);
			lks_parse_i64(lks_rows_get(&r, i, 2), &g->remaining_us);
		} else {
			if (lks_rows_get(&r, i, 2))
				lks_parse_i64(lks_rows_get(&r, i, 2), &g->remaining_us);
			lks_parse_i64(lks_rows_get(&r, i, 3), &v);
			*existing = (int)v;
			/* held back by the line: wait in it, do not look for others */
			if (peek && lks_rows_get(&r, i, 4) && !strcmp(lks_rows_get(&r, i, 4), "f"))
				*existing = permits;
		}
	}
	lks_rows_clear(&r);
	return LKS_OK;
}

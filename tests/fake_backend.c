/* An in-memory backend for the unit suite: one lease table of one row per
 * name in process memory, on the local monotonic clock as its "server"
 * clock, and a script of replies to inject (transient errors, a lost
 * connection, a reply that comes late). It drives the library's own
 * decisions (the acquire loop: when to poll, when to give a late grant
 * back, when to stop) without a server; nothing here stands for database
 * behaviour, which the integration suites test on real servers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fake_backend.h"

static fake_db *DB(lks_conn *c)
{
	return c->backend;
}

static fake_row *row(fake_db *db, const char *name, bool create)
{
	for (int i = 0; i < db->nrows; i++)
		if (!strcmp(db->rows[i].name, name))
			return &db->rows[i];
	if (!create || db->nrows == FAKE_ROWS)
		return NULL;
	fake_row *r = &db->rows[db->nrows++];
	memset(r, 0, sizeof *r);
	snprintf(r->name, sizeof r->name, "%s", name);
	return r;
}

static void fake_close(lks_conn *c)
{
	c->native = NULL;
}

static int fake_exec(lks_conn *c, const char *sql)
{
	(void)sql;
	return lks_set_error(c, LKS_EUNSUPPORTED, "the fake backend runs no SQL");
}

static int fake_query(lks_conn *c, const char *sql, const lks_value *p, size_t n, lks_rows *out)
{
	(void)p;
	(void)n;
	(void)out;
	return fake_exec(c, sql);
}

static bool fake_in_transaction(lks_conn *c)
{
	(void)c;
	return false;
}

static int fake_has_owner(lks_conn *c, const char *table_q, bool *has)
{
	(void)c;
	(void)table_q;
	*has = false;
	return LKS_OK;
}

static bool fake_no_batons(lks_conn *c)
{
	(void)c;
	return false;
}

/* one grant: the next scripted reply, or the row's own answer */
static int fake_lease_try(lks_conn *c, const char *table_q, const char *name, const char *holder,
                          const char *owner_tag, int64_t ttl_us, lks_baton_mode mode,
                          uint64_t baton, int64_t lock_wait_us, lks_grant *g)
{
	fake_db *db = DB(c);
	fake_reply reply = db->next < db->nscript ? db->script[db->next++] : FAKE_ANSWER;
	int64_t now = lks_now_us();
	fake_row *r;
	(void)table_q;
	(void)owner_tag;
	(void)mode;
	(void)baton;
	(void)lock_wait_us;
	if (db->ntries < FAKE_TRIES)
		db->tries_at[db->ntries] = now;
	db->ntries++;
	g->baton = 0;
	g->released = 0;
	switch (reply) {
	case FAKE_TRANSIENT:
		return lks_set_error(c, LKS_ETRANSIENT, "fake: lock wait timeout");
	case FAKE_CONN_LOST:
		c->native = NULL;
		return lks_set_error(c, LKS_ECONN, "fake: server closed the connection");
	case FAKE_FENCE_MAX:
		return lks_set_error(c, LKS_EOVERFLOW, "fake: fence out of range");
	default:
		break;
	}
	if (!(r = row(db, name, true)))
		return lks_set_error(c, LKS_ENOMEM, "fake: table full");
	if (r->holder[0] && r->expires_us > now) {
		g->granted = 0;
		g->fence = r->fence;
		g->remaining_us = r->expires_us - now;
		return LKS_OK;
	}
	r->fence++;
	snprintf(r->holder, sizeof r->holder, "%s", holder);
	r->expires_us = now + ttl_us;
	db->grants++;
	g->granted = 1;
	g->fence = r->fence;
	g->remaining_us = ttl_us;
	if (reply == FAKE_LATE_REPLY) /* the reply spends the whole TTL on the way */
		lks_sleep_us(ttl_us + 1000);
	return LKS_OK;
}

static int fake_lease_release(lks_conn *c, const char *table_q, const char *name,
                              const char *holder, int64_t fence, bool give_baton, uint64_t baton)
{
	fake_db *db = DB(c);
	fake_row *r = row(db, name, false);
	(void)table_q;
	(void)give_baton;
	(void)baton;
	db->releases++;
	if (!r || strcmp(r->holder, holder) || r->fence != fence || r->expires_us <= lks_now_us())
		return lks_set_error(c, LKS_LOST, "fake: not the current grant");
	r->holder[0] = '\0';
	r->expires_us = lks_now_us();
	return LKS_OK;
}

/* the slot rows that exist, as lease_select_slots returns them: name,
 * holder, fence, remaining_us, held */
static int fake_select_slots(lks_conn *c, const char *table_q, const char *prefix, int permits,
                             bool with_owner, lks_rows *out)
{
	fake_db *db = DB(c);
	int64_t now = lks_now_us();
	size_t plen = strlen(prefix);
	(void)table_q;
	(void)with_owner;
	memset(out, 0, sizeof *out);
	db->scans++;
	out->ncols = 5;
	if (!(out->cells = calloc(FAKE_ROWS * 5, sizeof *out->cells)))
		return lks_set_error(c, LKS_ENOMEM, "fake: out of memory");
	for (int i = 0; i < db->nrows; i++) {
		const fake_row *r = &db->rows[i];
		char cell[5][LKS_LEASE_NAME_MAX + 1];
		bool held = r->holder[0] && r->expires_us > now;
		if (strncmp(r->name, prefix, plen) || atoi(r->name + plen) >= permits)
			continue;
		snprintf(cell[0], sizeof cell[0], "%s", r->name);
		snprintf(cell[1], sizeof cell[1], "%s", held ? r->holder : "");
		snprintf(cell[2], sizeof cell[2], "%lld", (long long)r->fence);
		snprintf(cell[3], sizeof cell[3], "%lld", (long long)(held ? r->expires_us - now : 0));
		snprintf(cell[4], sizeof cell[4], "%d", held);
		for (int k = 0; k < 5; k++)
			out->cells[out->nrows * 5 + k] = strdup(cell[k]);
		out->nrows++;
	}
	return LKS_OK;
}

static const lks_backend_ops fake_ops = {
	.id = LKS_BACKEND_NONE,
	.name = "fake",
	.quote = '"',
	.close = fake_close,
	.exec = fake_exec,
	.query = fake_query,
	.in_transaction = fake_in_transaction,
	.lease_has_owner = fake_has_owner,
	.baton_supported = fake_no_batons,
	.lease_try = fake_lease_try,
	.lease_release = fake_lease_release,
	.lease_select_slots = fake_select_slots,
};

lks_conn *fake_open(fake_db *db)
{
	lks_conn *c = lks_conn_new();
	if (!c)
		return NULL;
	c->ops = &fake_ops;
	c->native = db; /* connected */
	c->backend = db;
	return c;
}

void fake_script(fake_db *db, const fake_reply *replies, int n)
{
	db->nscript = n < FAKE_SCRIPT ? n : FAKE_SCRIPT;
	memcpy(db->script, replies, sizeof *replies * (size_t)db->nscript);
	db->next = 0;
	db->ntries = 0;
}

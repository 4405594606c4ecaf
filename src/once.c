/* Processed once: a completion record per (scope, key), written in the
 * effect's own fenced transaction on a claim lease (see lks_once_run in
 * lockstock.h). The backends own the records' SQL (once_* in the ops). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "utf8.h"
#include "lease.h"

#define ONCE_TABLE_DEFAULT "lks_once"

struct lks_once_ctx {
	int64_t fence;
	char attempt_id[64];
	size_t max;
	int code;
	unsigned char *data;
	size_t len;
	bool too_big;
};

int64_t lks_once_fence(const lks_once_ctx *ctx)
{
	return ctx ? ctx->fence : 0;
}

const char *lks_once_attempt_id(const lks_once_ctx *ctx)
{
	return ctx ? ctx->attempt_id : "";
}

int lks_once_set_result(lks_once_ctx *ctx, int code, const void *data, size_t len)
{
	unsigned char *copy = NULL;
	if (!ctx || (len && !data))
		return LKS_EINVAL;
	if (len > ctx->max) {
		ctx->too_big = true; /* the run fails: nothing may commit */
		return LKS_EINVAL;
	}
	if (len && !(copy = malloc(len)))
		return LKS_ENOMEM;
	if (len)
		memcpy(copy, data, len);
	free(ctx->data);
	ctx->data = copy;
	ctx->len = len;
	ctx->code = code;
	/* too_big stays: a refused result fails the run even when a smaller
	 * one follows (the header's promise: nothing commits) */
	return LKS_OK;
}

static const lks_once_options once_defaults = LKS_ONCE_OPTIONS_INIT;
static const size_t once_sizes[] = {sizeof(lks_once_options)};

int lks_once_options_init(lks_once_options *opts, unsigned int version)
{
	return lks_options_init(opts, &once_defaults, version, once_sizes, LKS_ONCE_OPTIONS_VERSION);
}

void lks_once_result_clear(lks_once_result *r)
{
	if (!r)
		return;
	free(r->data);
	memset(r, 0, sizeof *r);
}

static int table_of(lks_conn *c, const char *table, char out[LKS_IDENT_MAX * 2 + 8])
{
	if (!table)
		table = ONCE_TABLE_DEFAULT;
	if (!lks_ident_valid(table) || lks_ident_quote(table, c->ops->quote, out, LKS_IDENT_MAX * 2 + 8))
		return lks_set_error(c, LKS_EINVAL, "once: table name is not a plain identifier");
	return LKS_OK;
}

/* The steps table: "<table>_steps", quoted. */
static int steps_of(lks_conn *c, const char *table, char out[LKS_IDENT_MAX * 2 + 8])
{
	char name[LKS_IDENT_MAX * 2 + 8];
	if (!table)
		table = ONCE_TABLE_DEFAULT;
	if ((size_t)snprintf(name, sizeof name, "%s_steps", table) >= sizeof name ||
	    !lks_ident_valid(name) || lks_ident_quote(name, c->ops->quote, out, LKS_IDENT_MAX * 2 + 8))
		return lks_set_error(c, LKS_EINVAL, "once: table name %s_steps is not a plain identifier",
		                     table);
	return LKS_OK;
}

int lks_once_install(lks_conn *c, const char *table)
{
	char t[LKS_IDENT_MAX * 2 + 8];
	int rc = lks_conn_check(c);
	if (rc || (rc = table_of(c, table, t)))
		return rc;
	char st[LKS_IDENT_MAX * 2 + 8];
	if ((rc = steps_of(c, table, st)))
		return rc;
	if (c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL, "once install needs a handle without an open transaction");
	if ((rc = c->ops->once_install(c, t)))
		return rc;
	return c->ops->once_steps_install(c, st);
}

static int check_text(lks_conn *c, const char *what, const char *s)
{
	size_t n;
	if (!s)
		return lks_set_error(c, LKS_EINVAL, "once: %s is NULL", what);
	n = strnlen(s, LKS_ONCE_KEY_MAX + 1);
	if (n == 0)
		return lks_set_error(c, LKS_EINVAL, "once: %s is empty", what);
	if (n > LKS_ONCE_KEY_MAX)
		return lks_set_error(c, LKS_EINVAL, "once: %s is longer than %d bytes", what,
		                     LKS_ONCE_KEY_MAX);
	if (!lks_utf8_valid(s))
		return lks_set_error(c, LKS_EINVAL, "once: %s is not valid UTF-8", what);
	return LKS_OK;
}

static int check_options(lks_conn *c, const lks_once_options *in, lks_once_options *o)
{
	int rc;
	*o = once_defaults;
	if ((rc = lks_options_copy(c, "once", o, in, once_sizes, LKS_ONCE_OPTIONS_VERSION)))
		return rc;
	if (o->fingerprint_len > LKS_ONCE_FINGERPRINT_MAX || (o->fingerprint_len && !o->fingerprint))
		return lks_set_error(c, LKS_EINVAL, "once options: fingerprint must be 0..%d bytes",
		                     LKS_ONCE_FINGERPRINT_MAX);
	if (o->claim_ttl_ms <= 0 || o->claim_ttl_ms > LKS_LEASE_TTL_MAX_MS)
		return lks_set_error(c, LKS_EINVAL, "once options: claim_ttl_ms must be 1..%lld",
		                     (long long)LKS_LEASE_TTL_MAX_MS);
	if (o->wait_ms < 0 || o->wait_ms > LKS_LEASE_TTL_MAX_MS)
		return lks_set_error(c, LKS_EINVAL, "once options: wait_ms must be 0..%lld",
		                     (long long)LKS_LEASE_TTL_MAX_MS);
	if (o->max_result_bytes > LKS_ONCE_RESULT_LIMIT)
		return lks_set_error(c, LKS_EINVAL, "once options: max_result_bytes must be at most %d",
		                     LKS_ONCE_RESULT_LIMIT);
	return LKS_OK;
}

/* Every call's arguments: scope, key, options, and the quoted table. */
static int check_call(lks_conn *c, const char *scope, const char *key,
                      const lks_once_options *opts, lks_once_options *o,
                      char t[LKS_IDENT_MAX * 2 + 8])
{
	int rc;
	if ((rc = check_text(c, "scope", scope)) || (rc = check_text(c, "key", key)) ||
	    (rc = check_options(c, opts, o)))
		return rc;
	return table_of(c, o->table, t);
}

/* The claim's lease name: the key's own text would not fit beside the scope
 * in 255 bytes, so two 64-bit hashes of (scope, key). A collision only makes
 * two keys wait for each other: the record's primary key decides. */
static void claim_name(const char *scope, const char *key, char out[64])
{
	uint64_t a = lks_baton_key(scope, key), b = lks_baton_key(key, scope);
	snprintf(out, 64, "lks-once:%016" PRIx64 "%016" PRIx64, a, b);
}

/* A record's columns from col on (code, result hex, fence, completed_at_us,
 * fingerprint hex, failed) into *res (its data freshly allocated). */
static int decode_record(lks_conn *c, const lks_rows *r, int row, int col, lks_once_result *res)
{
	const char *hex = lks_rows_get(r, row, col + 1) ? lks_rows_get(r, row, col + 1) : "";
	int64_t code = 0, failed = 0;
	lks_once_result_clear(res);
	if (lks_parse_i64(lks_rows_get(r, row, col), &code) ||
	    lks_parse_i64(lks_rows_get(r, row, col + 2), &res->fence) ||
	    lks_parse_i64(lks_rows_get(r, row, col + 3), &res->completed_at_us) ||
	    lks_parse_i64(lks_rows_get(r, row, col + 5), &failed) ||
	    !(res->data = malloc(strlen(hex) / 2 + 1)) || lks_unhex(hex, res->data, &res->len)) {
		lks_once_result_clear(res);
		return lks_set_error(c, LKS_EDB, "once: a record is malformed");
	}
	res->code = (int)code;
	res->failed = failed != 0;
	return LKS_OK;
}

/* Look the record up. LKS_OK with *found = 0 or 1 (then result filled),
 * LKS_MISMATCH, or an error. */
static int lookup(lks_conn *c, const char *t, const char *scope, const char *key,
                  const lks_once_options *o, int *found, lks_once_result *res)
{
	lks_rows r;
	const char *fp;
	int rc;
	*found = 0;
	if ((rc = c->ops->once_select(c, t, scope, key, &r)))
		return lks_missing_table(c, rc, "once", t, "lks_once_install(c, table)");
	if (r.nrows == 0) {
		lks_rows_clear(&r);
		return LKS_OK;
	}
	fp = lks_rows_get(&r, 0, 4);
	if (o->fingerprint) {
		char *want = lks_hex_of(o->fingerprint, o->fingerprint_len);
		bool same = want && fp && !strcmp(want, fp);
		if (!want) {
			lks_rows_clear(&r);
			return lks_set_error(c, LKS_ENOMEM, "out of memory");
		}
		free(want);
		if (!same) {
			lks_rows_clear(&r);
			return lks_set_error(c, LKS_MISMATCH,
			                     "once: key %s in scope %s was recorded with another fingerprint",
			                     key, scope);
		}
	}
	*found = 1;
	if (res && (rc = decode_record(c, &r, 0, 0, res))) {
		lks_rows_clear(&r);
		return rc;
	}
	if (res)
		res->replayed = 1;
	lks_rows_clear(&r);
	return LKS_OK;
}

typedef struct run_ctx {
	const char *t, *scope, *key;
	const lks_once_options *o;
	lks_once_fn fn;
	void *arg;
	lks_once_ctx ctx;
	int fn_rc;      /* what the callback returned */
	bool record_only; /* the second pass of record_failures: no callback */
	const char *steps_q; /* lks_once_complete: the key's step goes with it */
	const char *step;    /* lks_once_step_save: the step to save */
} run_ctx;

static int record(lks_conn *c, run_ctx *r, int64_t fence, bool failed)
{
	char *fp = r->o->fingerprint ? lks_hex_of(r->o->fingerprint, r->o->fingerprint_len) : NULL;
	char *data = lks_hex_of(r->ctx.data ? r->ctx.data : (unsigned char *)"", r->ctx.len);
	int rc;
	if ((r->o->fingerprint && !fp) || !data)
		rc = lks_set_error(c, LKS_ENOMEM, "out of memory");
	else
		rc = lks_missing_table(c, c->ops->once_insert(c, r->t, r->scope, r->key, fp, r->ctx.code,
		                                              data, fence, failed),
		                       "once", r->t, "lks_once_install(c, table)");
	free(fp);
	free(data);
	return rc;
}

/* Inside the fenced transaction: the effect, then its record. */
static int in_transaction(lks_conn *c, int64_t fence, void *arg)
{
	run_ctx *r = arg;
	if (r->record_only)
		return record(c, r, fence, true);
	r->ctx.fence = fence;
	snprintf(r->ctx.attempt_id, sizeof r->ctx.attempt_id, "%016" PRIx64 "-%" PRId64,
	         lks_baton_key(r->scope, r->key), fence);
	r->fn_rc = r->fn(c, &r->ctx, r->arg);
	if (r->ctx.too_big)
		return lks_set_error(c, LKS_EINVAL, "once: the result is larger than %zu bytes; nothing"
		                                    " was committed", r->ctx.max);
	if (r->fn_rc != LKS_OK)
		return r->fn_rc;
	if (c->ops->in_transaction && !c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL, "once: the callback ended the transaction;"
		                                    " its effect may have committed without a record");
	return record(c, r, fence, false);
}

static void ran_result(run_ctx *r, lks_once_result *res, int64_t fence, bool failed)
{
	if (!res)
		return;
	lks_once_result_clear(res);
	res->fence = fence;
	res->code = r->ctx.code;
	res->failed = failed;
	res->data = r->ctx.data;
	res->len = r->ctx.len;
	r->ctx.data = NULL;
	res->completed_at_us = 0;
}

/* How long a duplicate waits for the claim before it looks for the
 * record again. */
#define ONCE_LOOK_MS 200

int lks_once_run(lks_conn *c, const char *scope, const char *key, const lks_once_options *opts,
                 lks_once_fn fn, void *arg, lks_once_result *res)
{
	char t[LKS_IDENT_MAX * 2 + 8], name[64];
	lks_once_options o;
	lks_lease_acquire_options ao = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *claim = NULL;
	run_ctx r;
	int found, rc = lks_conn_check(c);
	if (res)
		memset(res, 0, sizeof *res);
	if (rc || (rc = check_call(c, scope, key, opts, &o, t)))
		return rc;
	if (!fn)
		return lks_set_error(c, LKS_EINVAL, "once: callback is NULL");
	if (c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL, "once needs a handle without an open transaction");
	/* completed before: one round trip, no lock */
	if ((rc = lookup(c, t, scope, key, &o, &found, res)) || found)
		return rc;
	claim_name(scope, key, name);
	ao.cancel = o.cancel;
	/* A duplicate waits in slices and looks for the record between them:
	 * once the first call completes, every duplicate replays within a
	 * slice, instead of taking the claim in turn only to find the record
	 * (31 hand-offs one after another for 32 callers). */
	int64_t deadline = lks_now_us() + o.wait_ms * 1000;
	for (;;) {
		int64_t left_ms = (deadline - lks_now_us()) / 1000;
		if (left_ms < 0)
			left_ms = 0;
		rc = lks_lease_acquire(&claim, c, name, o.claim_ttl_ms,
		                       left_ms < ONCE_LOOK_MS ? left_ms : ONCE_LOOK_MS, &ao);
		if (rc != LKS_BUSY && rc != LKS_TIMEOUT)
			break;
		/* the other run may have completed */
		int rc2 = lookup(c, t, scope, key, &o, &found, res);
		if (rc2)
			return rc2;
		if (found) {
			lks_clear_error(c);
			return LKS_OK;
		}
		if (lks_now_us() >= deadline)
			return lks_set_error(c, o.wait_ms ? LKS_TIMEOUT : LKS_BUSY,
			                     "once: key %s in scope %s is being processed by another call",
			                     key, scope);
	}
	if (rc)
		return rc;
	/* granted: whoever held the claim before may have completed it */
	if ((rc = lookup(c, t, scope, key, &o, &found, res)) || found) {
		lks_lease_release(c, claim);
		lks_lease_free(claim);
		if (!rc)
			lks_clear_error(c);
		return rc;
	}
	memset(&r, 0, sizeof r);
	r = (run_ctx){.t = t, .scope = scope, .key = key, .o = &o, .fn = fn, .arg = arg};
	r.ctx.max = o.max_result_bytes;
	rc = lks_lease_fenced_write(c, claim, in_transaction, &r);
	if (rc != LKS_OK && r.fn_rc != LKS_OK && rc == r.fn_rc && o.record_failures &&
	    !r.ctx.too_big) {
		/* the effect is rolled back; the failure gets a record of its own */
		int fn_rc = r.fn_rc;
		r.record_only = true;
		rc = lks_lease_fenced_write(c, claim, in_transaction, &r);
		if (rc == LKS_OK)
			ran_result(&r, res, lks_lease_fence(claim), true);
		else
			r.fn_rc = fn_rc;
	} else if (rc == LKS_OK) {
		ran_result(&r, res, lks_lease_fence(claim), false);
	}
	if (rc != LKS_EUNKNOWN && rc != LKS_ECONN) {
		/* keep the run's error across the release */
		lks_error_saved saved;
		lks_error_save(c, &saved);
		lks_lease_release(c, claim);
		if (rc) {
			lks_error_restore(c, &saved);
		} else {
			lks_clear_error(c);
		}
	}
	lks_lease_free(claim);
	free(r.ctx.data);
	return rc;
}

int lks_once_purge(lks_conn *c, const char *table, int64_t older_than_ms, int batch,
                   int64_t *deleted)
{
	char t[LKS_IDENT_MAX * 2 + 8];
	int64_t n = 0, total = 0;
	int rc = lks_conn_check(c);
	if (deleted)
		*deleted = 0;
	if (rc || (rc = table_of(c, table, t)))
		return rc;
	if (older_than_ms < 0 || older_than_ms > 100LL * 365 * 86400 * 1000)
		return lks_set_error(c, LKS_EINVAL, "once purge: older_than_ms must be 0..100 years");
	if (batch < 1 || batch > 10000)
		return lks_set_error(c, LKS_EINVAL, "once purge: batch must be 1..10000");
	if (c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL, "once purge needs a handle without an open transaction");
	do {
		if ((rc = lks_missing_table(c, c->ops->once_purge(c, t, older_than_ms * 1000, batch, &n),
		                            "once", t, "lks_once_install(c, table)")))
			break;
		total += n;
	} while (n == batch);
	if (deleted)
		*deleted = total;
	return rc;
}

int lks_once_lookup(lks_conn *c, const char *scope, const char *key, const lks_once_options *opts,
                    lks_once_result *res)
{
	char t[LKS_IDENT_MAX * 2 + 8];
	lks_once_options o;
	int found, rc = lks_conn_check(c);
	if (res)
		memset(res, 0, sizeof *res);
	if (rc || (rc = check_call(c, scope, key, opts, &o, t)))
		return rc;
	if ((rc = lookup(c, t, scope, key, &o, &found, res)))
		return rc;
	return found ? LKS_OK
	             : lks_set_error(c, LKS_NOT_FOUND, "once: no record of key %s in scope %s", key,
	                             scope);
}

static int record_in_transaction(lks_conn *c, int64_t fence, void *arg)
{
	run_ctx *r = arg;
	int rc = record(c, r, fence, false);
	if (rc == LKS_OK && r->steps_q)
		rc = c->ops->once_step_delete(c, r->steps_q, r->scope, r->key);
	return rc;
}

static int step_in_transaction(lks_conn *c, int64_t fence, void *arg)
{
	run_ctx *r = arg;
	char *data = lks_hex_of(r->ctx.data ? r->ctx.data : (unsigned char *)"", r->ctx.len);
	int rc = data ? c->ops->once_step_put(c, r->steps_q, r->scope, r->key, r->step, data, fence)
	              : lks_set_error(c, LKS_ENOMEM, "out of memory");
	free(data);
	return rc;
}

int lks_once_complete(lks_conn *c, const lks_lease *lease, const char *scope, const char *key,
                      const lks_once_options *opts, int code, const void *data, size_t len)
{
	char t[LKS_IDENT_MAX * 2 + 8];
	lks_once_options o;
	run_ctx r;
	int found, rc = lks_conn_check(c);
	if (rc || (rc = check_call(c, scope, key, opts, &o, t)))
		return rc;
	if (!lease)
		return lks_set_error(c, LKS_EINVAL, "once: lease is NULL");
	if (len > o.max_result_bytes || (len && !data))
		return lks_set_error(c, LKS_EINVAL, "once: the result must be 0..%zu bytes",
		                     o.max_result_bytes);
	/* recorded already (by an earlier holder): say so, write nothing */
	if ((rc = lookup(c, t, scope, key, &o, &found, NULL)))
		return rc;
	if (found)
		return lks_set_error(c, LKS_CONFLICT, "once: key %s in scope %s is recorded already",
		                     key, scope);
	char st[LKS_IDENT_MAX * 2 + 8];
	if ((rc = steps_of(c, o.table, st)))
		return rc;
	r = (run_ctx){.t = t, .scope = scope, .key = key, .o = &o, .steps_q = st};
	r.ctx.code = code;
	r.ctx.data = (unsigned char *)data; /* borrowed: record() only reads it */
	r.ctx.len = len;
	return lks_lease_fenced_write(c, lease, record_in_transaction, &r);
}

int lks_once_forget(lks_conn *c, const char *table, const char *scope, const char *key)
{
	char t[LKS_IDENT_MAX * 2 + 8];
	int rc = lks_conn_check(c);
	if (rc || (rc = check_text(c, "scope", scope)) || (rc = check_text(c, "key", key)) ||
	    (rc = table_of(c, table, t)))
		return rc;
	char st[LKS_IDENT_MAX * 2 + 8];
	if ((rc = steps_of(c, table, st)))
		return rc;
	rc = lks_missing_table(c, c->ops->once_forget(c, t, scope, key), "once", t,
	                       "lks_once_install(c, table)");
	if (rc == LKS_OK || rc == LKS_NOT_FOUND) { /* a step left by a run that never completed */
		int rc2 = c->ops->once_step_delete(c, st, scope, key);
		if (rc2)
			return rc2;
	}
	return rc == LKS_NOT_FOUND ? lks_set_error(c, rc, "once: no record of key %s in scope %s",
	                                           key, scope)
	                           : rc;
}

int lks_once_list(lks_conn *c, const char *table, const char *scope, int limit,
                  lks_once_list_fn fn, void *arg)
{
	char t[LKS_IDENT_MAX * 2 + 8];
	lks_rows r;
	int rc = lks_conn_check(c);
	if (rc || (scope && (rc = check_text(c, "scope", scope))) || (rc = table_of(c, table, t)))
		return rc;
	if (!fn || limit < 0)
		return lks_set_error(c, LKS_EINVAL, "once list: callback is NULL or limit negative");
	if ((rc = lks_missing_table(c, c->ops->once_list(c, t, scope, limit, &r), "once", t,
	                            "lks_once_install(c, table)")))
		return rc;
	for (int i = 0; i < r.nrows && rc == LKS_OK; i++) {
		lks_once_result res = {0};
		if ((rc = decode_record(c, &r, i, 2, &res)) == LKS_OK)
			rc = fn(lks_rows_get(&r, i, 0), lks_rows_get(&r, i, 1), &res, arg);
		lks_once_result_clear(&res);
	}
	lks_rows_clear(&r);
	return rc;
}

int lks_once_step_save(lks_conn *c, const lks_lease *lease, const char *scope, const char *key,
                       const lks_once_options *opts, const char *step, const void *data,
                       size_t len)
{
	char t[LKS_IDENT_MAX * 2 + 8], st[LKS_IDENT_MAX * 2 + 8];
	lks_once_options o;
	run_ctx r;
	int rc = lks_conn_check(c);
	if (rc || (rc = check_call(c, scope, key, opts, &o, t)) || (rc = steps_of(c, o.table, st)))
		return rc;
	if (!lease)
		return lks_set_error(c, LKS_EINVAL, "once: lease is NULL");
	if (!step || !*step || strlen(step) > LKS_ONCE_STEP_MAX || !lks_utf8_valid(step))
		return lks_set_error(c, LKS_EINVAL, "once: a step name is 1..%d bytes of UTF-8",
		                     LKS_ONCE_STEP_MAX);
	if (len > o.max_result_bytes || (len && !data))
		return lks_set_error(c, LKS_EINVAL, "once: step data must be 0..%zu bytes",
		                     o.max_result_bytes);
	r = (run_ctx){.t = t, .scope = scope, .key = key, .o = &o, .steps_q = st, .step = step};
	r.ctx.data = (unsigned char *)data; /* borrowed */
	r.ctx.len = len;
	return lks_lease_fenced_write(c, lease, step_in_transaction, &r);
}

int lks_once_step_load(lks_conn *c, const char *scope, const char *key,
                       const lks_once_options *opts, char step[LKS_ONCE_STEP_MAX + 1],
                       lks_once_result *data)
{
	char t[LKS_IDENT_MAX * 2 + 8], st[LKS_IDENT_MAX * 2 + 8];
	lks_once_options o;
	lks_rows r;
	int rc = lks_conn_check(c);
	if (data)
		memset(data, 0, sizeof *data);
	if (rc || (rc = check_call(c, scope, key, opts, &o, t)) || (rc = steps_of(c, o.table, st)))
		return rc;
	if (!step)
		return lks_set_error(c, LKS_EINVAL, "once: step is NULL");
	step[0] = '\0';
	if ((rc = lks_missing_table(c, c->ops->once_step_get(c, st, scope, key, &r), "once steps",
	                            st, "lks_once_install(c, table)")))
		return rc;
	if (r.nrows == 0) {
		lks_rows_clear(&r);
		return lks_set_error(c, LKS_NOT_FOUND, "once: no step saved for key %s in scope %s", key,
		                     scope);
	}
	snprintf(step, LKS_ONCE_STEP_MAX + 1, "%s", lks_rows_get(&r, 0, 0) ? lks_rows_get(&r, 0, 0) : "");
	if (data) {
		const char *hex = lks_rows_get(&r, 0, 1) ? lks_rows_get(&r, 0, 1) : "";
		if (lks_parse_i64(lks_rows_get(&r, 0, 2), &data->fence) ||
		    lks_parse_i64(lks_rows_get(&r, 0, 3), &data->completed_at_us) ||
		    !(data->data = malloc(strlen(hex) / 2 + 1)) || lks_unhex(hex, data->data, &data->len)) {
			lks_once_result_clear(data);
			rc = lks_set_error(c, LKS_EDB, "once: the step of %s is malformed", key);
		}
	}
	lks_rows_clear(&r);
	return rc;
}

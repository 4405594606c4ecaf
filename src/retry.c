/* The optimistic retry loop: a deadline (and attempts, if asked),
 * full-jitter exponential backoff with a cap; retries conflicts and
 * transient errors. */
#include <stddef.h>
#include <string.h>
#include "internal.h"
#include "retry.h"

int lks_retry_run(const lks_retry_options *o, const lks_retry_env *env,
                  lks_attempt_fn fn, lks_conn *c, void *arg, lks_retry_stats *st)
{
	uint64_t rng = o->seed;
	int64_t start = env->now(env->ctx);
	/* saturating: a huge timeout (INT64_MAX meant as "none") is no deadline */
	int64_t deadline = o->timeout_ms <= 0 || o->timeout_ms > (INT64_MAX - start) / 1000
	                       ? INT64_MAX
	                       : start + o->timeout_ms * 1000;
	int rc = LKS_OK;

	memset(st, 0, sizeof *st);
	for (int attempt = 0;; attempt++) {
		int64_t delay, now;
		if (lks_cancel_is_tripped(o->cancel)) {
			st->gave_up = LKS_CANCELED;
			lks_emit(c, LKS_EVENT_CANCELED, NULL, 0, 0, 0, attempt, LKS_CANCELED);
			return LKS_CANCELED;
		}
		st->attempts++;
		rc = fn(c, attempt + 1, arg);
		/* whatever a failed attempt left open is rolled back: on MySQL the
		 * next BEGIN would otherwise commit its writes */
		if (rc != LKS_OK && env->rollback)
			env->rollback(env->ctx, c);
		if (rc == LKS_CONFLICT)
			st->conflicts++;
		else if (rc == LKS_ETRANSIENT)
			st->transient++;
		else
			return rc; /* applied, not found, or an error a retry cannot fix */
		if (o->max_attempts > 0 && st->attempts >= o->max_attempts) {
			st->gave_up = LKS_CONFLICT;
			return rc == LKS_ETRANSIENT ? rc : LKS_CONFLICT;
		}
		now = env->now(env->ctx);
		delay = lks_backoff_us(attempt, o->base_delay_us, o->max_delay_us, &rng);
		if (now >= deadline || (deadline - now) <= delay) {
			st->gave_up = LKS_TIMEOUT;
			return LKS_TIMEOUT;
		}
		if (rc == LKS_ETRANSIENT)
			lks_emit(c, LKS_EVENT_TRANSIENT, NULL, 0, 0, 0, attempt + 1, rc);
		lks_emit(c, LKS_EVENT_RETRY, NULL, 0, delay, 0, attempt + 1, rc);
		if (env->sleep(env->ctx, delay, o->cancel)) {
			st->gave_up = LKS_CANCELED;
			lks_emit(c, LKS_EVENT_CANCELED, NULL, 0, 0, 0, attempt + 1, LKS_CANCELED);
			return LKS_CANCELED;
		}
		st->slept_us += delay;
	}
}

static int64_t real_now(void *ctx)
{
	(void)ctx;
	return lks_now_us();
}
static bool real_sleep(void *ctx, int64_t us, lks_cancel *cancel)
{
	(void)ctx;
	return lks_cancel_sleep(cancel, us);
}
/* A retry needs a fresh snapshot: end a transaction the attempt left open,
 * unless the caller had opened it before lks_retry (never ours to end). */
static void real_rollback(void *ctx, lks_conn *c)
{
	const bool *callers = ctx;
	lks_error_saved saved;
	if (!*callers && c && c->native && c->ops->in_transaction(c)) {
		lks_error_save(c, &saved); /* the attempt's error is what counts */
		c->ops->exec(c, "ROLLBACK");
		lks_error_restore(c, &saved);
	}
}

/* what each version of lks_retry_options has (version 2: the cancel token) */
static const size_t retry_sizes[] = {offsetof(lks_retry_options, cancel), sizeof(lks_retry_options)};

int lks_retry(lks_conn *c, const lks_retry_options *opts, lks_attempt_fn fn,
              void *arg, lks_retry_stats *stats)
{
	static const lks_retry_options defaults = LKS_RETRY_OPTIONS_INIT;
	lks_retry_options o = defaults;
	bool callers;
	lks_retry_env env = {real_now, real_sleep, real_rollback, &callers};
	lks_retry_stats local;
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	callers = c->ops->in_transaction(c);
	if (!fn)
		return lks_set_error(c, LKS_EINVAL, "callback is NULL");
	if ((rc = lks_options_copy(c, "retry", &o, opts, retry_sizes, LKS_RETRY_OPTIONS_VERSION)))
		return rc;
	if (o.max_attempts < 0 || o.timeout_ms < 0 || o.base_delay_us < 0 ||
	    o.max_delay_us < o.base_delay_us)
		return lks_set_error(c, LKS_EINVAL,
		                     "retry options: need max_attempts >= 0, timeout_ms >= 0, 0 <= base_delay_us"
		                     " <= max_delay_us (got %d, %lld, %lld, %lld)",
		                     o.max_attempts, (long long)o.timeout_ms, (long long)o.base_delay_us,
		                     (long long)o.max_delay_us);
	if (o.max_attempts == 0 && o.timeout_ms == 0)
		return lks_set_error(c, LKS_EINVAL,
		                     "retry options: max_attempts 0 (no limit) needs a timeout_ms to bound"
		                     " the loop");
	if (o.seed == 0 && lks_random_bytes(&o.seed, sizeof o.seed))
		o.seed = (uint64_t)lks_now_us();
	rc = lks_retry_run(&o, &env, fn, c, arg, stats ? stats : &local);
	if (rc == LKS_CONFLICT)
		lks_set_error(c, rc, "gave up after %d attempts", (stats ? stats : &local)->attempts);
	else if (rc == LKS_TIMEOUT)
		lks_set_error(c, rc, "retry deadline passed after %d attempts",
		              (stats ? stats : &local)->attempts);
	else if (rc == LKS_CANCELED)
		lks_set_error(c, rc, "canceled after %d attempts", (stats ? stats : &local)->attempts);
	return rc;
}

int lks_retry_options_init(lks_retry_options *opts, unsigned int version)
{
	static const lks_retry_options defaults = LKS_RETRY_OPTIONS_INIT;
	return lks_options_init(opts, &defaults, version, retry_sizes, LKS_RETRY_OPTIONS_VERSION);
}

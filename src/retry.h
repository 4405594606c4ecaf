/* The retry loop with its clock, sleep and rollback injected, so the unit
 * suite can drive it without a server or real time. */
#ifndef LKS_RETRY_H
#define LKS_RETRY_H
#include "internal.h"

typedef struct lks_retry_env {
	int64_t (*now)(void *ctx);
	bool (*sleep)(void *ctx, int64_t us, lks_cancel *cancel); /* true: canceled */
	void (*rollback)(void *ctx, lks_conn *c);
	void *ctx;
} lks_retry_env;

int lks_retry_run(const lks_retry_options *o, const lks_retry_env *env,
                  lks_attempt_fn fn, lks_conn *c, void *arg, lks_retry_stats *st);
#endif

/* MySQL backend: the waiting room's batons (GET_LOCK names). */
#include "my.h"

/* GET_LOCK name of a baton: at most 64 characters. */
void lks_my_baton_name(uint64_t baton, char out[24])
{
	snprintf(out, 24, "lks:%016" PRIx64, baton);
}

int lks_my_baton_held(lks_conn *c, uint64_t baton, int *held)
{
	char bn[24];
	lks_value p = LKS_TEXT(bn);
	int64_t v = 0;
	int rc;
	lks_my_baton_name(baton, bn);
	rc = lks_query_int(c, "SELECT COALESCE(IS_USED_LOCK(?) = CONNECTION_ID(), 0)", &p, 1, &v);
	*held = v == 1;
	return rc;
}

bool lks_my_baton_supported(lks_conn *c)
{
	return ST(c)->returning;
}

int lks_my_baton_wait(lks_conn *c, uint64_t baton, int64_t timeout_us, int *got)
{
	char bn[24], secs[32];
	lks_value p[2] = {LKS_TEXT(bn), LKS_TEXT(secs)};
	int64_t v = 0;
	int rc;
	lks_my_baton_name(baton, bn);
	snprintf(secs, sizeof secs, "%lld.%06lld", (long long)(timeout_us / 1000000),
	         (long long)(timeout_us % 1000000));
	rc = lks_query_int(c, "SELECT COALESCE(GET_LOCK(?, ?), 0)", p, 2, &v);
	*got = rc == LKS_OK && v == 1;
	if (rc == LKS_OK && !*got) /* a grant racing the timeout is still ours */
		rc = lks_my_baton_held(c, baton, got);
	return rc;
}

int lks_my_baton_give(lks_conn *c, uint64_t baton)
{
	char bn[24];
	lks_value p = LKS_TEXT(bn);
	int64_t v;
	lks_my_baton_name(baton, bn);
	return lks_query_int(c, "SELECT COALESCE(RELEASE_LOCK(?), 0)", &p, 1, &v);
}

/*
 * Counting semaphores on the lease table. Permit k of semaphore NAME is the
 * lease row "NAME␟k" (U+241F, SYMBOL FOR UNIT SEPARATOR, which lease grants
 * refuse in names), 0 <= k < permits. Each slot is an ordinary lease: its
 * own fence that only grows, server-clock expiry, renew, release,
 * auto-renew, fenced writes, once records, inspect, list, force release and
 * purge all work on it unchanged. At most one holder per slot, so at most
 * `permits` holders among callers that pass the same permits.
 *
 * Why slots and not a count column: a count cannot say which holder a
 * fenced write comes from, and a crashed holder's permit would need a
 * sweeper. A slot's row expires at its holder's TTL like any lease.
 *
 * The acquire loop is lease.c's (deadline, cancel, op timeouts, stats,
 * events); this file picks the slot each poll tries.
 */
#include <stdio.h>
#include <string.h>
#include "internal.h"
#include "utf8.h"
#include "lockstock.h"

/* A grant that finds the slot taken by a racing grant tries another free
 * one at once, a few times, before waiting. */
int lks_semaphore_check(lks_conn *c, const char *name, int permits)
{
	size_t n;
	if (!name)
		return lks_set_error(c, LKS_EINVAL, "semaphore name is NULL");
	n = strnlen(name, LKS_SEMAPHORE_NAME_MAX + 1);
	if (n == 0)
		return lks_set_error(c, LKS_EINVAL, "semaphore name is empty");
	if (n > LKS_SEMAPHORE_NAME_MAX)
		return lks_set_error(c, LKS_EINVAL, "semaphore name is longer than %d bytes",
		                     LKS_SEMAPHORE_NAME_MAX);
	if (!lks_utf8_valid(name))
		return lks_set_error(c, LKS_EINVAL, "semaphore name is not valid UTF-8");
	if (strstr(name, LKS_SLOT_SEPARATOR))
		return lks_set_error(c, LKS_EINVAL, "semaphore name contains U+241F (it separates the slot)");
	if (permits < 1 || permits > LKS_SEMAPHORE_PERMITS_MAX)
		return lks_set_error(c, LKS_EINVAL, "permits must be 1..%d, got %d",
		                     LKS_SEMAPHORE_PERMITS_MAX, permits);
	return LKS_OK;
}

void lks_semaphore_prefix(const char *name, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s" LKS_SLOT_SEPARATOR, name);
}

int lks_slot_of(const char *row)
{
	const char *sep = NULL, *p = row;
	long k = 0;
	while ((p = strstr(p, LKS_SLOT_SEPARATOR)))
		sep = p++;
	if (!sep || !sep[sizeof LKS_SLOT_SEPARATOR - 1])
		return -1;
	for (p = sep + sizeof LKS_SLOT_SEPARATOR - 1; *p; p++) {
		if (*p < '0' || *p > '9' || k >= LKS_SEMAPHORE_PERMITS_MAX)
			return -1;
		k = k * 10 + (*p - '0');
	}
	return (int)k;
}

static uint64_t next_random(uint64_t *rng)
{
	/* xorshift64*: cheap, and only spreads grants over slots */
	uint64_t x = *rng ? *rng : 0x9e3779b97f4a7c15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

/*
 * Which slot the next grant tries. Without scan: a random one (the first
 * poll: one statement when the semaphore has room). With scan: one statement
 * reads every slot; a random free one, or *slot = -1 when all are held, with
 * g describing the soonest expiry (the loop waits until then, or in line).
 */
int lks_semaphore_choose(lks_conn *c, const char *t, const char *prefix, int permits, bool scan,
                         uint64_t *rng, int *slot, lks_grant *g)
{
	unsigned char held[LKS_SEMAPHORE_PERMITS_MAX] = {0};
	int64_t soonest = -1, fence = 0;
	int nheld = 0, nfree, pick;
	size_t plen = strlen(prefix);
	lks_rows r;
	int rc;
	if (!scan) {
		*slot = (int)(next_random(rng) % (uint64_t)permits);
		return LKS_OK;
	}
	if ((rc = c->ops->lease_select_slots(c, t, prefix, permits, false, &r)))
		return rc;
	for (int i = 0; i < r.nrows; i++) {
		const char *name = lks_rows_get(&r, i, 0);
		int64_t left = 0;
		int k;
		if (!name || strncmp(name, prefix, plen) || (k = lks_slot_of(name)) < 0 || k >= permits ||
		    !lks_rows_get(&r, i, 4) || strcmp(lks_rows_get(&r, i, 4), "1"))
			continue;
		held[k] = 1;
		nheld++;
		lks_parse_i64(lks_rows_get(&r, i, 3), &left);
		if (soonest < 0 || left < soonest) {
			soonest = left;
			lks_parse_i64(lks_rows_get(&r, i, 2), &fence);
		}
	}
	lks_rows_clear(&r);
	nfree = permits - nheld;
	if (nfree <= 0) {
		*slot = -1;
		g->granted = 0;
		g->fence = fence;
		g->remaining_us = soonest;
		g->released = 0;
		return LKS_OK;
	}
	pick = (int)(next_random(rng) % (uint64_t)nfree);
	for (int k = 0; k < permits; k++)
		if (!held[k] && pick-- == 0) {
			*slot = k;
			break;
		}
	return LKS_OK;
}

int lks_semaphore_release(lks_conn *c, lks_lease *permit)
{
	return lks_lease_release(c, permit);
}

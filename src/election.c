/*
 * Lease payloads and leader election on them.
 *
 * A payload is stored behind the holder id of the grant that wrote it (as
 * the owner label), so it shows only while that grant holds the lease and
 * no grant statement has to clear it. Setting it is one conditional UPDATE
 * of the current grant: a holder that lost its lease changes nothing.
 *
 * An election is a lease whose payload is the leader's value: campaign is
 * an acquire (waiting in the name's line) with the value, the term is the
 * fence (it only grows, so the leader can fence its writes with it),
 * proclaim sets the payload, resign releases.
 *
 * observe reads the row (one primary-key read) until the term or the held
 * state changes. Between reads it waits in the name's waiting room: the
 * leader keeps the name's baton for its term (campaign asks for it), so a
 * resign, or the leader's session ending, wakes the observer at once; it
 * gives the baton back and reads. Where the waiting room is off (poolers,
 * grant=single) it reads every OBSERVE_POLL_US instead. No NOTIFY: it would
 * serialize commits, and it does not cross transaction poolers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lease.h"

#define QMAX (2 * LKS_IDENT_MAX + 8)
/* how often observe reads the row while nothing changes */
#define OBSERVE_POLL_US 50000
/* a wake that showed no change reads once more this soon */
#define OBSERVE_REREAD_US 2000

int lks_payload_column(lks_conn *c, const char *t)
{
	bool has = false;
	int rc;
	if (c->payload_col < 0) {
		if ((rc = c->ops->lease_has_payload(c, t, &has)))
			return rc;
		c->payload_col = has;
	}
	if (c->payload_col != 1)
		return lks_set_error(c, LKS_EINVAL,
		                     "lease table %s has no payload column: run lks_lease_install"
		                     " (or lockstock install) once to add it", c->lease_table);
	return LKS_OK;
}

static int set_payload(lks_conn *c, const lks_lease *l, const void *data, size_t len)
{
	char *hex;
	int rc;
	if ((rc = lks_payload_column(c, l->table_q)))
		return rc;
	if (!(hex = lks_hex_of(data ? data : "", len)))
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	rc = c->ops->lease_set_payload(c, l->table_q, l->name, l->holder, l->fence, hex);
	free(hex);
	if (rc == LKS_LOST)
		lks_set_error(c, rc, "lease %s (fence %lld) is no longer the current grant;"
		              " its payload is unchanged", l->name, (long long)l->fence);
	return rc;
}

int lks_lease_set_payload(lks_conn *c, const lks_lease *lease, const void *data, size_t len)
{
	int rc = lks_conn_check(c);
	if (rc)
		return rc;
	if (!lease)
		return lks_set_error(c, LKS_EINVAL, "lease is NULL");
	if (len > LKS_LEASE_PAYLOAD_MAX || (len && !data))
		return lks_set_error(c, LKS_EINVAL, "payload must be 0..%d bytes (data NULL only when"
		                     " len is 0)", LKS_LEASE_PAYLOAD_MAX);
	return set_payload(c, lease, data, len);
}

/* One read of name: the state as inspect fills it, and the current
 * grant's payload into value (bufsz bytes; *len its size). */
static int read_payload(lks_conn *c, const char *name, lks_lease_info *info, void *buf,
                        size_t bufsz, size_t *len, bool *tagged)
{
	char t[QMAX];
	const char *hex;
	lks_rows r;
	size_t n = 0;
	int rc;
	bool owner;
	if ((rc = lks_lease_table_q(c, t)) || (rc = lks_payload_column(c, t)) ||
	    (rc = lks_lease_owner_column(c, t, &owner)))
		return rc;
	if ((rc = c->ops->lease_get_payload(c, t, name, owner, &r)))
		return rc;
	if (r.nrows == 0) {
		lks_lease_info none = LKS_LEASE_INFO_INIT;
		snprintf(none.name, sizeof none.name, "%s", name);
		lks_lease_info_put(info, &none);
	} else {
		lks_lease_info got;
		if ((rc = lks_lease_info_fill(c, &r, 0, &got)) == LKS_OK)
			lks_lease_info_put(info, &got);
	}
	hex = r.nrows ? lks_rows_get(&r, 0, 6) : NULL;
	if (tagged)
		*tagged = hex != NULL;
	if (rc == LKS_OK && hex) {
		n = strlen(hex) / 2;
		if (n > bufsz) {
			rc = lks_set_error(c, LKS_EINVAL, "payload of %s is %zu bytes, the buffer %zu", name,
			                   n, bufsz);
		} else if (lks_unhex(hex, buf, &n)) {
			rc = lks_set_error(c, LKS_EDB, "lease table row has a malformed payload");
			n = 0;
		}
	}
	if (len)
		*len = n;
	lks_rows_clear(&r);
	return rc;
}

static int check_read_args(lks_conn *c, const char *name, const lks_lease_info *info,
                           const void *buf, size_t bufsz)
{
	int rc = lks_lease_check_name(c, name);
	if (rc)
		return rc;
	if (!info)
		return lks_set_error(c, LKS_EINVAL, "info is NULL");
	if (!buf && bufsz)
		return lks_set_error(c, LKS_EINVAL, "buffer is NULL");
	return lks_lease_info_check(c, info);
}

int lks_lease_payload(lks_conn *c, const char *name, lks_lease_info *info, void *buf,
                      size_t bufsz, size_t *len)
{
	int rc = lks_conn_check(c);
	if (len)
		*len = 0;
	if (rc || (rc = check_read_args(c, name, info, buf, bufsz)))
		return rc;
	return read_payload(c, name, info, buf, bufsz, len, NULL);
}

/* ---- elections ------------------------------------------------------- */

/* The leader as it took office. A campaign writes its value right after
 * its grant, so a read in between finds the lease held without one: read
 * again (a round trip later it is there). A grant that never writes one (a
 * plain acquire of the name) is shown as it is after a few reads. */
#define OFFICE_READS 4
#define OFFICE_PAUSE_US 2000

static int read_office(lks_conn *c, const char *name, lks_lease_info *info, void *buf,
                       size_t bufsz, size_t *len)
{
	int rc = LKS_OK;
	for (int i = 0; i < OFFICE_READS; i++) {
		bool tagged = false;
		if (i)
			lks_sleep_us(OFFICE_PAUSE_US << i);
		info->version = LKS_LEASE_INFO_VERSION;
		if ((rc = read_payload(c, name, info, buf, bufsz, len, &tagged)) || !info->held || tagged)
			break;
	}
	return rc;
}

int lks_election_campaign(lks_lease **out, lks_conn *c, const char *name, const void *value,
                          size_t len, int64_t ttl_ms, int64_t wait_ms,
                          const lks_lease_acquire_options *opts)
{
	lks_lease_acquire_options o;
	int rc = lks_conn_check(c);
	if (out)
		*out = NULL;
	if (rc)
		return rc;
	if ((rc = lks_acquire_options_copy(c, opts, &o)))
		return rc;
	o.version = LKS_LEASE_ACQUIRE_OPTIONS_VERSION;
	o.payload = value ? value : "";
	o.payload_len = len;
	/* the leader keeps the baton for its term, so observers wake at its
	 * resign (see observe) */
	o.wake_on_release = 1;
	if (len && !value)
		return lks_set_error(c, LKS_EINVAL, "value is NULL");
	return lks_lease_acquire(out, c, name, ttl_ms, wait_ms, &o);
}

int lks_election_leader(lks_conn *c, const char *name, lks_lease_info *leader, void *value,
                        size_t valuesz, size_t *value_len)
{
	lks_lease_info now;
	int rc = lks_conn_check(c);
	if (value_len)
		*value_len = 0;
	if (rc || (rc = check_read_args(c, name, leader, value, valuesz)))
		return rc;
	if ((rc = read_office(c, name, &now, value, valuesz, value_len)) == LKS_OK)
		lks_lease_info_put(leader, &now);
	return rc;
}

/* Between two reads of an unchanged term: in the name's line, woken when
 * the leader gives its baton back (resign, or its session ends), for at
 * most pause_us; the baton goes back at once, it only wakes us (*woken). */
static int observe_wait(lks_conn *c, uint64_t key, int64_t pause_us, bool *woken)
{
	int got = 0, rc;
	*woken = false;
	if ((rc = c->ops->baton_wait(c, key, pause_us, &got)) || !got)
		return rc;
	*woken = true;
	return c->ops->baton_give(c, key);
}

int lks_election_observe(lks_conn *c, const char *name, const lks_lease_info *seen,
                         int64_t wait_ms, lks_lease_info *leader, void *value, size_t valuesz,
                         size_t *value_len)
{
	lks_lease_info now;
	char t[QMAX];
	uint64_t key;
	int64_t deadline;
	int woken = 0; /* reads since a wake that showed no change */
	int rc = lks_conn_check(c);
	if (value_len)
		*value_len = 0;
	if (rc || (rc = check_read_args(c, name, leader, value, valuesz)))
		return rc;
	if (wait_ms < 0 || wait_ms > LKS_LEASE_TTL_MAX_MS)
		return lks_set_error(c, LKS_EINVAL, "wait must be 0..%lld ms, got %lld",
		                     (long long)LKS_LEASE_TTL_MAX_MS, (long long)wait_ms);
	if ((rc = lks_lease_table_q(c, t)))
		return rc;
	key = lks_baton_key(t, name);
	deadline = lks_now_us() + wait_ms * 1000;
	for (;;) {
		int64_t left, pause;
		if ((rc = read_office(c, name, &now, value, valuesz, value_len)))
			return rc;
		/* a change: another term, or the leader gone or back */
		if (!seen || now.fence != seen->fence || now.held != seen->held) {
			lks_lease_info_put(leader, &now);
			return LKS_OK;
		}
		left = deadline - lks_now_us();
		if (left <= 0)
			return lks_set_error(c, LKS_TIMEOUT, "election %s: no change of leader in %lld ms",
			                     name, (long long)wait_ms);
		/* next read: at a resign, soon, and at the leader's expiry at
		 * the latest */
		pause = OBSERVE_POLL_US;
		if (now.held && now.remaining_ms * 1000 < pause)
			pause = now.remaining_ms * 1000 + 1000;
		if (pause > left)
			pause = left;
		/* a wake without a change: the release may not be committed
		 * yet (MariaDB gives the baton back inside its UPDATE): read once
		 * more soon. Still none: the baton was free, the leader holds
		 * none (a plain acquire, a session gone before its TTL); and
		 * nobody leading holds no baton either: read after a pause */
		if (woken == 1) {
			woken = 2;
			lks_sleep_us(pause < OBSERVE_REREAD_US ? pause : OBSERVE_REREAD_US);
		} else if (woken || !now.held || !c->ops->baton_supported(c)) {
			woken = 0;
			lks_sleep_us(pause);
		} else {
			bool got;
			if ((rc = observe_wait(c, key, pause, &got)))
				return rc;
			woken = got;
		}
	}
}

int lks_election_proclaim(lks_conn *c, const lks_lease *lease, const void *value, size_t len)
{
	return lks_lease_set_payload(c, lease, value, len);
}

int lks_election_resign(lks_conn *c, lks_lease *lease)
{
	return lks_lease_release(c, lease);
}

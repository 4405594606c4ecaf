/* Lease-table cleanup: rows of names nobody holds, free for longer than a
 * given age, deleted in short batches behind the table's fence floor. */
#include <stdbool.h>
#include <stdio.h>
#include "internal.h"

#define QMAX (2 * LKS_IDENT_MAX + 8)
#define CURSOR_MAX (2 * LKS_LEASE_NAME_MAX + 1) /* a name, or its hex */

int lks_lease_purge(lks_conn *c, int64_t older_than_ms, int batch, int64_t *deleted)
{
	char t[QMAX], cursor[CURSOR_MAX] = "";
	int64_t bound = 0, n, total = 0;
	bool more = false;
	int rc = lks_conn_check(c);
	if (deleted)
		*deleted = 0;
	if (rc)
		return rc;
	if (lks_ident_quote(c->lease_table, c->ops->quote, t, sizeof t))
		return lks_set_error(c, LKS_EINVAL, "lease table name is not a plain identifier");
	if (older_than_ms < 0 || older_than_ms > 100LL * 365 * 86400 * 1000)
		return lks_set_error(c, LKS_EINVAL, "lease purge: older_than_ms must be 0..100 years");
	if (batch < 1 || batch > 10000)
		return lks_set_error(c, LKS_EINVAL, "lease purge: batch must be 1..10000");
	if (c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL,
		                     "lease purge needs a handle without an open transaction");
	/* First the seal: from now on a client built before the fence floor
	 * (which inserts a new name at fence 1) fails instead of sending a
	 * purged name's fence back. Then the floor, in its own transaction:
	 * every row deleted below has a fence at or under it, so a name used
	 * again starts above them. */
	if ((c->ops->lease_seal && (rc = c->ops->lease_seal(c, t))) ||
	    (rc = c->ops->lease_floor_raise(c, t, &bound)))
		return rc;
	do {
		/* a batch that met a grant in flight (lock timeout, deadlock,
		 * Galera certification) is tried again: it changed nothing */
		for (int tries = 0;; tries++) {
			rc = c->ops->lease_purge_batch(c, t, cursor, older_than_ms * 1000, bound, batch, &n,
			                               &more, cursor, sizeof cursor);
			if (rc != LKS_ETRANSIENT || tries == 2)
				break;
			lks_clear_error(c);
		}
		if (rc)
			break;
		total += n;
	} while (more);
	if (deleted)
		*deleted = total;
	return rc;
}

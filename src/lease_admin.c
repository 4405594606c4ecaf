/* Lease inspection and administration: rows into lks_lease_info, inspect,
 * list, a semaphore's holders, force release, the DDL, adopting a grant. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lease.h"

#define QMAX (2 * LKS_IDENT_MAX + 8)

static int fill_info(lks_conn *c, const lks_rows *r, int row, lks_lease_info *info)
{
	int64_t held = 0;
	const char *tag;
	memset(info, 0, sizeof *info);
	info->version = LKS_LEASE_INFO_VERSION;
	snprintf(info->name, sizeof info->name, "%s", lks_rows_get(r, row, 0) ? lks_rows_get(r, row, 0) : "");
	snprintf(info->holder, sizeof info->holder, "%s", lks_rows_get(r, row, 1) ? lks_rows_get(r, row, 1) : "");
	if (lks_parse_i64(lks_rows_get(r, row, 2), &info->fence) ||
	    lks_parse_i64(lks_rows_get(r, row, 3), &info->remaining_ms) ||
	    lks_parse_i64(lks_rows_get(r, row, 4), &held))
		return lks_set_error(c, LKS_EDB, "lease table row is malformed");
	info->remaining_ms /= 1000;
	info->held = held != 0;
	if (!info->held)
		info->holder[0] = '\0';
	/* the label counts only while the grant that wrote it holds the lease */
	tag = r->ncols > 5 ? lks_rows_get(r, row, 5) : NULL;
	if (info->held && tag && strlen(tag) > LKS_HOLDER_LEN &&
	    !strncmp(tag, info->holder, LKS_HOLDER_LEN) && tag[LKS_HOLDER_LEN] == ':')
		snprintf(info->owner, sizeof info->owner, "%s", tag + LKS_HOLDER_LEN + 1);
	return LKS_OK;
}

/* what each version of lks_lease_info has */
static const size_t info_sizes[] = {sizeof(lks_lease_info)};

/* The caller's struct says its version: one this library knows. */
static int check_info_version(lks_conn *c, const lks_lease_info *info)
{
	if (info->version < 1 || info->version > LKS_LEASE_INFO_VERSION)
		return lks_set_error(c, LKS_EINVAL,
		                     "lease info: unknown version %u (1..%u; use LKS_LEASE_INFO_INIT)",
		                     info->version, LKS_LEASE_INFO_VERSION);
	return LKS_OK;
}

/* The row of a name never granted: free, fence 0. */
static void free_info(lks_lease_info *info, const char *name)
{
	memset(info, 0, sizeof *info);
	info->version = LKS_LEASE_INFO_VERSION;
	snprintf(info->name, sizeof info->name, "%s", name);
}

/* Writes the fields of the caller's version only. */
static void put_info(lks_lease_info *out, const lks_lease_info *info)
{
	unsigned int version = out->version;
	memcpy(out, info, info_sizes[version - 1]);
	out->version = version;
}

int lks_lease_inspect(lks_conn *c, const char *name, lks_lease_info *info)
{
	char t[QMAX];
	bool owner;
	lks_lease_info got;
	lks_rows r;
	int rc = lks_conn_check(c);
	if (rc || (rc = lks_lease_check_name(c, name)) || (rc = lks_lease_table_q(c, t)))
		return rc;
	if (!info)
		return lks_set_error(c, LKS_EINVAL, "info is NULL");
	if ((rc = check_info_version(c, info)))
		return rc;
	if ((rc = lks_lease_owner_column(c, t, &owner)) || (rc = c->ops->lease_select(c, t, name, owner, &r)))
		return rc;
	if (r.nrows == 0)
		free_info(&got, name);
	else
		rc = fill_info(c, &r, 0, &got);
	lks_rows_clear(&r);
	if (rc == LKS_OK)
		put_info(info, &got);
	return rc;
}

int lks_lease_list(lks_conn *c, int (*fn)(const lks_lease_info *, void *), void *arg)
{
	char t[QMAX];
	lks_rows r;
	lks_lease_info info;
	bool owner;
	int rc = lks_conn_check(c);
	if (rc || (rc = lks_lease_table_q(c, t)))
		return rc;
	if (!fn)
		return lks_set_error(c, LKS_EINVAL, "callback is NULL");
	if ((rc = lks_lease_owner_column(c, t, &owner)) || (rc = c->ops->lease_select(c, t, NULL, owner, &r)))
		return rc;
	for (int i = 0; i < r.nrows && rc == LKS_OK; i++)
		if ((rc = fill_info(c, &r, i, &info)) == LKS_OK)
			rc = fn(&info, arg);
	lks_rows_clear(&r);
	return rc;
}

int lks_semaphore_list(lks_conn *c, const char *name, int permits,
                       int (*fn)(const lks_lease_info *, void *), void *arg)
{
	char t[QMAX], prefix[LKS_LEASE_NAME_MAX + 1];
	lks_lease_info *info;
	lks_rows r;
	bool owner;
	int rc = lks_conn_check(c);
	if (rc || (rc = lks_semaphore_check(c, name, permits)) || (rc = lks_lease_table_q(c, t)))
		return rc;
	if (!fn)
		return lks_set_error(c, LKS_EINVAL, "callback is NULL");
	lks_semaphore_prefix(name, prefix, sizeof prefix);
	if ((rc = lks_lease_owner_column(c, t, &owner)) ||
	    (rc = c->ops->lease_select_slots(c, t, prefix, permits, owner, &r)))
		return rc;
	if (!(info = calloc((size_t)permits, sizeof *info))) {
		lks_rows_clear(&r);
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < r.nrows && rc == LKS_OK; i++) {
		lks_lease_info one;
		int k;
		if ((rc = fill_info(c, &r, i, &one)) == LKS_OK && one.held &&
		    (k = lks_slot_of(one.name)) >= 0 && k < permits) {
			info[k] = one;
		}
	}
	lks_rows_clear(&r);
	/* in slot order, whatever order the server returned */
	for (int k = 0; k < permits && rc == LKS_OK; k++)
		if (info[k].held)
			rc = fn(&info[k], arg);
	free(info);
	return rc;
}

int lks_lease_force_release(lks_conn *c, const char *name, lks_lease_info *released)
{
	char t[QMAX];
	bool owner;
	lks_lease_info info;
	lks_rows r;
	int rc = lks_conn_check(c);
	if (rc || (rc = lks_lease_check_name(c, name)) || (rc = lks_lease_table_q(c, t)))
		return rc;
	if (released && (rc = check_info_version(c, released)))
		return rc;
	if (c->ops->in_transaction(c))
		return lks_set_error(c, LKS_EINVAL,
		                     "force release needs a handle without an open transaction");
	if ((rc = lks_lease_owner_column(c, t, &owner)) ||
	    (rc = c->ops->lease_force_release(c, t, name, owner, &r)))
		return rc;
	if (r.nrows == 0)
		free_info(&info, name);
	else
		rc = fill_info(c, &r, 0, &info);
	lks_rows_clear(&r);
	if (released)
		put_info(released, &info);
	if (rc == LKS_OK && !info.held)
		rc = lks_set_error(c, LKS_NOT_FOUND, "lease %s is not held (last fence %lld)", name,
		                   (long long)info.fence);
	return rc;
}

int lks_lease_ddl(lks_backend backend, const char *table, char *out, size_t outsz)
{
	char t[QMAX];
	lks_sql q = {.len = 0};
	const lks_backend_ops *ops;
	if (!out || outsz == 0)
		return LKS_EINVAL;
	out[0] = '\0';
	if (!table)
		table = LKS_LEASE_TABLE_DEFAULT;
	if (!lks_backend_known(backend))
		return LKS_EINVAL;
	if (!(ops = lks_backend_find(backend)))
		return LKS_EUNSUPPORTED;
	if (lks_ident_quote(table, ops->quote, t, sizeof t))
		return LKS_EINVAL;
	ops->lease_ddl(t, &q);
	if (q.overflow || q.len + 2 > outsz)
		return LKS_EINVAL;
	snprintf(out, outsz, "%s;", q.buf);
	return LKS_OK;
}

int lks_lease_adopt(lks_lease **out, lks_conn *c, const char *name, const char *holder,
                    int64_t fence)
{
	char t[QMAX];
	bool owner;
	lks_lease_info info;
	lks_lease *l;
	lks_rows r;
	int64_t sent;
	int rc;
	if (out)
		*out = NULL;
	if ((rc = lks_conn_check(c)))
		return rc;
	if (!out)
		return lks_set_error(c, LKS_EINVAL, "out is NULL");
	if ((rc = lks_lease_check_name(c, name)) || (rc = lks_lease_table_q(c, t)))
		return rc;
	if (!holder || strlen(holder) != LKS_HOLDER_LEN || strspn(holder, "0123456789abcdef") != LKS_HOLDER_LEN)
		return lks_set_error(c, LKS_EINVAL, "holder must be the grant's 32 lower-case hex characters");
	if (fence < 1)
		return lks_set_error(c, LKS_EINVAL, "fence must be >= 1");
	sent = lks_now_us();
	if ((rc = lks_lease_owner_column(c, t, &owner)) || (rc = c->ops->lease_select(c, t, name, owner, &r)))
		return rc;
	rc = r.nrows == 1 ? fill_info(c, &r, 0, &info) : LKS_OK;
	if (rc == LKS_OK && (r.nrows != 1 || !info.held || info.fence != fence ||
	                     strcmp(info.holder, holder)))
		rc = lks_set_error(c, LKS_LOST, "lease %s is not held by that grant (fence %lld)", name,
		                   (long long)fence);
	lks_rows_clear(&r);
	if (rc)
		return rc;
	if (!(l = calloc(1, sizeof *l)))
		return lks_set_error(c, LKS_ENOMEM, "out of memory");
	snprintf(l->name, sizeof l->name, "%s", name);
	l->slot = lks_slot_of(name);
	memcpy(l->holder, holder, LKS_HOLDER_LEN + 1);
	snprintf(l->owner, sizeof l->owner, "%s", info.owner);
	memcpy(l->table_q, t, sizeof l->table_q);
	l->fence = fence;
	l->ttl_us = info.remaining_ms > 0 ? info.remaining_ms * 1000 : 1000;
	l->margin_us = -1;
	l->clock_offset_us = c->clock_offset_us;
	l->granted_at_us = sent;
	lks_lease_set_deadline(l, sent, info.remaining_ms * 1000);
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	return LKS_OK;
}

int lks_lease_info_fill(lks_conn *c, const lks_rows *r, int row, lks_lease_info *info)
{
	return fill_info(c, r, row, info);
}

int lks_lease_info_check(lks_conn *c, const lks_lease_info *info)
{
	return check_info_version(c, info);
}

void lks_lease_info_put(lks_lease_info *out, const lks_lease_info *info)
{
	put_info(out, info);
}

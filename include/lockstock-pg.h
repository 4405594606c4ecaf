/* lockstock on a PGconn the service already has. */
#ifndef LOCKSTOCK_PG_H
#define LOCKSTOCK_PG_H
#include <libpq-fe.h>
#include "lockstock.h"
#ifdef __cplusplus
extern "C" {
#endif
/* Wrap a connected PGconn. It stays borrowed: lks_conn_close never closes
 * it, and the caller must not use it from another thread meanwhile.
 * lockstock prepares statements named "lks_<random>_<n>" on it (unique per
 * handle) and deallocates them when the handle is closed, so the same
 * connection can be adopted again. Lease waits take session advisory locks
 * (pg_advisory_lock with a 64-bit key hashed from table and name). */
LKS_API int lks_conn_adopt_pg(lks_conn **out, PGconn *pg);
/* The native connection behind a PostgreSQL handle (NULL otherwise). */
LKS_API PGconn *lks_conn_pg(lks_conn *c);
#ifdef __cplusplus
}
#endif
#endif

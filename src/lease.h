/* The lease object, shared by lease.c and autorenew.c. */
#ifndef LKS_LEASE_H
#define LKS_LEASE_H
#include <pthread.h>
#include <stdatomic.h>
#include "internal.h"

struct lks_lease {
	char name[LKS_LEASE_NAME_MAX + 1];
	char holder[LKS_HOLDER_LEN + 1];
	char owner[LKS_OWNER_MAX + 1];
	char table_q[2 * LKS_IDENT_MAX + 8];
	int64_t fence;
	int64_t granted_at_us; /* lks_now_us() when the grant was asked for */
	_Atomic int64_t ttl_us; /* renewals may come from the auto-renew thread */
	_Atomic int64_t granted_us; /* remaining TTL per the server, last grant/renewal */
	int64_t margin_us;  /* fixed margin; < 0: a tenth of each TTL */
	_Atomic int64_t deadline_us; /* monotonic; conservative local expiry */
	atomic_int lost;
	/* waiting-room baton, held by baton_conn while the lease is held there
	 * (NULL: not held); the connection lists its leases through baton_next */
	lks_conn *baton_conn;
	uint64_t baton;
	lks_lease *baton_next;
	/* auto-renew */
	bool renewing;
	bool stop;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	lks_conn *renew_conn;
	char *renew_url;
	int64_t renew_op_timeout_us; /* the URL's op timeout (0: none) */
	int64_t renew_connect_us;    /* connect timeout of renew_url */
	lks_autorenew_options ar;
};

/* renew on any connection; updates the local deadline and lost flag */
int lks_lease_renew_on(lks_conn *c, lks_lease *lease, int64_t ttl_us);
void lks_lease_mark_lost(lks_lease *lease);

#endif

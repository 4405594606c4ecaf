/* The lease object, shared by the lease files and autorenew.c. */
#ifndef LKS_LEASE_H
#define LKS_LEASE_H
#include <pthread.h>
#include <stdatomic.h>
#include "internal.h"

struct lks_lease {
	char name[LKS_LEASE_NAME_MAX + 1];
	char holder[LKS_HOLDER_LEN + 1];
	char owner[LKS_LEASE_OWNER_MAX + 1];
	char table_q[2 * LKS_IDENT_MAX + 8];
	int64_t fence;
	int slot; /* a semaphore's permit (name is its row), else -1 */
	int64_t granted_at_us; /* lks_now_us() when the grant was asked for */
	_Atomic int64_t ttl_us; /* renewals may come from the auto-renew thread */
	_Atomic int64_t granted_us; /* remaining TTL per the server, last grant/renewal */
	int64_t margin_us;  /* fixed margin; < 0: a tenth of each TTL */
	int64_t clock_offset_us; /* the handle's clock-offset bound at the grant */
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
	bool free_on_exit; /* lks_lease_free from a hook on the renew thread */
	bool lost_reported; /* on_lost was called (once per lease) */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	lks_conn *renew_conn;
	char *renew_url;
	int64_t renew_op_timeout_us; /* the URL's op timeout (0: none) */
	int64_t renew_connect_us;    /* connect timeout of renew_url */
	lks_lease_autorenew_options ar;
	/* the lks_renewer renewing it, or NULL */
	_Atomic(lks_renewer *) renewer;
};

/* lease.c's helpers for the other lease files: a TTL's bounds, a lease
 * argument, the batons a connection holds (a holder's, registered so that
 * free, release and the session's end give it back) */
int lks_lease_check_ttl(lks_conn *c, int64_t ttl_ms);
int lks_lease_check(lks_conn *c, const lks_lease *lease);
void lks_baton_register(lks_conn *c, lks_lease *l);
/* gives the baton back without losing the error the caller will see */
void lks_baton_give_quietly(lks_conn *c, uint64_t baton);

/* lks_lease_free called from a hook on the lease's own renew thread: the
 * thread frees the lease once the hook returns; true when deferred so */
bool lks_lease_autorenew_defer_free(lks_lease *l);

/* after a renewal that the server said left remaining_us */
void lks_lease_set_deadline(lks_lease *l, int64_t sent_us, int64_t remaining_us);
/* the URL a background renewal connects with (autorenew.c) */
char *lks_renew_url(const lks_backend_ops *ops, const char *url, int64_t ttl_us,
                    int64_t *connect_us);
/* lease.c's helpers for election.c: the quoted table name (2 *
 * LKS_IDENT_MAX + 8 bytes), whether it has the owner column, the name
 * rule, lease_select rows into info, the caller's info version, and
 * copying the fields of the caller's version */
int lks_lease_table_q(lks_conn *c, char *out);
int lks_lease_owner_column(lks_conn *c, const char *t, bool *has);
int lks_lease_check_name(lks_conn *c, const char *name);
int lks_lease_info_fill(lks_conn *c, const lks_rows *r, int row, lks_lease_info *info);
int lks_lease_info_check(lks_conn *c, const lks_lease_info *info);
void lks_lease_info_put(lks_lease_info *out, const lks_lease_info *info);
/* the payload column exists on this handle's table (else LKS_EINVAL) */
int lks_payload_column(lks_conn *c, const char *t);

/* takes the lease out of its renewer, if it is in one (renewer.c) */
void lks_renewer_forget(lks_lease *l);

/* renew on any connection; updates the local deadline and lost flag */
int lks_lease_renew_on(lks_conn *c, lks_lease *lease, int64_t ttl_us);
void lks_lease_mark_lost(lks_lease *lease);

/* The acquire loop's delays, pure so the unit suite can check them.
 * holder_left_us: the holder's time left (< 0 unknown); wait_left_us: to
 * the caller's deadline. How long to sleep before the next poll: a backoff
 * (head: about base_us, alone at the head of the line), never past the
 * holder's expiry or the deadline. */
int64_t lks_poll_delay_us(int attempt, bool head, int64_t base_us, int64_t max_us,
                          int64_t holder_left_us, int64_t wait_left_us, uint64_t *rng);
/* How long to wait in the line for the baton: until the holder's expiry
 * (held), a while (released: it went to the next in line), or until a grant
 * may go without the baton (expired with its baton kept); bounded. */
int64_t lks_line_wait_us(int64_t holder_left_us, bool released, int64_t wait_left_us);

#endif

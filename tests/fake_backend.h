/* The unit suite's in-memory backend (see fake_backend.c). */
#ifndef LKS_FAKE_BACKEND_H
#define LKS_FAKE_BACKEND_H
#include "internal.h"

#define FAKE_ROWS 8
#define FAKE_SCRIPT 16
#define FAKE_TRIES 64

typedef enum {
	FAKE_ANSWER,     /* the row decides, as a server would */
	FAKE_TRANSIENT,  /* a lock wait timeout or serialization failure */
	FAKE_CONN_LOST,  /* the connection drops */
	FAKE_FENCE_MAX,  /* the fence is at its maximum */
	FAKE_LATE_REPLY, /* granted, but the reply arrives after the TTL */
} fake_reply;

typedef struct fake_row {
	char name[LKS_LEASE_NAME_MAX + 1];
	char holder[40];
	int64_t fence;
	int64_t expires_us; /* on lks_now_us */
} fake_row;

/* one "server", shared by the handles fake_open gives out */
typedef struct fake_db {
	fake_row rows[FAKE_ROWS];
	int nrows;
	fake_reply script[FAKE_SCRIPT]; /* replies to the next grant tries */
	int nscript, next;
	int64_t tries_at[FAKE_TRIES]; /* when each grant try arrived */
	int ntries, grants, releases, scans;
} fake_db;

lks_conn *fake_open(fake_db *db);
/* the next n grant tries get these replies; resets the try log */
void fake_script(fake_db *db, const fake_reply *replies, int n);

#endif

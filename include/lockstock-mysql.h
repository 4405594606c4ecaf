/* lockstock on a MYSQL connection the service already has. */
#ifndef LOCKSTOCK_MYSQL_H
#define LOCKSTOCK_MYSQL_H
#include <mysql.h>
#include "lockstock.h"
#ifdef __cplusplus
extern "C" {
#endif
/* Wrap a connected MYSQL. It stays borrowed: lks_conn_close never closes
 * it. Connections opened by lockstock use CLIENT_FOUND_ROWS; on an adopted
 * one that lacks it, matched rows are read from mysql_info(). Do not enable
 * MYSQL_OPT_RECONNECT on it: a silent reconnect loses the transaction.
 * Adopting runs one query (SELECT @@sql_mode). Without a strict sql_mode a
 * version at its column's maximum would be clamped, not refused: on MariaDB
 * each CAS then runs with SET STATEMENT sql_mode = 'STRICT_ALL_TABLES', on
 * MySQL lks_cas_update returns LKS_EINVAL. Connections lockstock opens add
 * STRICT_ALL_TABLES to the session's sql_mode; do not change it afterwards.
 * On MariaDB >= 10.5 lease calls leave LAST_INSERT_ID() alone and take
 * session locks named "lks:<16 hex>" (the waiting room, GET_LOCK); on older
 * servers and MySQL a grant sets LAST_INSERT_ID() to the new fence. */
LKS_API int lks_conn_adopt_mysql(lks_conn **out, MYSQL *my);
/* The native connection behind a MySQL handle (NULL otherwise). */
LKS_API MYSQL *lks_conn_mysql(lks_conn *c);
#ifdef __cplusplus
}
#endif
#endif

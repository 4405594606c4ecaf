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
 * MYSQL_OPT_RECONNECT on it: a silent reconnect loses the transaction. */
int lks_conn_adopt_mysql(lks_conn **out, MYSQL *my);
/* The native connection behind a MySQL handle (NULL otherwise). */
MYSQL *lks_conn_mysql(lks_conn *c);
#ifdef __cplusplus
}
#endif
#endif

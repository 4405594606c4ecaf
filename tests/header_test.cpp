// The public headers compile as C++ too (g++ -pedantic -Werror), with the
// value macros and the options initialisers a C++ caller uses.
#include "lockstock.h"
#ifdef LKS_WITH_PG
#include "lockstock-pg.h"
#endif
#ifdef LKS_WITH_MYSQL
#include "lockstock-mysql.h"
#endif
int main()
{
	lks_value v[3] = {LKS_INT(42), LKS_TEXT("x"), LKS_NULLV};
	lks_lease_acquire_options ao = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_retry_options ro = LKS_RETRY_OPTIONS_INIT;
	lks_once_options oo = LKS_ONCE_OPTIONS_INIT;
	lks_lease_autorenew_options an = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	bool ok = v[0].i == 42 && v[1].type == LKS_TYPE_TEXT && v[2].type == LKS_TYPE_NULL &&
	          ao.version && ro.version && oo.version && an.version &&
	          lks_strerror(LKS_MISMATCH)[0] == 'm';
	return ok ? 0 : 1;
}

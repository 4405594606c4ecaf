/* The public headers compile alone under -Wall -Wextra -pedantic -Werror. */
#include "lockstock.h"
#include "lockstock.h" /* and twice */
#ifdef LKS_WITH_PG
#include "lockstock-pg.h"
#endif
#ifdef LKS_WITH_MYSQL
#include "lockstock-mysql.h"
#endif
int main(void)
{
	/* the names before 0.2 still build and mean the same */
	lks_acquire_options old = LKS_ACQUIRE_OPTIONS_INIT;
	lks_lease_acquire_options now;
	lks_autorenew_options ar = LKS_AUTORENEW_OPTIONS_INIT;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	char owner[LKS_OWNER_MAX + 1] = "";
	if (lks_acquire_options_init(&now, LKS_ACQUIRE_OPTIONS_VERSION) != LKS_OK ||
	    now.version != old.version || now.margin_ms != old.margin_ms ||
	    lks_lease_acquire_options_init(&now, 99) != LKS_EINVAL ||
	    ar.version != LKS_LEASE_AUTORENEW_OPTIONS_VERSION || info.version != 1 ||
	    sizeof owner != LKS_LEASE_OWNER_MAX + 1)
		return 1;
	return lks_strerror(LKS_OK)[0] == 'o' ? 0 : 1;
}

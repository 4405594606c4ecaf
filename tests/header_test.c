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
	return lks_strerror(LKS_OK)[0] == 'o' ? 0 : 1;
}

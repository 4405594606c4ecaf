/* The backend registry: the one place that knows which backends exist and
 * which were built in. Everything else reaches a backend through its ops
 * table (src/internal.h) and its capability bits. */
#include <stdbool.h>
#include <string.h>
#include "internal.h"

#ifdef LKS_WITH_PG
extern const lks_backend_ops lks_pg_ops;
#define PG_OPS (&lks_pg_ops)
#else
#define PG_OPS NULL
#endif
#ifdef LKS_WITH_MYSQL
extern const lks_backend_ops lks_mysql_ops;
#define MYSQL_OPS (&lks_mysql_ops)
#else
#define MYSQL_OPS NULL
#endif

typedef struct registered {
	lks_backend id;
	const char *label;           /* for "built without ... support" */
	const char *const *schemes;  /* URL prefixes, NULL-ended */
	const lks_backend_ops *ops;  /* NULL: known, not built in */
} registered;

static const char *const pg_schemes[] = {"postgresql://", "postgres://", NULL};
static const char *const mysql_schemes[] = {"mysql://", "mariadb://", NULL};

static const registered registry[] = {
	{LKS_BACKEND_POSTGRESQL, "PostgreSQL", pg_schemes, PG_OPS},
	{LKS_BACKEND_MYSQL, "MySQL", mysql_schemes, MYSQL_OPS},
};
#define NREG (sizeof registry / sizeof registry[0])

static const registered *by_url(const char *url)
{
	if (!url)
		return NULL;
	for (size_t i = 0; i < NREG; i++)
		for (const char *const *s = registry[i].schemes; *s; s++)
			if (!strncmp(url, *s, strlen(*s)))
				return &registry[i];
	return NULL;
}

lks_backend lks_url_backend(const char *url)
{
	const registered *r = by_url(url);
	return r ? r->id : LKS_BACKEND_NONE;
}

bool lks_backend_known(lks_backend id)
{
	for (size_t i = 0; i < NREG; i++)
		if (registry[i].id == id)
			return true;
	return false;
}

const lks_backend_ops *lks_backend_find(lks_backend id)
{
	for (size_t i = 0; i < NREG; i++)
		if (registry[i].id == id)
			return registry[i].ops;
	return NULL;
}

int lks_backend_for_url(lks_conn *c, const char *url, const lks_backend_ops **ops)
{
	const registered *r = by_url(url);
	*ops = r ? r->ops : NULL;
	if (!r)
		return lks_set_error(c, LKS_EINVAL, "malformed URL: must start with postgresql://,"
		                                    " postgres://, mysql:// or mariadb://");
	if (!r->ops)
		return lks_set_error(c, LKS_EUNSUPPORTED, "built without %s support", r->label);
	return LKS_OK;
}

int lks_backends_init(void)
{
	for (size_t i = 0; i < NREG; i++)
		if (registry[i].ops && registry[i].ops->library_init && registry[i].ops->library_init())
			return LKS_EDB;
	return LKS_OK;
}

/* A program that uses an installed lockstock: built by pkg-config, CMake
 * and as a meson subproject (tests/packaging/check.sh). */
#include <stdio.h>
#include <string.h>
#include <lockstock.h>

int main(void)
{
	lks_lease_acquire_options o;
	lks_conn *c = NULL;
	/* the headers and the library agree */
	if (lks_lease_acquire_options_init(&o, LKS_LEASE_ACQUIRE_OPTIONS_VERSION) != LKS_OK ||
	    lks_version_number() != LKS_VERSION_NUMBER || strcmp(lks_version(), LKS_VERSION_STRING) ||
	    o.version != LKS_LEASE_ACQUIRE_OPTIONS_VERSION)
		return 1;
	/* a call that needs no server: a malformed URL is refused */
	if (lks_conn_open(&c, "nosuch://x") != LKS_EINVAL)
		return 2;
	lks_conn_close(c);
	printf("consumer: lockstock %s\n", lks_version());
	return 0;
}

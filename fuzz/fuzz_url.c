/* libFuzzer target: the mysql:// URL parser and password redaction on any
 * bytes. Invariants: no crash, no leak; a parsed URL has a backend, a port
 * in range, TLS settings that agree; a redacted URL never contains the password it had. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *url = malloc(size + 1), err[256], shown[4200];
	lks_url u;
	if (!url)
		return 0;
	memcpy(url, data, size);
	url[size] = '\0';
	if (lks_url_parse(url, &u, err, sizeof err) == LKS_OK) {
		if (u.backend == LKS_BACKEND_NONE || u.port > 65535)
			abort();
		/* TLS settings that were accepted agree with each other */
		if (!u.ssl_cert != !u.ssl_key || (u.ssl_mode == LKS_SSL_VERIFY_CA && !u.ssl_ca) ||
		    (u.ssl_mode == LKS_SSL_DISABLED && (u.ssl_ca || u.ssl_cert)) ||
		    (u.ssl_mode == LKS_SSL_UNSET && (u.ssl_ca || u.ssl_cert)) ||
		    u.ssl_mode > LKS_SSL_VERIFY_IDENTITY)
			abort();
		/* (a password of stars could be spelled by the mask itself) */
		if (u.password && strlen(u.password) >= 4 && !strchr(u.password, '*') &&
		    strlen(url) < sizeof shown &&
		    lks_url_redact(url, shown, sizeof shown) == LKS_OK && strstr(url, u.password) &&
		    strstr(shown, u.password))
			abort(); /* the password, as written in the URL, survived redaction */
		lks_url_free(&u);
	} else if (!err[0]) {
		abort(); /* a rejection always says why */
	}
	free(url);
	return 0;
}

/* libFuzzer target: the mysql:// URL parser and password redaction on any
 * bytes. Invariants: no crash, no leak; a parsed URL has a backend, a port
 * in range, TLS settings that agree; where a URL has its password, its
 * redacted form has only stars (or none). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *url = malloc(size + 1), err[256], shown[4200];
	lks_url u, v;
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
		/* where the URL has its password, the redacted URL has only
		 * stars (the same text may stay elsewhere: as the user name, host
		 * or database it is not the secret) */
		if (u.password && strlen(url) < sizeof shown &&
		    lks_url_redact(url, shown, sizeof shown) == LKS_OK &&
		    lks_url_parse(shown, &v, err, sizeof err) == LKS_OK) {
			bool stars = !v.password || strspn(v.password, "*") == strlen(v.password);
			lks_url_free(&v);
			if (!stars)
				abort(); /* the password survived redaction */
		}
		lks_url_free(&u);
	} else if (!err[0]) {
		abort(); /* a rejection always says why */
	}
	free(url);
	return 0;
}

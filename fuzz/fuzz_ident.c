/* libFuzzer target: identifier validation and quoting, and owner labels.
 * Invariants: a valid identifier quotes into [q]part[q](.[q]part[q]) with no
 * other quote character; an invalid one is refused; nothing is written past
 * out. An accepted label has no control byte, and each of its lead bytes
 * starts a sequence of the right length. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *s = malloc(size + 1), out[2 * LKS_IDENT_MAX + 8];
	const char quotes[] = {'"', '`'};
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	bool valid = lks_ident_valid(s);
	for (size_t k = 0; k < sizeof quotes; k++) {
		int rc = lks_ident_quote(s, quotes[k], out, sizeof out);
		if (valid != (rc == LKS_OK))
			abort();
		if (rc == LKS_OK) {
			size_t n = strlen(out), nq = 0;
			for (size_t i = 0; i < n; i++)
				nq += out[i] == quotes[k];
			if (out[0] != quotes[k] || out[n - 1] != quotes[k] || (nq != 2 && nq != 4))
				abort();
		}
	}
	if (lks_label_valid(s, LKS_LEASE_OWNER_MAX)) {
		size_t n = strlen(s);
		if (n == 0 || n > LKS_LEASE_OWNER_MAX)
			abort();
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)s[i];
			if (ch < 0x20 || ch == 0x7f || ch == 0xc0 || ch == 0xc1 || ch > 0xf4)
				abort();
			size_t len = ch < 0x80 ? 1 : ch < 0xe0 ? 2 : ch < 0xf0 ? 3 : 4;
			if (ch >= 0x80 && ch < 0xc0)
				abort(); /* a continuation byte where a character starts */
			i += len - 1;
			if (i >= n)
				abort();
		}
	}
	free(s);
	return 0;
}

/* libFuzzer target: identifier validation and quoting. Invariants: a valid
 * identifier quotes into [q]part[q](.[q]part[q]) with no other quote
 * character; an invalid one is refused; nothing is written past out. */
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
	free(s);
	return 0;
}

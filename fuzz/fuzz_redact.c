/* libFuzzer target: redaction of a message against a URL, and the time and
 * number helpers that take caller input. Input: url NUL message NUL
 * 8 bytes of parameters. Invariants: no crash; the message only shrinks;
 * backoff delays stay within [0, cap]; parsed integers round-trip. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *buf = malloc(size + 2), *url, *msg;
	int64_t params[3] = {0}, parsed;
	uint64_t rng = 1;
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = '\0';
	url = buf;
	msg = buf + strlen(buf) + (strlen(buf) < size ? 1 : 0);
	size_t before = strlen(msg);
	lks_redact(msg, url);
	if (strlen(msg) > before)
		abort();
	memcpy(params, data, size < sizeof params ? size : sizeof params);
	int64_t base = params[0] < 0 ? -(params[0] + 1) : params[0];
	int64_t cap = params[1] < 0 ? -(params[1] + 1) : params[1];
	int64_t d = lks_backoff_us((int)(params[2] & 0x3ff), base, cap, &rng);
	if (d < 0 || d > (cap > base ? cap : (base > 0 ? base : 1)))
		abort();
	char num[32];
	snprintf(num, sizeof num, "%lld", (long long)params[0]);
	if (lks_parse_i64(num, &parsed) != LKS_OK || parsed != params[0])
		abort();
	lks_parse_i64(msg, &parsed); /* any text: no crash */
	free(buf);
	return 0;
}

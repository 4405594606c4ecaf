/* One strict UTF-8 decoder for the library and the command (header-only so
 * the command, which links only the public API, shares it). */
#ifndef LKS_UTF8_H
#define LKS_UTF8_H

#include <stdbool.h>
#include <stdint.h>

/* Length (1..4) of the well-formed UTF-8 character at p, its code point in
 * *cp; 0 when p starts a malformed sequence (a stray continuation byte, an
 * overlong form, a surrogate, past U+10FFFF, cut short) or is NUL. */
static inline int lks_utf8_char(const unsigned char *p, uint32_t *cp)
{
	int len;
	uint32_t c;
	if (*p == 0)
		return 0;
	if (*p < 0x80) {
		*cp = *p;
		return 1;
	}
	if (*p >= 0xc2 && *p <= 0xdf)
		c = *p & 0x1f, len = 2;
	else if (*p >= 0xe0 && *p <= 0xef)
		c = *p & 0x0f, len = 3;
	else if (*p >= 0xf0 && *p <= 0xf4)
		c = *p & 0x07, len = 4;
	else
		return 0;
	for (int i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0; /* also stops at the terminating NUL */
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* well-formed UTF-8, any length, controls allowed */
static inline bool lks_utf8_valid(const char *s)
{
	uint32_t cp = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		int len = lks_utf8_char(p, &cp);
		if (!len)
			return false;
		p += len;
	}
	return true;
}

#endif

/* The lockstock command: durations, errors, connecting, safe output. */
#include <locale.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <wctype.h>
#include "cli.h"

int cli_parse_duration(const char *s, int64_t max_ms, int64_t *ms, char *err, size_t errsz)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	const char *p = s;
	int64_t v = 0;
	if (!s || !*s) {
		snprintf(err, errsz, "empty duration");
		return -1;
	}
	while (*p >= '0' && *p <= '9') {
		if (v > (INT64_MAX - 9) / 10) {
			snprintf(err, errsz, "duration '%s' is too large", s);
			return -1;
		}
		v = v * 10 + (*p++ - '0');
	}
	if (p == s) {
		snprintf(err, errsz, "bad duration '%s' (use e.g. 500ms, 30s, 5m, 2h, 1d)", s);
		return -1;
	}
	if (!*p && v == 0) {
		*ms = 0;
		return 0;
	}
	for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
		if (strcmp(p, units[i].unit))
			continue;
		if (v > max_ms / units[i].ms) {
			snprintf(err, errsz, "duration '%s' is longer than %lld ms", s, (long long)max_ms);
			return -1;
		}
		*ms = v * units[i].ms;
		return 0;
	}
	snprintf(err, errsz, "bad duration '%s': a number needs a unit (ms, s, m, h or d)", s);
	return -1;
}

int cli_exit_for(int status)
{
	return status == LKS_ECONN ? EXIT_UNAVAILABLE : EXIT_FAILURE_DB;
}

void cli_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fputs("lockstock: ", stderr);
	cli_put_text(stderr, msg);
	fputc('\n', stderr);
}

int cli_connect(const cli_common *co, lks_conn **c)
{
	const char *url = co->url ? co->url : getenv("LOCKSTOCK_URL");
	int rc;
	*c = NULL;
	if (!url || !*url) {
		cli_error("no database URL: pass --url URL or set LOCKSTOCK_URL");
		return EXIT_USAGE;
	}
	if (lks_library_init()) {
		cli_error("cannot initialise the client library");
		return EXIT_FAILURE_DB;
	}
	rc = lks_conn_open(c, url);
	if (rc == LKS_EINVAL) {
		cli_error("%s", lks_conn_errmsg(*c)); /* redacted by the library */
		lks_conn_close(*c);
		*c = NULL;
		return EXIT_USAGE;
	}
	if (rc) {
		cli_error("cannot connect: %s", *c ? lks_conn_errmsg(*c) : lks_strerror(rc));
		lks_conn_close(*c);
		*c = NULL;
		return cli_exit_for(rc);
	}
	if (co->table && (rc = lks_lease_set_table(*c, co->table))) {
		cli_error("--table: %s", lks_conn_errmsg(*c));
		lks_conn_close(*c);
		*c = NULL;
		return EXIT_USAGE;
	}
	return 0;
}

/* Length of the well-formed character at p that is not a control
 * character (C0, DEL, C1), or 0. Decoded by the C library in a UTF-8
 * locale (cli_init_locale); without one only printable ASCII passes. */
static int printable_char(const unsigned char *p)
{
	mbstate_t st;
	wchar_t wc;
	size_t len;
	if (*p < 0x80 || MB_CUR_MAX == 1)
		return *p >= 0x20 && *p < 0x7f ? 1 : 0;
	memset(&st, 0, sizeof st);
	len = mbrtowc(&wc, (const char *)p, MB_CUR_MAX, &st);
	if (len == (size_t)-1 || len == (size_t)-2 || len == 0 || iswcntrl((wint_t)wc))
		return 0;
	return (int)len;
}

void cli_init_locale(void)
{
	/* names and owners are UTF-8 whatever the user's locale says */
	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "C");
}

void cli_put_text(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		int len = printable_char(p);
		if (*p == '\\') {
			fputs("\\\\", f);
			p++;
		} else if (len) {
			fwrite(p, 1, (size_t)len, f);
			p += len;
		} else {
			fprintf(f, "\\x%02x", *p++);
		}
	}
}

void cli_put_json(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		int len = printable_char(p);
		if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p++, f);
		} else if (len) {
			fwrite(p, 1, (size_t)len, f);
			p += len;
		} else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			fprintf(f, "\\u%04x", p[1]); /* a C1 control character */
			p += 2;
		} else {
			/* a C0 control character, or a byte that is not UTF-8 */
			fprintf(f, "\\u%04x", *p++);
		}
	}
	fputc('"', f);
}

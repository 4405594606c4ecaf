/* The lockstock command: durations, errors, connecting, safe output. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "cli.h"
#include "utf8.h" /* src/: the library's decoder */

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
	/* a server's message may span lines (libpq's "Is the server
	 * running...?"): real line breaks, the later lines indented; every
	 * other control character stays escaped */
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\t' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	fputs("lockstock: ", stderr);
	for (char *line = msg, *nl;; line = nl + 1) {
		if ((nl = strchr(line, '\n')))
			*nl = '\0';
		if (line != msg) {
			fputs("\n    ", stderr);
			line += strspn(line, "\t ");
		}
		cli_put_text(stderr, line);
		if (!nl)
			break;
	}
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

/* Length of the printable UTF-8 character at p; 0 for a control character
 * (C0, DEL, C1) or a byte that does not start well-formed UTF-8. Strict and
 * locale-free, so what is printed does not depend on the terminal's setup. */
static int printable_char(const unsigned char *p)
{
	uint32_t cp = 0;
	int len = lks_utf8_char(p, &cp);
	if (!len || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
		return 0;
	return len;
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
		uint32_t cp = 0;
		int len = lks_utf8_char(p, &cp);
		if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p++, f);
		} else if (!len) {
			/* not UTF-8: U+FFFD keeps the output valid JSON; name_hex has
			 * the bytes */
			fputs("\\ufffd", f);
			p++;
		} else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
			fprintf(f, "\\u%04x", (unsigned)cp);
			p += len;
		} else {
			fwrite(p, 1, (size_t)len, f);
			p += len;
		}
	}
	fputc('"', f);
}

bool cli_utf8_valid(const char *s)
{
	return lks_utf8_valid(s);
}

void cli_put_hex(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		fprintf(f, "%02x", *p);
	fputc('"', f);
}

/* Connection URL parsing for mysql:// and mariadb:// (scheme detection is
 * in backends.c; postgresql:// URLs are parsed by libpq: PQconninfoParse). */
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "internal.h"

#define LKS_URL_MAX 4096

static int fail(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (err && errsz)
		vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return LKS_EINVAL;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9') return ch - '0';
	if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape or NUL. */
static char *decode(const char *s, size_t n, int *bad)
{
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
			int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				*bad = 1;
				explicit_bzero(out, n + 1); /* maybe part of a password */
				free(out);
				return NULL;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static int parse_uint(const char *s, size_t n, unsigned long max, unsigned int *out)
{
	unsigned long v = 0;
	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > max)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

void lks_url_free(lks_url *u)
{
	if (!u)
		return;
	free(u->user);
	lks_free_secret(u->password);
	free(u->host);
	free(u->socket);
	free(u->database);
	free(u->ssl_ca);
	free(u->ssl_cert);
	free(u->ssl_key);
	free(u->auth_plugins);
	memset(u, 0, sizeof *u);
}

/* A parameter key matches name with '-' and '_' taken as the same, so
 * ssl-mode and ssl_mode, connect-timeout and connect_timeout all work. */
static bool key_is(const char *k, size_t klen, const char *name)
{
	if (strlen(name) != klen)
		return false;
	for (size_t i = 0; i < klen; i++) {
		char a = k[i] == '-' ? '_' : k[i];
		if (a != name[i])
			return false;
	}
	return true;
}

static const char *const ssl_mode_names[] = {
	[LKS_SSL_DISABLED] = "DISABLED", [LKS_SSL_PREFERRED] = "PREFERRED",
	[LKS_SSL_REQUIRED] = "REQUIRED", [LKS_SSL_VERIFY_CA] = "VERIFY_CA",
	[LKS_SSL_VERIFY_IDENTITY] = "VERIFY_IDENTITY",
};

const char *lks_ssl_mode_name(lks_ssl_mode m)
{
	return m > LKS_SSL_UNSET && m <= LKS_SSL_VERIFY_IDENTITY ? ssl_mode_names[m] : "unset";
}

static int parse_ssl_mode(const char *v, lks_ssl_mode *out)
{
	for (int m = LKS_SSL_DISABLED; m <= LKS_SSL_VERIFY_IDENTITY; m++)
		if (!strcasecmp(v, ssl_mode_names[m])) {
			*out = (lks_ssl_mode)m;
			return 0;
		}
	return -1;
}

static int set_path(char **slot, char *val, const char *key, char *err, size_t errsz)
{
	if (!*val) {
		free(val);
		return fail(err, errsz, "%s is empty", key);
	}
	free(*slot);
	*slot = val;
	return LKS_OK;
}

static int set_seconds(unsigned int *slot, char *val, const char *key, char *err, size_t errsz)
{
	int rc = parse_uint(val, strlen(val), 3600, slot);
	free(val);
	return rc ? fail(err, errsz, "%s must be 1..3600 seconds", key) : LKS_OK;
}

static int parse_param(const char *k, size_t klen, char *val, lks_url *u, char *err, size_t errsz)
{
	if (key_is(k, klen, "socket") || key_is(k, klen, "unix_socket"))
		return set_path(&u->socket, val, "socket", err, errsz);
	if (key_is(k, klen, "connect_timeout"))
		return set_seconds(&u->connect_timeout, val, "connect-timeout", err, errsz);
	if (key_is(k, klen, "op_timeout")) {
		int rc = val[0] == '0' && !val[1] ? (u->op_timeout = 0, 0)
		                                  : parse_uint(val, strlen(val), 86400, &u->op_timeout);
		u->op_timeout_set = true;
		free(val);
		return rc ? fail(err, errsz, "op-timeout must be 0 (none) .. 86400 seconds") : LKS_OK;
	}
	if (key_is(k, klen, "read_timeout"))
		return set_seconds(&u->read_timeout, val, "read-timeout", err, errsz);
	if (key_is(k, klen, "write_timeout"))
		return set_seconds(&u->write_timeout, val, "write-timeout", err, errsz);
	if (key_is(k, klen, "ssl_ca"))
		return set_path(&u->ssl_ca, val, "ssl-ca", err, errsz);
	if (key_is(k, klen, "ssl_cert"))
		return set_path(&u->ssl_cert, val, "ssl-cert", err, errsz);
	if (key_is(k, klen, "ssl_key"))
		return set_path(&u->ssl_key, val, "ssl-key", err, errsz);
	if (key_is(k, klen, "ssl_mode")) {
		int rc = parse_ssl_mode(val, &u->ssl_mode);
		free(val);
		return rc ? fail(err, errsz, "ssl-mode must be DISABLED, PREFERRED, REQUIRED, "
		                             "VERIFY_CA or VERIFY_IDENTITY")
		          : LKS_OK;
	}
	if (key_is(k, klen, "auth_plugins")) {
		/* a comma-separated list of plugin names */
		if (!*val || strspn(val, "abcdefghijklmnopqrstuvwxyz0123456789_,") != strlen(val)) {
			free(val);
			return fail(err, errsz, "auth-plugins must be a comma-separated list of plugin names");
		}
		free(u->auth_plugins);
		u->auth_plugins = val;
		return LKS_OK;
	}
	if (key_is(k, klen, "fence_guard")) {
		static const char *const names[] = {"auto", "lock", "write"};
		int found = -1;
		for (int g = 0; g < 3; g++)
			if (!strcasecmp(val, names[g]))
				found = g;
		free(val);
		if (found < 0)
			return fail(err, errsz, "fence-guard must be auto, lock or write");
		u->fence_guard = (lks_fence_guard)found;
		return LKS_OK;
	}
	free(val);
	return fail(err, errsz, "unknown URL parameter: %.*s", (int)klen, k);
}

/* The TLS parameters must agree with each other; the mode they imply when
 * ssl-mode is absent is the one MySQL's own client would pick. */
static int check_tls(lks_url *u, char *err, size_t errsz)
{
	bool files = u->ssl_ca || u->ssl_cert || u->ssl_key;
	if (!u->ssl_cert != !u->ssl_key)
		return fail(err, errsz, "ssl-cert and ssl-key go together");
	if (u->ssl_mode == LKS_SSL_UNSET && files)
		u->ssl_mode = u->ssl_ca ? LKS_SSL_VERIFY_CA : LKS_SSL_REQUIRED;
	if (u->ssl_mode == LKS_SSL_DISABLED && files)
		return fail(err, errsz, "ssl-ca, ssl-cert and ssl-key need an ssl-mode other than DISABLED");
	/* without a CA file the client library checks no chain at all */
	if (u->ssl_mode == LKS_SSL_VERIFY_CA && !u->ssl_ca)
		return fail(err, errsz, "ssl-mode=VERIFY_CA needs ssl-ca (the CA certificate file)");
	return LKS_OK;
}

static int parse_params(const char *q, lks_url *u, char *err, size_t errsz)
{
	while (*q) {
		const char *amp = strchr(q, '&'), *eq;
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		int bad = 0, rc;
		char *val;
		eq = memchr(q, '=', len);
		if (!eq)
			return fail(err, errsz, "URL parameter without '=': %.*s", (int)len, q);
		val = decode(eq + 1, len - (size_t)(eq + 1 - q), &bad);
		if (!val)
			return bad ? fail(err, errsz, "bad percent escape in URL parameter")
			           : LKS_ENOMEM;
		if ((rc = parse_param(q, (size_t)(eq - q), val, u, err, errsz)))
			return rc;
		q += len + (amp ? 1 : 0);
	}
	return check_tls(u, err, errsz);
}

int lks_url_parse(const char *url, lks_url *u, char *err, size_t errsz)
{
	const char *p, *auth_end, *host_end, *at, *slash, *qmark;
	int bad = 0, rc;
	memset(u, 0, sizeof *u);
	if (!url)
		return fail(err, errsz, "URL is NULL");
	if (strnlen(url, LKS_URL_MAX + 1) > LKS_URL_MAX)
		return fail(err, errsz, "URL longer than %d bytes", LKS_URL_MAX);
	u->backend = lks_url_backend(url);
	if (u->backend == LKS_BACKEND_NONE)
		return fail(err, errsz, "URL must start with postgresql://, postgres://, mysql:// or mariadb://");
	p = strstr(url, "://") + 3;
	for (const char *s = url; *s; s++)
		if ((unsigned char)*s <= ' ')
			return fail(err, errsz, "URL contains a space or control character");
	/* authority ends at the first '/' or '?' */
	auth_end = p + strcspn(p, "/?");
	at = NULL;
	for (const char *s = p; s < auth_end; s++)
		if (*s == '@')
			at = s;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
		u->user = decode(p, ulen, &bad);
		if (!u->user)
			goto bad_escape;
		if (colon) {
			u->password = decode(colon + 1, (size_t)(at - colon - 1), &bad);
			if (!u->password)
				goto bad_escape;
		}
		p = at + 1;
	}
	if (*p == '[') {
		const char *close = memchr(p, ']', (size_t)(auth_end - p));
		if (!close) {
			rc = fail(err, errsz, "unterminated [IPv6] host in URL");
			goto out;
		}
		u->host = decode(p + 1, (size_t)(close - p - 1), &bad);
		host_end = close + 1;
	} else {
		host_end = memchr(p, ':', (size_t)(auth_end - p));
		if (!host_end)
			host_end = auth_end;
		u->host = decode(p, (size_t)(host_end - p), &bad);
	}
	if (!u->host)
		goto bad_escape;
	if (host_end < auth_end) {
		if (*host_end != ':' ||
		    parse_uint(host_end + 1, (size_t)(auth_end - host_end - 1), 65535, &u->port)) {
			rc = fail(err, errsz, "bad port in URL (1..65535)");
			goto out;
		}
	}
	slash = *auth_end == '/' ? auth_end : NULL;
	qmark = strchr(auth_end, '?');
	if (slash) {
		size_t dlen = qmark ? (size_t)(qmark - slash - 1) : strlen(slash + 1);
		if (dlen > 0) {
			u->database = decode(slash + 1, dlen, &bad);
			if (!u->database)
				goto bad_escape;
			if (strchr(u->database, '/')) {
				rc = fail(err, errsz, "database name in URL contains '/'");
				goto out;
			}
		}
	}
	if (qmark && (rc = parse_params(qmark + 1, u, err, errsz)) != LKS_OK)
		goto out;
	if (!*u->host && !u->socket) {
		free(u->host);
		u->host = strdup("localhost");
		if (!u->host) {
			rc = LKS_ENOMEM;
			goto out;
		}
	}
	return LKS_OK;
bad_escape:
	rc = bad ? fail(err, errsz, "bad percent escape in URL") : LKS_ENOMEM;
out:
	lks_url_free(u);
	return rc;
}

/* Mark every occurrence of secret[0..len) in msg (overlaps too). */
/* What redaction knows about a message: which bytes to hide, and which
 * spell a part of the URL that is not secret (user, host, port, database),
 * where a password that happens to be the same text is not hidden. */
typedef struct redaction {
	const char *msg;
	size_t n;
	bool *hide, *public_text;
} redaction;

/* Where pattern occurs in the message, flag its bytes [off, off + len). */
static void flag_within(const redaction *r, bool *flags, const char *pattern, size_t plen,
                        size_t off, size_t len)
{
	if (plen == 0 || len == 0)
		return;
	for (const char *hit = r->msg; (hit = memmem(hit, r->n - (size_t)(hit - r->msg), pattern, plen));
	     hit++)
		memset(flags + (hit - r->msg) + off, 1, len);
}

/* The secret where a message quotes it as a token of its own ("S3cret%zz"
 * in libpq's bad-escape message), and not inside a public part (a password
 * equal to the user name leaves "user 'app'" alone). Never as a bare word:
 * a password "server" must not mask "Is the server running". Where the URL
 * itself is quoted, mark_userinfo and mark_password_params hide the
 * password by position. */
static void mark_quoted(const redaction *r, const char *secret, size_t len)
{
	if (len == 0)
		return;
	for (const char *hit = r->msg; (hit = memmem(hit, r->n - (size_t)(hit - r->msg), secret, len));
	     hit++) {
		size_t at = (size_t)(hit - r->msg), i;
		if (at == 0 || at + len >= r->n || (hit[-1] != '"' && hit[-1] != '\'') || hit[len] != hit[-1])
			continue;
		for (i = 0; i < len && r->public_text[at + i]; i++)
			;
		if (i < len)
			memset(r->hide + at, 1, len);
	}
}

static void mark_public(const redaction *r, const char *text)
{
	if (text)
		flag_within(r, r->public_text, text, strlen(text), 0, strlen(text));
}

/* Where an unparsed URL's userinfo starts: after "scheme:" and any slashes
 * ("postgres:/u:p@h" with one slash, "mysqlx://"), or at 0 without a scheme
 * ("u:p@h"). */
static size_t userinfo_start(const char *url)
{
	size_t i = strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
	if (i == 0 || url[i] != ':')
		return 0;
	for (i++; url[i] == '/'; i++)
		;
	return i;
}

/* user:password@ as typed: where the message quotes it, the password's
 * position is known; elsewhere the password (to the last '@', and to the
 * first, for an unencoded '@' in it) is hidden where quoted. A URL that does
 * not parse loses its whole userinfo. */
static void mark_userinfo(const redaction *r, const char *url, bool parsed)
{
	const char *userinfo = url + userinfo_start(url), *first = strchr(userinfo, '@'),
	           *last = strrchr(userinfo, '@'), *colon;
	if (!last || last == userinfo)
		return;
	if (!parsed) {
		flag_within(r, r->hide, userinfo, (size_t)(last - userinfo), 0,
		            (size_t)(last - userinfo));
	}
	if (!(colon = memchr(userinfo, ':', (size_t)(last - userinfo))))
		return;
	if (last > colon + 1) {
		flag_within(r, r->hide, userinfo, (size_t)(last + 1 - userinfo),
		            (size_t)(colon + 1 - userinfo), (size_t)(last - colon - 1));
		mark_quoted(r, colon + 1, (size_t)(last - colon - 1));
	}
	if (first && first > colon + 1)
		mark_quoted(r, colon + 1, (size_t)(first - colon - 1));
}

/* A password= value in a query string or a key/value connection string
 * (libpq allows spaces around '=' and single quotes with \' inside). */
static void mark_password_params(const redaction *r, const char *url)
{
	for (const char *p = url; (p = strstr(p, "password")); p += 8) {
		const char *v = p + 8, *end;
		if (p != url && p[-1] != '?' && p[-1] != '&' && p[-1] != ' ' && p[-1] != ';')
			continue;
		v += strspn(v, " \t");
		if (*v != '=')
			continue;
		v++;
		v += strspn(v, " \t");
		if (*v == '\'') {
			for (end = ++v; *end && *end != '\''; end++)
				if (*end == '\\' && end[1])
					end++;
		} else {
			end = v + strcspn(v, "& \t;");
		}
		flag_within(r, r->hide, p, (size_t)(end - p), (size_t)(v - p), (size_t)(end - v));
		mark_quoted(r, v, (size_t)(end - v));
	}
}

/*
 * Where the URL keeps its secret: the password as the parser reads it
 * (decoded) and as typed, and any password= parameter value. Where the
 * message quotes the URL (or its userinfo or parameter) the password is
 * hidden by its position; elsewhere only where a message quotes it as a
 * token of its own ("..." or '...') and it is not the text of the user,
 * host, port or database, never as a bare word (a password "server" would
 * give itself away by masking "Is the server running"). A URL that does
 * not parse (unknown scheme, one slash, no scheme, a bad escape) is never
 * echoed, and loses its whole userinfo wherever a part of it is quoted:
 * when the parser cannot say where the password ends, nothing before the
 * last '@' is shown. Every occurrence is
 * found in the original message first, then each hidden run becomes "***",
 * so one mask cannot break up another secret.
 */
void lks_redact(char *msg, const char *url_in)
{
	char *url, port[16];
	size_t n, o = 0;
	bool *flags, parsed = false;
	lks_url u;
	char err[8];
	redaction r;
	if (!msg || !url_in || !(n = strlen(msg)))
		return;
	url = strdup(url_in); /* msg may be the URL itself */
	flags = calloc(2 * n, sizeof *flags);
	if (!url || !flags) {
		lks_free_secret(url);
		free(flags);
		/* cannot redact: show nothing rather than the secret */
		snprintf(msg, n + 1, "%s", n >= 3 ? "***" : "");
		return;
	}
	r = (redaction){msg, n, flags, flags + n};
	if (lks_url_parse(url, &u, err, sizeof err) == LKS_OK) {
		parsed = true;
		mark_public(&r, u.user);
		mark_public(&r, u.host);
		mark_public(&r, u.socket);
		mark_public(&r, u.database);
		if (u.port) {
			snprintf(port, sizeof port, "%u", u.port);
			mark_public(&r, port);
		}
		if (u.password)
			mark_quoted(&r, u.password, strlen(u.password));
		lks_url_free(&u);
	}
	mark_userinfo(&r, url, parsed);
	mark_password_params(&r, url);
	/* a URL that did not parse is never echoed: nothing says where its
	 * secrets end (a key=value conninfo has no scheme or '@': its
	 * password= is hidden by position) */
	if (!parsed && (userinfo_start(url) > 0 || strchr(url, '@')))
		flag_within(&r, r.hide, url, strlen(url), 0, strlen(url));
	/* rewrite in place: output never runs ahead of input ("***" replaces
	 * a run only when the run is at least that long) */
	for (size_t i = 0; i < n;) {
		if (!r.hide[i]) {
			msg[o++] = msg[i++];
			continue;
		}
		size_t run = 0;
		while (i + run < n && r.hide[i + run])
			run++;
		memset(msg + o, '*', run < 3 ? run : 3);
		o += run < 3 ? run : 3;
		i += run;
	}
	msg[o] = '\0';
	free(flags);
	lks_free_secret(url); /* it held the password */
}

int lks_url_redact(const char *url, char *out, size_t outsz)
{
	if (!url || !out || outsz == 0)
		return LKS_EINVAL;
	if (strlen(url) >= outsz) {
		out[0] = '\0';
		return LKS_EINVAL;
	}
	strcpy(out, url);
	lks_redact(out, url);
	return LKS_OK;
}

/* Remove parameter `key` ('-' and '_' alike) from url's query string. On
 * LKS_OK *rest is a new URL without it and *value the last value given
 * (percent-decoded; NULL when absent); the caller frees both. */
int lks_url_take_param(const char *url, const char *key, char **rest, char **value)
{
	const char *q = strchr(url, '?');
	size_t n = strlen(url), o, base;
	char *out;
	*rest = NULL;
	*value = NULL;
	if (!(out = malloc(n + 1)))
		return LKS_ENOMEM;
	o = base = q ? (size_t)(q - url) : n;
	memcpy(out, url, o);
	for (const char *p = q ? q + 1 : NULL; p && *p;) {
		const char *amp = strchr(p, '&'), *eq;
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		eq = memchr(p, '=', len);
		if (eq && key_is(p, (size_t)(eq - p), key)) {
			int bad = 0;
			free(*value);
			*value = decode(eq + 1, len - (size_t)(eq + 1 - p), &bad);
			if (!*value) {
				free(out);
				return bad ? LKS_EINVAL : LKS_ENOMEM;
			}
		} else {
			char sep = o == base ? '?' : '&';
			out[o++] = sep;
			memcpy(out + o, p, len);
			o += len;
		}
		p += len + (amp ? 1 : 0);
	}
	out[o] = '\0';
	*rest = out;
	return LKS_OK;
}

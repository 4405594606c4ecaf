/* Small pure helpers: identifiers, integers, result rows, time, randomness,
 * backoff. Everything here is covered by the unit suite. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "internal.h"
#include "utf8.h"

static bool ident_part_valid(const char *s, size_t n)
{
	if (n == 0 || n > LKS_IDENT_MAX)
		return false;
	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '_'))
			return false;
	}
	return true;
}

bool lks_label_valid(const char *s, size_t max)
{
	size_t n;
	if (!s || (n = strnlen(s, max + 1)) == 0 || n > max)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		uint32_t cp = 0;
		int len = lks_utf8_char(p, &cp);
		if (!len || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return false;
		p += len;
	}
	return true;
}

bool lks_ident_valid(const char *s)
{
	const char *dot;
	if (!s)
		return false;
	/* bounded scan: a 10 KB string is rejected without reading it all */
	size_t n = strnlen(s, 2 * LKS_IDENT_MAX + 2);
	if (n > 2 * LKS_IDENT_MAX + 1)
		return false;
	dot = memchr(s, '.', n);
	if (!dot)
		return ident_part_valid(s, n);
	return ident_part_valid(s, (size_t)(dot - s)) &&
	       ident_part_valid(dot + 1, n - (size_t)(dot - s) - 1);
}

/* Quote a valid identifier part by part: schema.table -> "schema"."table". */
int lks_ident_quote(const char *s, char quote, char *out, size_t outsz)
{
	size_t o = 0;
	if (!lks_ident_valid(s))
		return LKS_EINVAL;
	if (outsz < strlen(s) + 5)
		return LKS_EINVAL;
	out[o++] = quote;
	for (; *s; s++) {
		if (*s == '.') {
			out[o++] = quote;
			out[o++] = '.';
			out[o++] = quote;
		} else {
			out[o++] = *s;
		}
	}
	out[o++] = quote;
	out[o] = '\0';
	return LKS_OK;
}

int lks_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;
	if (!s || !*s)
		return LKS_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return LKS_EINVAL;
	*out = v;
	return LKS_OK;
}

int lks_options_copy(lks_conn *c, const char *what, void *dst, const void *src,
                     const size_t *sizes, unsigned int versions)
{
	unsigned int v;
	if (!src)
		return LKS_OK;
	memcpy(&v, src, sizeof v);
	if (v < 1 || v > versions)
		return lks_set_error(c, LKS_EINVAL, "%s options: unknown version %u (1..%u)", what, v,
		                     versions);
	memcpy(dst, src, sizes[v - 1]);
	return LKS_OK;
}

int lks_options_init(void *opts, const void *defaults, unsigned int version,
                     const size_t *sizes, unsigned int versions)
{
	if (!opts || version < 1 || version > versions)
		return LKS_EINVAL;
	memcpy(opts, defaults, sizes[version - 1]);
	memcpy(opts, &version, sizeof version);
	return LKS_OK;
}

void lks_free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

void lks_rows_clear(lks_rows *r)
{
	if (!r)
		return;
	if (r->cells) {
		for (int i = 0; i < r->nrows * r->ncols; i++)
			free(r->cells[i]);
		free(r->cells);
	}
	memset(r, 0, sizeof *r);
}

int lks_rows_find(const lks_rows *r, int col, const char *value)
{
	for (int i = 0; i < r->nrows; i++)
		if (lks_rows_get(r, i, col) && !strcmp(lks_rows_get(r, i, col), value))
			return i;
	return -1;
}

const char *lks_rows_get(const lks_rows *r, int row, int col)
{
	if (row < 0 || row >= r->nrows || col < 0 || col >= r->ncols)
		return NULL;
	return r->cells[row * r->ncols + col];
}

/* CLOCK_BOOTTIME keeps counting while the machine is suspended (a laptop
 * lid, a paused VM), unlike CLOCK_MONOTONIC: a lease's local deadline then
 * passes during the suspend, as the server's does. */
int64_t lks_now_us(void)
{
	struct timespec ts;
#ifdef CLOCK_BOOTTIME
	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
#endif
		clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void lks_monotonic_deadline(int64_t us, struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += us / 1000000;
	ts->tv_nsec += (us % 1000000) * 1000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

void lks_sleep_us(int64_t us)
{
	struct timespec ts;
	if (us <= 0)
		return;
	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int lks_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return LKS_EDB;
		}
		p += got;
		n -= (size_t)got;
	}
	return LKS_OK;
}

uint64_t lks_rng_next(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ULL;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* 128 random bits as hex: unguessable, unlike a hostname or a pid. */
void lks_holder_id(char out[LKS_HOLDER_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[LKS_HOLDER_LEN / 2];
	if (lks_random_bytes(b, sizeof b) != LKS_OK) {
		/* getrandom cannot fail on Linux >= 3.17 with a valid buffer;
		 * fall back to a time-seeded generator rather than a fixed id */
		uint64_t s = (uint64_t)lks_now_us() ^ (uint64_t)(uintptr_t)out;
		for (size_t i = 0; i < sizeof b; i++)
			b[i] = (unsigned char)lks_rng_next(&s);
	}
	for (size_t i = 0; i < sizeof b; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[LKS_HOLDER_LEN] = '\0';
}

uint64_t lks_baton_key(const char *table_q, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const char *p = table_q; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	h *= 0x100000001b3ULL; /* the separator: ("ab","c") != ("a","bc") */
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	return h;
}

int64_t lks_backoff_us(int attempt, int64_t base_us, int64_t cap_us,
                       uint64_t *rng)
{
	int64_t ceiling = base_us > 0 ? base_us : 1;
	if (cap_us < ceiling)
		cap_us = ceiling;
	for (int i = 0; i < attempt && ceiling < cap_us; i++)
		ceiling = ceiling > cap_us / 2 ? cap_us : ceiling * 2; /* never overflows */
	if (ceiling > cap_us)
		ceiling = cap_us;
	return (int64_t)(lks_rng_next(rng) % ((uint64_t)ceiling + 1));
}

void lks_sql_add(lks_sql *q, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (q->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(q->buf + q->len, sizeof q->buf - q->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof q->buf - q->len)
		q->overflow = true;
	else
		q->len += (size_t)n;
}

const char *lks_param(const lks_conn *c, size_t i, char buf[24])
{
	if (!(c->ops->caps & LKS_CAP_NUMBERED_PARAMS))
		return "?";
	snprintf(buf, 24, "$%zu", i);
	return buf;
}

void lks_sql_set_list(lks_sql *q, const lks_conn *c, const char *const *cols, size_t n)
{
	char p[24];
	for (size_t i = 0; i < n; i++)
		lks_sql_add(q, "%s = %s, ", cols[i], lks_param(c, i + 1, p));
}

void lks_sql_select_by_key(lks_sql *q, const char *table, const char *key, const char *version,
                           const char *const *cols, size_t n, const char *placeholder)
{
	lks_sql_add(q, "SELECT %s", version);
	for (size_t i = 0; i < n; i++)
		lks_sql_add(q, ", %s", cols[i]);
	lks_sql_add(q, " FROM %s WHERE %s = %s", table, key, placeholder);
}

int lks_classify_miss(lks_conn *c, const char *table, const char *key, const char *version,
                      lks_value keyv, const char *placeholder, int64_t *current)
{
	lks_sql q = {.len = 0};
	lks_rows r;
	int rc;
	lks_sql_select_by_key(&q, table, key, version, NULL, 0, placeholder);
	if ((rc = c->ops->query(c, q.buf, &keyv, 1, &r)))
		return rc;
	if (r.nrows == 0) {
		rc = LKS_NOT_FOUND;
	} else {
		rc = LKS_CONFLICT;
		if (lks_parse_i64(lks_rows_get(&r, 0, 0), current))
			*current = -1; /* NULL or not an integer: say so, do not guess */
	}
	lks_rows_clear(&r);
	return rc;
}

int lks_query_grant(lks_conn *c, const lks_sql *q, const lks_value *p, size_t n, int64_t *first)
{
	lks_rows r;
	int rc;
	if (q->overflow)
		return lks_set_error(c, LKS_EINVAL, "statement too long");
	if ((rc = c->ops->query(c, q->buf, p, n, &r)))
		return rc;
	rc = r.affected == 1 ? LKS_OK : LKS_LOST;
	if (rc == LKS_OK && first && r.ncols > 0)
		lks_parse_i64(lks_rows_get(&r, 0, 0), first);
	lks_rows_clear(&r);
	return rc;
}

int lks_schema_columns(lks_conn *c, const char *what, const char *table, const lks_rows *r,
                       const char *const (*want)[2], size_t n)
{
	for (size_t w = 0; w < n; w++) {
		int found = lks_rows_find(r, 0, want[w][0]);
		if (found < 0)
			return lks_set_error(c, LKS_EINVAL, "%s table %s exists without column %s", what,
			                     table, want[w][0]);
		if (strcmp(lks_rows_get(r, found, 1), want[w][1]))
			return lks_set_error(c, LKS_EINVAL, "%s table %s: column %s is %s, expected %s", what,
			                     table, want[w][0], lks_rows_get(r, found, 1), want[w][1]);
	}
	return LKS_OK;
}

int lks_exec_params(lks_conn *c, const lks_sql *q, const lks_value *p, size_t n, int64_t *affected)
{
	lks_rows r;
	int rc;
	if (q->overflow)
		return lks_set_error(c, LKS_EINVAL, "statement too long");
	if ((rc = c->ops->query(c, q->buf, p, n, &r)))
		return rc;
	if (affected)
		*affected = r.affected;
	lks_rows_clear(&r);
	return LKS_OK;
}

/* data as lowercase hex, NUL-terminated (malloc; NULL: out of memory) */
char *lks_hex_of(const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;
	char *out = malloc(2 * len + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
	return out;
}

/* hex back to bytes (out has strlen(s) / 2); -1 when not hex */
static int hex_digit(char ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0'
	       : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
	       : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
	                                : -1;
}

/* linear: sscanf would measure the rest of the string at every byte */
int lks_unhex(const char *s, unsigned char *out, size_t *len)
{
	size_t n = strlen(s);
	if (n % 2)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

/* A statement failed because its table does not exist (PostgreSQL 42P01,
 * MySQL / MariaDB 42S02): say which install call makes it, with one status
 * on both databases. Any other outcome passes through. */
int lks_missing_table(lks_conn *c, int rc, const char *what, const char *table,
                      const char *install)
{
	char plain[2 * LKS_IDENT_MAX + 8];
	size_t n = 0;
	if (rc == LKS_OK || (strcmp(c->sqlstate, "42P01") && strcmp(c->sqlstate, "42S02")))
		return rc;
	for (const char *p = table; *p && n + 1 < sizeof plain; p++)
		if (*p != '"' && *p != '`') /* the same name on both databases */
			plain[n++] = *p;
	plain[n] = '\0';
	return lks_set_error(c, LKS_EDB,
	                     "%s table %s does not exist: run %s (or the command `lockstock install`)"
	                     " once", what, plain, install);
}

/* cmocka 1.1.5 (Debian 12) prints a skipped case as "not ok N # SKIP",
 * which TAP consumers such as meson count as a failure, and the tests'
 * own progress lines are not TAP. With CMOCKA_MESSAGE_OUTPUT=TAP, stdout
 * is replaced by a filter that writes "ok N # SKIP" instead and turns every
 * line that is not TAP into a "# " comment; fd 1 itself is untouched, so
 * the programs the tests run write to it as before. */
#include "tap.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char line[16384];
static size_t used;

static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static int is_tap(const char *s)
{
	return !strncmp(s, "ok ", 3) || !strncmp(s, "not ok ", 7) || !strncmp(s, "1..", 3) ||
	       s[0] == '#' || !strncmp(s, "Bail out!", 9);
}

/* one whole line (or the tail at close), rewritten */
static void emit(void)
{
	line[used] = '\0';
	if (!strncmp(line, "not ok ", 7) && strstr(line, "# SKIP"))
		write_all(line + 4, used - 4);
	else if (is_tap(line) || used == 0)
		write_all(line, used);
	else {
		write_all("# ", 2);
		write_all(line, used);
	}
	used = 0;
}

static ssize_t tap_write(void *cookie, const char *buf, size_t n)
{
	(void)cookie;
	for (size_t i = 0; i < n; i++) {
		if (used == sizeof line - 1)
			emit(); /* an overlong line goes out in pieces */
		line[used++] = buf[i];
		if (buf[i] == '\n')
			emit();
	}
	return (ssize_t)n;
}

static int tap_close(void *cookie)
{
	(void)cookie;
	if (used > 0)
		emit();
	return 0;
}

void tap_stdout(void)
{
	const char *mode = getenv("CMOCKA_MESSAGE_OUTPUT");
	if (!mode || strcasecmp(mode, "TAP"))
		return;
	cookie_io_functions_t io = {.write = tap_write, .close = tap_close};
	FILE *f = fopencookie(NULL, "w", io);
	if (!f)
		return;
	fflush(stdout);
	setvbuf(f, NULL, _IOLBF, 0);
	stdout = f;
}

/* The lockstock command: shared declarations. */
#ifndef LOCKSTOCK_CLI_H
#define LOCKSTOCK_CLI_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "lockstock.h"

/* Exit statuses (sysexits.h where one fits; see `lockstock help`). */
enum {
	EXIT_NOT_HELD = 1,     /* release --force: the lease was not held */
	EXIT_USAGE = 64,       /* EX_USAGE: bad command line */
	EXIT_UNAVAILABLE = 69, /* EX_UNAVAILABLE: database unreachable */
	EXIT_FAILURE_DB = 70,  /* EX_SOFTWARE: any other database or library error */
	EXIT_BUSY = 75,        /* EX_TEMPFAIL: lease busy, or the wait ran out */
	EXIT_LOST = 79,        /* the lease was lost while the command ran */
	EXIT_CANNOT_EXEC = 126,
	EXIT_NOT_FOUND_CMD = 127,
};

/* Options every subcommand takes. */
typedef struct cli_common {
	const char *url;   /* --url, else LOCKSTOCK_URL */
	const char *table; /* --table, else the default */
} cli_common;

/* Parse "500ms", "30s", "5m", "2h", "1d" (or "0") into milliseconds no
 * larger than max_ms. Returns 0, or -1 with a message in err. */
int cli_parse_duration(const char *s, int64_t max_ms, int64_t *ms, char *err, size_t errsz);
/* A status code for a library error: 69 unreachable, 70 otherwise. */
int cli_exit_for(int status);

/* Messages: "lockstock: " prefix, to stderr; a message from a server that
 * spans lines keeps its line breaks (later lines indented). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Open the connection named by the common options; prints the error and
 * returns the exit status on failure, 0 on success. */
int cli_connect(const cli_common *co, lks_conn **c);

/* Output: text safe for a terminal (control characters and invalid UTF-8
 * escaped as \xNN, backslash as \\), and JSON strings. */
void cli_put_text(FILE *f, const char *s);
void cli_put_json(FILE *f, const char *s);
/* s as a JSON string of lowercase hex digits, two per byte */
void cli_put_hex(FILE *f, const char *s);
bool cli_utf8_valid(const char *s);

/* Subcommands: argv[0] is the subcommand's name. */
int cli_install(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_elect(int argc, char **argv);  /* run, waiting to be elected */
int cli_leader(int argc, char **argv); /* leader.c */
int cli_check(int argc, char **argv);  /* check.c */
int cli_list(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_release(int argc, char **argv);
int cli_once(int argc, char **argv); /* argv[0] "once", argv[1] the verb */
int cli_purge(int argc, char **argv);

/* run --once: the key (given, or the server clock's current period:
 * hour, day, week, month or a duration), and whether it is done (1, with a
 * message; 0 not yet; -status on an error, printed). */
int cli_once_check_period(const char *period, char *err, size_t errsz);
int cli_once_key(lks_conn *c, const char *once, const char *period, char *key, size_t n);
int cli_once_done(lks_conn *c, const char *name, const char *key, const char *table);

/* Help: the full page for a subcommand (NULL: the overview). false when
 * there is no such subcommand. */
bool cli_help(FILE *f, const char *subcommand);
#endif

/* Integration tests of the lockstock command against a real server: each
 * case runs the built binary as a user would. Usage:
 * cli_test postgresql|mysql PATH-TO-LOCKSTOCK */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "support.h"
#include "utf8.h"
#include "tap.h"

static const char *cli;
/* LKS_CLI_WRAP: words to run the command under (the valgrind pass) */
static char *wrap[16];

typedef struct proc {
	pid_t pid;
	char out[256], err[256]; /* files with its stdout and stderr */
} proc;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start `lockstock args...` (NULL-terminated) with LOCKSTOCK_URL = url
 * (NULL: unset), in a process group of its own. */
static proc start(const char *url, const char *const *args)
{
	static int seq;
	proc p;
	const char *argv[32];
	int n = 0;
	snprintf(p.out, sizeof p.out, "/tmp/lks-cli-%d-%d.out", (int)getpid(), ++seq);
	snprintf(p.err, sizeof p.err, "/tmp/lks-cli-%d-%d.err", (int)getpid(), seq);
	for (int i = 0; wrap[i]; i++)
		argv[n++] = wrap[i];
	argv[n++] = cli;
	while (*args && n < 31)
		argv[n++] = *args++;
	argv[n] = NULL;
	p.pid = fork();
	assert_true(p.pid >= 0);
	if (p.pid == 0) {
		int o = open(p.out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(p.err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		setpgid(0, 0);
		dup2(o, 1);
		dup2(e, 2);
		if (url)
			setenv("LOCKSTOCK_URL", url, 1);
		else
			unsetenv("LOCKSTOCK_URL");
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	setpgid(p.pid, p.pid);
	return p;
}

/* Its exit status (128+N when killed by signal N); the rest of its
 * process group is killed. */
static int finish(proc *p)
{
	int ws;
	while (waitpid(p->pid, &ws, 0) < 0 && errno == EINTR)
		;
	kill(-p->pid, SIGKILL);
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static char *slurp(const char *path)
{
	static char buf[8][8192];
	static int k;
	char *b = buf[k++ % 8];
	FILE *fp = fopen(path, "r");
	size_t n = fp ? fread(b, 1, sizeof buf[0] - 1, fp) : 0;
	if (fp)
		fclose(fp);
	b[n] = '\0';
	return b;
}

static int run(const char *url, const char *const *args, proc *out)
{
	proc p = start(url, args);
	int st = finish(&p);
	if (out)
		*out = p;
	return st;
}

static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Wait until path exists (the command started), at most 10 s. */
static void wait_file(const char *path)
{
	struct stat sb;
	for (int i = 0; i < 1000 && stat(path, &sb) != 0; i++)
		usleep(10000);
	assert_int_equal(stat(path, &sb), 0);
}

static void tmpfile_name(char *out, size_t n, const char *what)
{
	snprintf(out, n, "/tmp/lks-cli-%d-%s", (int)getpid(), what);
	unlink(out);
}

/* Two runs started together: exactly one runs the command; the other is
 * busy (75), or 0 with --busy-exit 0. Several rounds. */
static void one_of_two_runs(void **state)
{
	fx *f = *state;
	char file[256], script[1200];
	tmpfile_name(file, sizeof file, "two");
	snprintf(script, sizeof script, "echo $LOCKSTOCK_FENCE >> %s; sleep 1", file);
	for (int round = 0; round < 3; round++) {
		const char *busy = round == 2 ? "0" : "75";
		const char *args[] = {"run", "nightly", "--ttl", "10s", "--busy-exit", busy, "--", "sh", "-c", script, NULL};
		proc a = start(f->url, args), b = start(f->url, args);
		int sa = finish(&a), sb = finish(&b);
		if (round < 2) {
			assert_true((sa == 0 && sb == 75) || (sa == 75 && sb == 0));
			assert_non_null(strstr(slurp(sa == 75 ? a.err : b.err), "lease nightly is "));
		} else {
			assert_int_equal(sa, 0);
			assert_int_equal(sb, 0);
		}
		assert_int_equal(lines(slurp(file)), round + 1);
	}
	unlink(file);
}

/* --wait: the second runs after the first; the runs never overlap and the
 * fences in the commands' environment increase. */
static void wait_runs_in_turn(void **state)
{
	fx *f = *state;
	char file[256], script[1200];
	long long fa, fb, ea, eb;
	tmpfile_name(file, sizeof file, "wait");
	snprintf(script, sizeof script,
	         "echo start $LOCKSTOCK_FENCE >> %s; sleep 0.5; echo end $LOCKSTOCK_FENCE >> %s", file, file);
	const char *args[] = {"run", "turns", "--wait", "5s", "--", "sh", "-c", script, NULL};
	proc a = start(f->url, args), b = start(f->url, args);
	assert_int_equal(finish(&a), 0);
	assert_int_equal(finish(&b), 0);
	assert_int_equal(sscanf(slurp(file), "start %lld\nend %lld\nstart %lld\nend %lld", &fa, &ea, &fb, &eb), 4);
	assert_int_equal(fa, ea);
	assert_int_equal(fb, eb);
	assert_true(fb > fa);
	unlink(file);
}

/* #29 item 9: --url (with its password) is blanked in /proc/PID/cmdline
 * in every mode, not only run and elect: watched until the blank shows,
 * for as long as the process runs. Under valgrind the kernel shows
 * valgrind's own argv, so only without the wrapper. */
static void url_hidden_in_every_mode(void **state)
{
	fx *f = *state;
	const char *watch[] = {"leader", "hiddenurl", "--watch", "--url", f->url, NULL};
	const char *check[] = {"check", "--workers", "2", "--duration", "3s", "--url", f->url, NULL};
	const char *const *modes[] = {watch, check};
	if (wrap[0])
		return;
	for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
		char path[64], buf[2048];
		bool blanked = false;
		proc p = start(NULL, modes[m]);
		snprintf(path, sizeof path, "/proc/%d/cmdline", (int)p.pid);
		/* wait on what the process shows, until it exits */
		for (int i = 0; i < 3000 && !blanked; i++) {
			int fd = open(path, O_RDONLY);
			ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
			if (fd >= 0)
				close(fd);
			if (waitpid(p.pid, NULL, WNOHANG) == p.pid)
				break;
			if (n <= 0) { /* nothing to read while the exec is under way */
				usleep(10000);
				continue;
			}
			for (ssize_t k = 0; k < n; k++)
				buf[k] = buf[k] ? buf[k] : ' ';
			buf[n] = '\0';
			if (strstr(buf, "****")) {
				blanked = true;
				if (strstr(buf, "lkspw") || strstr(buf, f->url))
					fail_msg("%s: the password shows: %s", modes[m][0], buf);
			}
			usleep(10000);
		}
		kill(-p.pid, SIGTERM);
		finish(&p);
		if (!blanked)
			fail_msg("%s: --url was never blanked: %s", modes[m][0], slurp(p.err));
	}
}

/* A lockstock killed with SIGKILL: another run --wait takes over once the
 * TTL has passed, and list shows its owner. */
static void sigkilled_run_is_taken_over(void **state)
{
	fx *f = *state;
	char up[256], script[512];
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	tmpfile_name(up, sizeof up, "killed");
	snprintf(script, sizeof script, "touch %s; sleep 30", up);
	const char *a_args[] = {"run", "crashy", "--ttl", "2s", "--owner", "replica-a", "--", "sh", "-c", script, NULL};
	const char *b_args[] = {"run", "crashy", "--wait", "10s", "--owner", "replica-b", "--pass-url", "--", cli, "list", NULL};
	proc a = start(f->url, a_args), b;
	wait_file(up);
	assert_int_equal(lks_lease_inspect(f->c, "crashy", &info), LKS_OK);
	assert_string_equal(info.owner, "replica-a");
	kill(a.pid, SIGKILL);
	assert_int_equal(finish(&a), 128 + SIGKILL); /* and its command */
	t_exec(f->c, "CREATE TABLE crashy_expiry AS SELECT expires_at FROM lks_lease WHERE name = 'crashy'");
	assert_int_equal(run(f->url, b_args, &b), 0);
	/* it waited for the expiry: granted at or after it, on the server's clock */
	assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease l, crashy_expiry e WHERE"
	                              " l.name = 'crashy' AND l.acquired_at >= e.expires_at"),
	                 1);
	t_exec(f->c, "DROP TABLE crashy_expiry");
	assert_non_null(strstr(slurp(b.out), "crashy\treplica-b\t"));
	assert_null(strstr(slurp(b.out), "replica-a"));
	unlink(up);
}

static int write_one(lks_conn *c, int64_t fence, void *arg)
{
	(void)fence;
	(void)arg;
	return lks_conn_exec(c, "UPDATE cli_target SET n = n + 1");
}

/* A lease force-released while its command runs: the command gets SIGTERM,
 * lockstock exits 79, and the old grant's fenced writes are refused. */
static void force_release_stops_the_command(void **state)
{
	fx *f = *state;
	char env[256], script[1500], holder[64];
	long long fence;
	lks_lease *adopted = NULL;
	tmpfile_name(env, sizeof env, "lost");
	t_exec(f->c, "CREATE TABLE cli_target (n int NOT NULL)");
	t_exec(f->c, "INSERT INTO cli_target VALUES (0)");
	snprintf(script, sizeof script,
	         "trap 'echo TERM >> %s; exit 143' TERM; echo $LOCKSTOCK_FENCE $LOCKSTOCK_HOLDER > %s.tmp;"
	         " mv %s.tmp %s; sleep 30 & wait",
	         env, env, env, env);
	/* a TTL that renewals keep alive under valgrind too (the command is
	 * slow there): the release below must find the lease held */
	const char *args[] = {"run", "guarded", "--ttl", "6s", "--", "sh", "-c", script, NULL};
	const char *force[] = {"release", "--force", "guarded", NULL};
	proc a = start(f->url, args), r;
	wait_file(env);
	assert_int_equal(sscanf(slurp(env), "%lld %63s", &fence, holder), 2);
	/* the command's grant, adopted from its environment, can write */
	assert_int_equal(lks_lease_adopt(&adopted, f->c, "guarded", holder, fence), LKS_OK);
	assert_int_equal(lks_lease_fenced_write(f->c, adopted, write_one, NULL), LKS_OK);
	if (run(f->url, force, &r) != 0)
		fail_msg("release --force: %s%s", slurp(r.out), slurp(r.err));
	assert_non_null(strstr(slurp(r.out), "released guarded"));
	assert_int_equal(finish(&a), 79);
	assert_non_null(strstr(slurp(env), "TERM"));
	assert_non_null(strstr(slurp(a.err), "lost"));
	/* the old grant writes nothing now */
	assert_int_equal(lks_lease_fenced_write(f->c, adopted, write_one, NULL), LKS_LOST);
	lks_lease_free(adopted);
	assert_int_equal(lks_lease_adopt(&adopted, f->c, "guarded", holder, fence), LKS_LOST);
	assert_int_equal(t_int1(f->c, "SELECT n FROM cli_target"), 1);
	/* a second force release finds nothing held */
	assert_int_equal(run(f->url, force, &r), 1);
	unlink(env);
}

/* --at-least 4s: a command that ends at once keeps the lease 4 s from the
 * start, without lockstock lingering: it has exited while the lease is
 * still held. */
static void at_least_holds_after_the_command(void **state)
{
	fx *f = *state;
	const char *args[] = {"run", "daily", "--at-least", "4s", "--", "true", NULL};
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	int64_t t0 = now_ms();
	assert_int_equal(run(f->url, args, NULL), 0);
	assert_int_equal(lks_lease_inspect(f->c, "daily", &info), LKS_OK);
	assert_true(info.held);
	assert_true(info.remaining_ms > 0 && info.remaining_ms <= 4000);
	/* a second run within the 4 s finds it held (75). On a loaded machine
	 * (valgrind) the 4 s may pass before it starts: then it may only have
	 * been granted after the first hold ended, on the server's clock */
	t_exec(f->c, "CREATE TABLE daily_first AS SELECT expires_at FROM lks_lease WHERE name = 'daily'");
	int rc = run(f->url, args, NULL);
	if (rc == 0) {
		print_message("    the second run started after the 4 s: granted anew\n");
		assert_int_equal(t_int1(f->c, "SELECT COUNT(*) FROM lks_lease l, daily_first e WHERE"
		                              " l.name = 'daily' AND l.acquired_at >= e.expires_at"),
		                 1);
		t_exec(f->c, "DROP TABLE daily_first");
		return;
	}
	t_exec(f->c, "DROP TABLE daily_first");
	assert_int_equal(rc, 75);
	/* it stays held until 4 s after the first start, then frees itself */
	do {
		assert_int_equal(lks_lease_inspect(f->c, "daily", &info), LKS_OK);
		if (info.held)
			usleep(50000);
	} while (info.held && now_ms() - t0 < 15000);
	assert_false(info.held);
	assert_true(now_ms() - t0 >= 3900);
	assert_int_equal(run(f->url, args, NULL), 0);
}

/* SIGTERM to lockstock reaches the command; the lease is released and the
 * exit status is the command's. */
static void signals_reach_the_command(void **state)
{
	fx *f = *state;
	char up[256], got[256], script[1200];
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	tmpfile_name(up, sizeof up, "sig-up");
	tmpfile_name(got, sizeof got, "sig-got");
	snprintf(script, sizeof script, "trap 'echo TERM > %s; exit 7' TERM; touch %s; sleep 30 & wait", got, up);
	const char *args[] = {"run", "polite", "--", "sh", "-c", script, NULL};
	proc a = start(f->url, args);
	wait_file(up);
	kill(a.pid, SIGTERM);
	assert_int_equal(finish(&a), 7);
	assert_non_null(strstr(slurp(got), "TERM"));
	assert_int_equal(lks_lease_inspect(f->c, "polite", &info), LKS_OK);
	assert_false(info.held);
	assert_int_equal(info.fence, 1);
	unlink(up);
	unlink(got);
}

/* Whether process pid is gone (a zombie counts as gone: it runs nothing). */
static bool process_gone(pid_t pid)
{
	char path[64], buf[512];
	FILE *fp;
	size_t n;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (!(fp = fopen(path, "r")))
		return true;
	n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Wait (on observed state) until pid is gone, at most 10 s. */
static void wait_gone(pid_t pid)
{
	for (int i = 0; i < 1000 && !process_gone(pid); i++)
		usleep(10000);
}

/* A job whose grandchild writes "tick" lines (its pid in a file, SIGTERM
 * ignored) while the command's shell waits for it. */
typedef struct ticker {
	char ticks[256], pidf[256], script[1200];
} ticker;

static void ticker_init(ticker *t, const char *tag)
{
	char what[32];
	snprintf(what, sizeof what, "%s-ticks", tag);
	tmpfile_name(t->ticks, sizeof t->ticks, what);
	snprintf(what, sizeof what, "%s-pid", tag);
	tmpfile_name(t->pidf, sizeof t->pidf, what);
	snprintf(t->script, sizeof t->script,
	         "(trap '' TERM; while :; do echo tick >> %s; sleep 0.02; done) & echo $! > %s.tmp;"
	         " mv %s.tmp %s; wait",
	         t->ticks, t->pidf, t->pidf, t->pidf);
}

/* The ticking grandchild's pid, once the job has started it. */
static pid_t ticker_pid(ticker *t)
{
	long pid = 0;
	wait_file(t->pidf);
	assert_int_equal(sscanf(slurp(t->pidf), "%ld", &pid), 1);
	return (pid_t)pid;
}

static void ticker_done(ticker *t, pid_t pid)
{
	kill(pid, SIGKILL);
	unlink(t->ticks);
	unlink(t->pidf);
}

/* Reap lockstock alone: the test's own group kill (finish) must not help. */
static int wait_exit(pid_t pid)
{
	int ws;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* Hardening 3, item 2a: lockstock SIGKILLed mid-job takes the whole job
 * with it (the command's process group, grandchildren too): once another
 * replica is granted the lease, nothing of the first job runs. */
static void sigkilled_run_takes_its_job_with_it(void **state)
{
	fx *f = *state;
	ticker t;
	char second[600];
	ticker_init(&t, "k");
	snprintf(second, sizeof second, "echo granted >> %s", t.ticks);
	const char *a_args[] = {"run", "killjob", "--ttl", "2s", "--", "sh", "-c", t.script, NULL};
	const char *b_args[] = {"run", "killjob", "--wait", "20s", "--", "sh", "-c", second, NULL};
	proc a = start(f->url, a_args);
	pid_t tick = ticker_pid(&t);
	kill(a.pid, SIGKILL);
	assert_int_equal(wait_exit(a.pid), 128 + SIGKILL);
	assert_int_equal(run(f->url, b_args, NULL), 0);
	/* the second replica has been granted and ran: the ticker is gone and
	 * the last line is the second job's */
	assert_true(process_gone(tick));
	const char *last = strstr(slurp(t.ticks), "granted\n");
	assert_non_null(last);
	assert_string_equal(last, "granted\n");
	ticker_done(&t, tick);
}

/* Item 2b: a lost lease stops the whole group, grandchildren that ignore
 * SIGTERM included (SIGKILL after --kill-after). */
static void lost_lease_stops_grandchildren(void **state)
{
	fx *f = *state;
	ticker t;
	ticker_init(&t, "l");
	const char *args[] = {"run", "lostjob", "--ttl", "4s", "--kill-after", "1s", "--", "sh", "-c", t.script, NULL};
	const char *force[] = {"release", "--force", "lostjob", NULL};
	proc a = start(f->url, args);
	pid_t tick = ticker_pid(&t);
	assert_int_equal(run(f->url, force, NULL), 0);
	assert_int_equal(wait_exit(a.pid), 79);
	wait_gone(tick); /* reaped by init: observed, not timed */
	assert_true(process_gone(tick));
	ticker_done(&t, tick);
}

/* Items 13, 17, 18 and 3: the command's environment has no LOCKSTOCK_URL
 * (unless --pass-url) but has LOCKSTOCK_TABLE; --url is blanked in argv;
 * ignored signals stay ignored; a --kill-after that cannot fit is clamped
 * with a warning; duration errors name their option. */
static void run_environment_and_timing(void **state)
{
	fx *f = *state;
	char out[256], script[1200], cmdline[256];
	proc p;
	tmpfile_name(out, sizeof out, "env");
	t_exec(f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                 ? "CREATE TABLE cli_other_lease (name text PRIMARY KEY, holder text,"
	                   " fence bigint NOT NULL, acquired_at timestamptz, expires_at timestamptz NOT NULL,"
	                   " owner text, writes bigint NOT NULL DEFAULT 0)"
	                 : "CREATE TABLE cli_other_lease (name VARBINARY(255) NOT NULL PRIMARY KEY,"
	                   " holder CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,"
	                   " fence BIGINT NOT NULL, acquired_at DATETIME(6) NULL,"
	                   " expires_at DATETIME(6) NOT NULL, owner VARBINARY(255) NULL,"
	                   " writes BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB");
	snprintf(script, sizeof script,
	         "echo \"url=${LOCKSTOCK_URL:-none} table=${LOCKSTOCK_TABLE:-none}\" > %s.tmp; mv %s.tmp %s",
	         out, out, out);
	const char *args[] = {"run", "envjob", "--table", "cli_other_lease", "--", "sh", "-c", script, NULL};
	assert_int_equal(run(f->url, args, &p), 0);
	assert_non_null(strstr(slurp(out), "url=none table=cli_other_lease"));
	const char *pass[] = {"run", "envjob", "--pass-url", "--table", "cli_other_lease", "--", "sh", "-c", script, NULL};
	assert_int_equal(run(f->url, pass, &p), 0);
	assert_non_null(strstr(slurp(out), "url=postgresql") || strstr(slurp(out), "url=mysql"));
	/* --url blanked in argv: the command reads lockstock's cmdline through
	 * its keeper's parent */
	snprintf(script, sizeof script, "tr '\\0' ' ' < /proc/$(cut -d' ' -f4 /proc/$PPID/stat)/cmdline > %s", out);
	const char *byflag[] = {"run", "argjob", "--url", f->url, "--", "sh", "-c", script, NULL};
	assert_int_equal(run(NULL, byflag, &p), 0);
	snprintf(cmdline, sizeof cmdline, "%s", slurp(out));
	if (!wrap[0]) { /* under valgrind the kernel shows valgrind's own argv */
		assert_non_null(strstr(cmdline, "argjob"));
		assert_null(strstr(cmdline, f->url));
		assert_null(strstr(cmdline, "lkspw"));
	}
	/* a --kill-after longer than TTL/4 is clamped, and says so */
	const char *clamp[] = {"run", "clampjob", "--ttl", "3s", "--kill-after", "10s", "--", "true", NULL};
	assert_int_equal(run(f->url, clamp, &p), 0);
	assert_non_null(strstr(slurp(p.err), "does not fit"));
	/* long TTLs: the renew connection's derived timeouts stay in range
	 * (MySQL once refused connect-timeout=TTL/4 past 3600 s) */
	const char *longttl[] = {"run", "longjob", "--ttl", "241m", "--", "true", NULL};
	assert_int_equal(run(f->url, longttl, &p), 0);
	const char *week[] = {"run", "weekjob", "--ttl", "7d", "--", "true", NULL};
	assert_int_equal(run(f->url, week, &p), 0);
	/* duration errors name their option */
	const char *badttl[] = {"run", "x", "--ttl", "5x", "--", "true", NULL};
	assert_int_equal(run(f->url, badttl, &p), 64);
	assert_non_null(strstr(slurp(p.err), "--ttl"));
	unlink(out);
}

/* Item 17: a signal ignored when lockstock started (nohup) stays ignored
 * for the command. */
static void ignored_signals_stay_ignored(void **state)
{
	fx *f = *state;
	char out[256], script[600];
	proc p;
	tmpfile_name(out, sizeof out, "ign");
	snprintf(script, sizeof script, "grep '^SigIgn:' /proc/self/status > %s", out);
	const char *args[] = {"run", "nohupjob", "--", "sh", "-c", script, NULL};
	signal(SIGHUP, SIG_IGN); /* inherited by the lockstock started next */
	int st = run(f->url, args, &p);
	signal(SIGHUP, SIG_DFL);
	assert_int_equal(st, 0);
	unsigned long long mask = 0;
	assert_int_equal(sscanf(slurp(out), "SigIgn: %llx", &mask), 1);
	assert_true(mask & (1ULL << (SIGHUP - 1)));
	unlink(out);
}

/* Bad usage and an unreachable server: 64 or 69, one line on stderr
 * without the password, nothing changed. */
static void bad_usage(void **state)
{
	fx *f = *state;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	struct {
		int status;
		bool env;
		const char *args[12];
	} cases[] = { /* none may grant x */
		{64, true, {"run", "x", "--bogus", "--", "true", NULL}},
		{64, true, {"run", "x", "true", NULL}},
		{64, true, {"run", "x", "--ttl", "30", "--", "true", NULL}},
		{64, true, {"run", "x", "--ttl", "5 minutes", "--", "true", NULL}},
		{64, true, {"run", "x", "--wait", "-1s", "--", "true", NULL}},
		{64, true, {"run", "x", "--ttl", "8d", "--", "true", NULL}},
		{64, true, {"run", "x", "--busy-exit", "300", "--", "true", NULL}},
		{64, true, {"run", "--", "true", NULL}},
		{64, true, {"run", "--permits", "2", "x", "y", "--", "true", NULL}},
		{64, true, {"run", "x", "--permits", "0", "--", "true", NULL}},
		{64, true, {"run", "x", "--permits", "1001", "--", "true", NULL}},
		/* #29 item 1: every permit holder would run the once key */
		{64, true, {"run", "x", "--permits", "3", "--once", "k", "--", "true", NULL}},
		{64, true, {"run", "x", "--permits", "3", "--once-per", "day", "--", "true", NULL}},
		{64, true, {"elect", "x", "--permits", "2", "--", "true", NULL}},
		{64, true, {"elect", "x", "y", "--", "true", NULL}},
		{64, true, {"leader", NULL}},
		{64, true, {"leader", "x", "y", NULL}},
		{64, true, {"leader", "x", "--bogus", NULL}},
		{64, true, {"check", "--workers", "0", NULL}},
		{64, true, {"check", "--ttl", "5", NULL}},
		{64, true, {"check", "extra", NULL}},
		{64, true, {"run", "x", "--", NULL}},
		{64, false, {"run", "x", "--", "true", NULL}},
		{64, true, {"run", "x", "--url", "ftp://lks:lkspw@h/x", "--", "true", NULL}},
		{69, true, {"run", "x", "--url", NULL, "--", "true", NULL}}, /* unreachable */
		{64, true, {"release", "x", NULL}},
		{64, true, {"inspect", NULL}},
		{64, true, {"list", "extra", NULL}},
		{64, true, {"frobnicate", NULL}},
		{64, true, {"run", "x", "--table", "bad;name", "--", "true", NULL}},
	};
	char unreachable[512];
	proc p;
	snprintf(unreachable, sizeof unreachable, "%s://lks:lkspw@127.0.0.1:1/x?connect%stimeout=2",
	         T_BACKEND == LKS_BACKEND_POSTGRESQL ? "postgresql" : "mysql",
	         T_BACKEND == LKS_BACKEND_POSTGRESQL ? "_" : "-");
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		if (cases[i].args[1] && cases[i].args[2] && !strcmp(cases[i].args[2], "--url") &&
		    !cases[i].args[3])
			cases[i].args[3] = unreachable;
		int st = run(cases[i].env ? f->url : NULL, cases[i].args, &p);
		const char *err = slurp(p.err);
		/* usage errors are one line; a server's message keeps its line
		 * breaks (#30: they printed as \x0a) */
		if (st != cases[i].status || (st == 64 && lines(err) != 1) || lines(err) < 1 ||
		    strstr(err, "\\x0a") || strstr(err, "lkspw") || strncmp(err, "lockstock: ", 11))
			fail_msg("case %zu (%s %s): status %d, stderr: %s", i, cases[i].args[0],
			         cases[i].args[1] ? cases[i].args[1] : "", st, err);
		assert_string_equal(slurp(p.out), "");
	}
	assert_int_equal(lks_lease_inspect(f->c, "x", &info), LKS_OK);
	assert_int_equal(info.fence, 0);
}

/* Help pages, install, and output that is safe for a terminal and JSON. */
static void help_install_and_output(void **state)
{
	fx *f = *state;
	const char *help[] = {"run", "--help", NULL}, *help2[] = {"help", "release", NULL};
	const char *install[] = {"install", NULL}, *print[] = {"install", "--print", NULL};
	const char *list[] = {"list", NULL}, *json[] = {"list", "--json", NULL};
	const char *inspect[] = {"inspect", "evil\x1b[2Jname", "--json", NULL};
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *l = NULL;
	proc p;
	assert_int_equal(run(NULL, help, &p), 0);
	assert_non_null(strstr(slurp(p.out), "EXIT STATUS"));
	assert_non_null(strstr(slurp(p.out), "--at-least"));
	assert_int_equal(run(NULL, help2, &p), 0);
	assert_non_null(strstr(slurp(p.out), "--force"));
	assert_int_equal(run(f->url, install, &p), 0);
	assert_int_equal(run(f->url, print, &p), 0);
	assert_non_null(strstr(slurp(p.out), "CREATE TABLE IF NOT EXISTS"));
	o.owner = "tab-free owner \xe2\x9c\x93";
	assert_int_equal(lks_lease_acquire(&l, f->c, "evil\x1b[2Jname\\", 10000, 0, &o), LKS_OK);
	assert_int_equal(run(f->url, list, &p), 0);
	assert_non_null(strstr(slurp(p.out), "evil\\x1b[2Jname\\\\\ttab-free owner \xe2\x9c\x93\t"));
	assert_null(strchr(slurp(p.out), '\x1b'));
	assert_int_equal(run(f->url, json, &p), 0);
	assert_non_null(strstr(slurp(p.out), "\"name\":\"evil\\u001b[2Jname\\\\\""));
	assert_null(strchr(slurp(p.out), '\x1b'));
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
	assert_int_equal(run(f->url, inspect, &p), 0);
	assert_non_null(strstr(slurp(p.out), "\"held\":false"));
	/* a holder column written by anyone who can write the table
	 * (hardening 3, item 15): escaped in inspect and release --force */
	const char *inspect_text[] = {"inspect", "rowjob", NULL};
	const char *force[] = {"release", "--force", "rowjob", NULL};
	assert_int_equal(lks_lease_acquire(&l, f->c, "rowjob", 10000, 0, NULL), LKS_OK);
	t_exec(f->c, T_BACKEND == LKS_BACKEND_POSTGRESQL
	                 ? "UPDATE lks_lease SET holder = chr(27) || '[2J' || chr(7) WHERE name = 'rowjob'"
	                 : "UPDATE lks_lease SET holder = CONCAT(CHAR(27), '[2J', CHAR(7)) WHERE name = 'rowjob'");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(run(f->url, i ? force : inspect_text, &p), 0);
		assert_non_null(strstr(slurp(p.out), "\\x1b[2J\\x07"));
		assert_null(strchr(slurp(p.out), '\x1b'));
		assert_null(strchr(slurp(p.out), '\x07'));
	}
	lks_lease_free(l);
}

/* Hardening 3, item 18: a command's own 79 (or 75) and lockstock's look
 * alike; --status-file says who decided. */
static void status_file_tells_who_exited(void **state)
{
	fx *f = *state;
	char path[64];
	const char *own[] = {"run", "sf", "--status-file", path, "--", "sh", "-c", "exit 79", NULL};
	const char *busy[] = {"run", "sf", "--status-file", path, "--", "true", NULL};
	const char *bad[] = {"run", "sf", "--status-file", "/nonexistent/dir/f", "--", "true", NULL};
	lks_lease *l = NULL;
	proc p;
	snprintf(path, sizeof path, "/tmp/lks-status-%d", (int)getpid());
	assert_int_equal(run(f->url, own, &p), 79);
	assert_string_equal(slurp(path), "command 79\n");
	assert_int_equal(lks_lease_acquire(&l, f->c, "sf", 60000, 0, NULL), LKS_OK);
	assert_int_equal(run(f->url, busy, &p), 75);
	assert_string_equal(slurp(path), "lockstock 75\n");
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	lks_lease_free(l);
	assert_int_equal(run(f->url, bad, &p), 64);
	assert_non_null(strstr(slurp(p.err), "--status-file"));
	unlink(path);
}

/* Hardening 3, item 3: with the database silent (paused: no renewal gets
 * through, no error comes back), a command that ignores SIGTERM is killed,
 * grandchildren too, before the lease expires on the server: after the
 * server resumes, the old grant is still the lease's, so no other replica
 * could have been granted it while the job ran. */
static void silent_database_stops_the_job_in_time(void **state)
{
	fx *f = *state;
	ticker t;
	lks_lease_info info = LKS_LEASE_INFO_INIT;
	pid_t tick;
	int64_t expiry_ms, died_ms;
	int st;
	ticker_init(&t, "silent");
	const char *args[] = {"run", "silentjob", "--ttl", "10s", "--", "sh", "-c", t.script, NULL};
	proc p = start(f->url, args);
	tick = ticker_pid(&t);
	/* when the grant expires on the server, on this clock (a renewal that
	 * lands before the pause only moves it later) */
	assert_int_equal(lks_lease_inspect(f->c, "silentjob", &info), LKS_OK);
	assert_true(info.held);
	expiry_ms = now_ms() + info.remaining_ms;
	t_ctl("pause");
	/* observed: the ticking grandchild dies (60 s means it never did) */
	for (int i = 0; i < 6000 && !process_gone(tick); i++)
		usleep(10000);
	died_ms = now_ms();
	bool gone = process_gone(tick);
	t_ctl("resume");
	st = finish(&p);
	assert_true(gone);
	assert_int_equal(st, 79);
	assert_non_null(strstr(slurp(p.err), "expires soon"));
	print_message("    the job was gone %lld ms before the grant expired on the server\n",
	              (long long)(expiry_ms - died_ms));
	assert_true(died_ms < expiry_ms); /* before another replica could be granted it */
	ticker_done(&t, tick);
}

/* #30 item 2: a missing table is a database error (70, as the help
 * promises), never bad usage, and the message names the install command. */
static void missing_table_exits_70(void **state)
{
	fx *f = *state;
	const char *args[] = {"run", "x", "--table", "no_such_lease", "--", "true", NULL};
	const char *list[] = {"list", "--table", "no_such_lease", NULL};
	proc p;
	assert_int_equal(run(f->url, args, &p), 70);
	assert_non_null(strstr(slurp(p.err), "lease table no_such_lease does not exist"));
	assert_non_null(strstr(slurp(p.err), "lockstock install"));
	assert_int_equal(lines(slurp(p.err)), 1);
	assert_int_equal(run(f->url, list, &p), 70);
	assert_non_null(strstr(slurp(p.err), "lockstock install"));
}

/* #30 item 1: two cron replicas with nothing but --once-per day: the one
 * that finds the job running waits for it, then exits 0 like the one that
 * ran it (cron mails no failure); the job ran once. When the running one
 * fails, the waiting one takes over and runs it. */
static void once_replicas_all_exit_zero(void **state)
{
	fx *f = *state;
	char file[256], go[256], script[1400];
	const char *install[] = {"install", NULL};
	proc p;
	tmpfile_name(file, sizeof file, "cron");
	tmpfile_name(go, sizeof go, "cron-go");
	assert_int_equal(run(f->url, install, &p), 0);
	for (int fail = 0; fail < 2; fail++) {
		char name[32];
		unlink(file);
		unlink(go);
		/* the first run writes a line, waits for the go, then exits 0 (or
		 * 3: failed); a later run just writes its line */
		snprintf(script, sizeof script,
		         "echo run >> %s; [ -e %s.first ] && exit 0; touch %s.first;"
		         " while [ ! -e %s ]; do sleep 0.05; done; exit %d",
		         file, file, file, go, fail ? 3 : 0);
		snprintf(name, sizeof name, "cron%d", fail);
		char first[300];
		snprintf(first, sizeof first, "%s.first", file);
		unlink(first);
		const char *args[] = {"run", name, "--once-per", "day", "--", "sh", "-c", script, NULL};
		proc a = start(f->url, args);
		wait_file(first);
		/* b starts while a's job runs, and is seen waiting: on PostgreSQL
		 * the head of the line's baton (a session lock; a holds none), on
		 * MariaDB its session beside ours and a's two */
		proc b = start(f->url, args);
		/* (through a pooler there is no line to see: the outcomes below
		 * hold either way, and the suites without one prove the overlap) */
		if (!T_POOLED)
			t_wait_for(f->c,
			           T_BACKEND == LKS_BACKEND_POSTGRESQL
			               ? "SELECT (count(*) > 0)::int FROM pg_locks WHERE locktype = 'advisory'"
			               : "SELECT COUNT(*) > 3 FROM information_schema.PROCESSLIST"
			                 " WHERE DB = DATABASE()",
			           1);
		int fd = open(go, O_WRONLY | O_CREAT, 0600);
		close(fd);
		int sa = finish(&a), sb = finish(&b);
		if (!fail) {
			assert_int_equal(sa, 0);
			assert_int_equal(sb, 0);
			assert_int_equal(lines(slurp(file)), 1);
			assert_non_null(strstr(slurp(b.err), "not running it again"));
		} else {
			assert_int_equal(sa, 3);
			assert_int_equal(sb, 0); /* took over, ran it */
			assert_int_equal(lines(slurp(file)), 2);
		}
		unlink(first);
	}
	unlink(file);
	unlink(go);
}

/* #18 item 4: run --once / --once-per. Two replicas with --once-per day
 * run the job once; one started while the other runs waits and does not
 * run it again; a non-zero exit or a killed command is not recorded; a
 * done key exits --done-exit. */
static void once_runs_the_job_once(void **state)
{
	fx *f = *state;
	char file[256], script[1200], kill_script[1200], fail_script[1200];
	const char *install[] = {"install", NULL};
	proc p;
	tmpfile_name(file, sizeof file, "once");
	snprintf(script, sizeof script, "echo $LOCKSTOCK_ONCE_KEY >> %s; sleep 0.3", file);
	assert_int_equal(run(f->url, install, &p), 0);
	assert_non_null(strstr(slurp(p.out), "lks_once"));
	/* two replicas at once, then a third later: one run in all */
	const char *daily[] = {"run", "report", "--wait", "30s", "--once-per", "day", "--",
	                       "sh", "-c", script, NULL};
	proc a = start(f->url, daily), b = start(f->url, daily);
	assert_int_equal(finish(&a), 0);
	assert_int_equal(finish(&b), 0);
	assert_int_equal(run(f->url, daily, &p), 0);
	assert_non_null(strstr(slurp(p.err), "not running it again"));
	assert_int_equal(lines(slurp(file)), 1);
	/* the key is the server's day, YYYY-MM-DD */
	int y, m, d;
	assert_int_equal(sscanf(slurp(file), "%4d-%2d-%2d\n", &y, &m, &d), 3);
	assert_true(y >= 2024 && m >= 1 && m <= 12 && d >= 1 && d <= 31);
	const char *done3[] = {"run", "report", "--once-per", "day", "--done-exit", "3", "--",
	                       "sh", "-c", script, NULL};
	assert_int_equal(run(f->url, done3, &p), 3);
	/* a failed command is not recorded: it runs again */
	unlink(file);
	snprintf(fail_script, sizeof fail_script, "echo x >> %s; exit 4", file);
	const char *fails[] = {"run", "fragile", "--once", "k1", "--", "sh", "-c", fail_script, NULL};
	assert_int_equal(run(f->url, fails, &p), 4);
	assert_int_equal(run(f->url, fails, &p), 4);
	assert_int_equal(lines(slurp(file)), 2);
	/* nor is a killed one */
	snprintf(kill_script, sizeof kill_script, "echo x >> %s; kill -9 $$", file);
	const char *killed[] = {"run", "fragile", "--once", "k1", "--", "sh", "-c", kill_script, NULL};
	assert_int_equal(run(f->url, killed, &p), 128 + 9);
	const char *works[] = {"run", "fragile", "--once", "k1", "--", "sh", "-c", script, NULL};
	assert_int_equal(run(f->url, works, &p), 0);
	assert_int_equal(run(f->url, works, &p), 0);
	assert_int_equal(lines(slurp(file)), 4); /* 2 failed, 1 killed, 1 that counted */
	/* the records: inspect, list, forget (then it runs again), purge */
	const char *inspect[] = {"once", "inspect", "fragile", "k1", NULL};
	const char *list[] = {"once", "list", "fragile", "--json", NULL};
	const char *forget[] = {"once", "forget", "fragile", "k1", NULL};
	const char *purge[] = {"once", "purge", "--older-than", "0", NULL};
	assert_int_equal(run(f->url, inspect, &p), 0);
	assert_non_null(strstr(slurp(p.out), "fragile\tk1\t0\t"));
	assert_int_equal(run(f->url, list, &p), 0);
	assert_non_null(strstr(slurp(p.out), "\"scope\":\"fragile\",\"key\":\"k1\""));
	/* #30: the text listing names its columns */
	const char *list_text[] = {"once", "list", "fragile", NULL};
	assert_int_equal(run(f->url, list_text, &p), 0);
	const char *header = "SCOPE\tKEY\tCODE\tFENCE\tCOMPLETED\tRESULT\n";
	assert_int_equal(strncmp(slurp(p.out), header, strlen(header)), 0);
	assert_non_null(strstr(slurp(p.out), "\nfragile\tk1\t0\t"));
	assert_int_equal(run(f->url, forget, &p), 0);
	assert_int_equal(run(f->url, forget, &p), 1); /* no such record now */
	assert_int_equal(run(f->url, inspect, &p), 1);
	assert_int_equal(run(f->url, works, &p), 0);
	assert_int_equal(lines(slurp(file)), 5); /* forgotten: it ran again */
	assert_int_equal(run(f->url, purge, &p), 0);
	assert_non_null(strstr(slurp(p.out), "purged"));
	assert_int_equal(run(f->url, inspect, &p), 1);
	/* and the claims' lease rows: purge deletes them, keeps a held one */
	const char *lpurge[] = {"purge", "--older-than", "0", "--batch", "1", NULL};
	const char *lkeep[] = {"purge", "--older-than", "1h", NULL};
	const char *lbad[] = {"purge", "--batch", "0", "--older-than", "0", NULL};
	const char *lnone[] = {"purge", NULL};
	assert_int_equal(run(f->url, lkeep, &p), 0);
	assert_non_null(strstr(slurp(p.out), "purged 0 lease rows"));
	assert_int_equal(run(f->url, lpurge, &p), 0);
	assert_non_null(strstr(slurp(p.out), "purged "));
	assert_null(strstr(slurp(p.out), "purged 0 "));
	assert_int_equal(run(f->url, lpurge, &p), 0);
	assert_non_null(strstr(slurp(p.out), "purged 0 lease rows"));
	assert_int_equal(run(f->url, lbad, &p), 64);
	assert_int_equal(run(f->url, lnone, &p), 64);
	/* bad usage */
	const char *both[] = {"run", "x", "--once", "k", "--once-per", "day", "--", "true", NULL};
	const char *badp[] = {"run", "x", "--once-per", "fortnight", "--", "true", NULL};
	const char *empty[] = {"run", "x", "--once", "", "--", "true", NULL};
	assert_int_equal(run(f->url, both, &p), 64);
	assert_int_equal(run(f->url, badp, &p), 64);
	assert_int_equal(run(f->url, empty, &p), 64);
	unlink(file);
}

/* Random well-formed UTF-8 of n code points: controls, quotes,
 * backslashes, and 2, 3 and 4-byte characters. */
static void random_utf8(uint64_t *rng, char *out, int n)
{
	static const uint32_t ranges[][2] = {{0x01, 0x7f}, {0x80, 0x7ff}, {0x800, 0xd7ff},
	                                     {0xe000, 0xffff}, {0x10000, 0x10ffff}, {0x22, 0x22},
	                                     {0x5c, 0x5c}};
	char *o = out;
	for (int i = 0; i < n; i++) {
		*rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
		const uint32_t *r = ranges[*rng % 7];
		uint32_t cp = r[0] + (uint32_t)((*rng >> 8) % (r[1] - r[0] + 1));
		if (cp < 0x80) {
			*o++ = (char)cp;
		} else if (cp < 0x800) {
			*o++ = (char)(0xc0 | cp >> 6), *o++ = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			*o++ = (char)(0xe0 | cp >> 12), *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else {
			*o++ = (char)(0xf0 | cp >> 18), *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
			*o++ = (char)(0x80 | (cp >> 6 & 0x3f)), *o++ = (char)(0x80 | (cp & 0x3f));
		}
	}
	*o = '\0';
}

static void hex_of(const char *s, char *out)
{
	for (; *s; s++, out += 2)
		sprintf(out, "%02x", (unsigned char)*s);
	*out = '\0';
}

/* Hardening 3, item 16 and 18: list --json and inspect --json are valid
 * UTF-8 whatever the names hold, and name_hex gives every name back
 * exactly; a name that is not UTF-8 is refused (exit 64) on both
 * databases, and a row written outside lockstock with such bytes still
 * prints as valid JSON with its exact bytes in name_hex. */
static void json_names_round_trip(void **state)
{
	fx *f = *state;
	const char *json[] = {"list", "--json", NULL};
	char names[40][4 * 12 + 1], hex[2 * 48 + 16], needle[2 * 48 + 32];
	lks_lease *held[40];
	uint64_t rng = 0x2545f4914f6cdd1dULL;
	static char out[1 << 16];
	FILE *fp;
	size_t n;
	proc p;
	for (int i = 0; i < 40; i++) {
		random_utf8(&rng, names[i] + 2, 1 + i % 11);
		names[i][0] = (char)('A' + i / 26), names[i][1] = (char)('a' + i % 26); /* distinct */
		if (lks_lease_acquire(&held[i], f->c, names[i], 60000, 0, NULL) != LKS_OK)
			fail_msg("acquire %d: %s", i, lks_conn_errmsg(f->c));
	}
	assert_int_equal(run(f->url, json, &p), 0);
	fp = fopen(p.out, "r");
	assert_non_null(fp);
	n = fread(out, 1, sizeof out - 1, fp);
	fclose(fp);
	out[n] = '\0';
	assert_true(n > 0 && n < sizeof out - 1);
	for (const unsigned char *q = (const unsigned char *)out; *q;) {
		uint32_t cp = 0;
		int len = lks_utf8_char(q, &cp);
		if (!len)
			fail_msg("list --json is not valid UTF-8 at byte %zu", (size_t)((const char *)q - out));
		if (cp < 0x20 && cp != '\n')
			fail_msg("raw control character %u in JSON", (unsigned)cp);
		q += len;
	}
	for (int i = 0; i < 40; i++) {
		hex_of(names[i], hex);
		snprintf(needle, sizeof needle, "\"name_hex\":\"%s\"", hex);
		if (!strstr(out, needle))
			fail_msg("name %d (%s) not in list --json", i, hex);
		assert_int_equal(lks_lease_release(f->c, held[i]), LKS_OK);
		lks_lease_free(held[i]);
	}
	/* not UTF-8: refused by the library and by every subcommand */
	const char *bad[][5] = {{"inspect", "bad\xff", NULL},
	                        {"release", "--force", "bad\xc0\xaf", NULL},
	                        {"run", "--ttl", "5s", "bad\xed\xa0\x80", NULL}};
	lks_lease *l = NULL;
	assert_int_equal(lks_lease_acquire(&l, f->c, "bad\xff", 1000, 0, NULL), LKS_EINVAL);
	assert_non_null(strstr(lks_conn_errmsg(f->c), "UTF-8"));
	assert_null(l);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *args[8] = {NULL};
		int k = 0;
		for (; bad[i][k]; k++)
			args[k] = bad[i][k];
		if (i == 2)
			args[k++] = "--", args[k++] = "true";
		assert_int_equal(run(f->url, args, &p), 64);
		assert_non_null(strstr(slurp(p.err), "UTF-8"));
	}
	if (T_BACKEND == LKS_BACKEND_MYSQL) {
		/* VARBINARY takes any bytes from SQL outside lockstock */
		t_exec(f->c, "INSERT INTO lks_lease (name, holder, fence, expires_at) VALUES "
		             "(X'ff2261', 'h', 7, UTC_TIMESTAMP(6) + INTERVAL 60 SECOND)");
		assert_int_equal(run(f->url, json, &p), 0);
		assert_non_null(strstr(slurp(p.out), "\"name\":\"\\ufffd\\\"a\",\"name_hex\":\"ff2261\""));
	}
}

/* --permits 2: two runs side by side (each command marks its slot, then
 * waits for the test's go), a third is busy while both hold; once they end
 * it runs. */
static void permits_run_side_by_side(void **state)
{
	fx *f = *state;
	char go[256], mark[256], script[1200], path[300];
	tmpfile_name(go, sizeof go, "go");
	tmpfile_name(mark, sizeof mark, "slot");
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof path, "%s%d", mark, k);
		unlink(path);
	}
	snprintf(script, sizeof script,
	         "touch %s$LOCKSTOCK_SLOT; while [ ! -e %s ]; do sleep 0.02; done", mark, go);
	const char *args[] = {"run", "--permits", "2", "pool", "--", "sh", "-c", script, NULL};
	const char *third[] = {"run", "--permits", "2", "pool", "--", "true", NULL};
	proc a = start(f->url, args), b = start(f->url, args), c;
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof path, "%s%d", mark, k);
		wait_file(path); /* both slots are held, by the two commands */
	}
	assert_int_equal(run(f->url, third, &c), 75);
	assert_non_null(strstr(slurp(c.err), "all 2 permits are held"));
	assert_int_equal(close(open(go, O_WRONLY | O_CREAT, 0600)), 0);
	assert_int_equal(finish(&a), 0);
	assert_int_equal(finish(&b), 0);
	assert_int_equal(run(f->url, third, NULL), 0);
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof path, "%s%d", mark, k);
		unlink(path);
	}
	unlink(go);
}

/* Several names: held all together while the command runs (each in the
 * environment, in the order given); any one of them is busy for others. */
static void several_names_guard_one_command(void **state)
{
	fx *f = *state;
	char go[256], started[256], envfile[256], script[1200];
	tmpfile_name(go, sizeof go, "go3");
	tmpfile_name(started, sizeof started, "started3");
	tmpfile_name(envfile, sizeof envfile, "env3");
	snprintf(script, sizeof script,
	         "env | grep '^LOCKSTOCK_LEASE' | sort > %s; touch %s; while [ ! -e %s ]; do sleep 0.02; done",
	         envfile, started, go);
	const char *args[] = {"run", "b", "a", "c", "--", "sh", "-c", script, NULL};
	const char *one[] = {"run", "c", "--", "true", NULL};
	const char *bad[] = {"run", "--permits", "2", "a", "b", "--", "true", NULL};
	proc p = start(f->url, args);
	wait_file(started);
	assert_string_equal(slurp(envfile), "LOCKSTOCK_LEASE=b\nLOCKSTOCK_LEASE_1=b\nLOCKSTOCK_LEASE_2=a\n"
	                                    "LOCKSTOCK_LEASE_3=c\nLOCKSTOCK_LEASE_COUNT=3\n");
	assert_int_equal(run(f->url, one, NULL), 75);
	assert_int_equal(close(open(go, O_WRONLY | O_CREAT, 0600)), 0);
	assert_int_equal(finish(&p), 0);
	assert_int_equal(run(f->url, one, NULL), 0); /* all released */
	assert_int_equal(run(f->url, bad, NULL), 64);
	unlink(go);
	unlink(started);
	unlink(envfile);
}

/* elect: two replicas, one leads at a time (its value and term shown by
 * leader, text and JSON); the second takes office when the first's command
 * ends, with a greater term; leader --watch prints each change. */
static void elect_one_leader_at_a_time(void **state)
{
	fx *f = *state;
	char go[256], started[256], script[1200], terms[256];
	long long t1 = 0, t2 = 0;
	tmpfile_name(go, sizeof go, "ego");
	tmpfile_name(started, sizeof started, "estarted");
	tmpfile_name(terms, sizeof terms, "eterms");
	snprintf(script, sizeof script,
	         "echo $LOCKSTOCK_FENCE >> %s; touch %s; while [ ! -e %s ]; do sleep 0.02; done",
	         terms, started, go);
	const char *a_args[] = {"elect", "office", "--value", "replica-a:8080", "--owner", "a", "--", "sh",
	                        "-c", script, NULL};
	const char *b_args[] = {"elect", "office", "--value", "replica-b:8080", "--owner", "b", "--", "sh",
	                        "-c", "echo $LOCKSTOCK_FENCE", NULL};
	const char *leader[] = {"leader", "office", NULL}, *json[] = {"leader", "office", "--json", NULL};
	const char *inspect[] = {"inspect", "office", "--json", NULL};
	const char *bad[] = {"elect", "x", "y", "--", "true", NULL};
	proc a = start(f->url, a_args), b, p;
	wait_file(started);
	b = start(f->url, b_args); /* campaigns: waits while a leads */
	assert_int_equal(run(f->url, leader, &p), 0);
	assert_non_null(strstr(slurp(p.out), "leader of office: a, term "));
	assert_non_null(strstr(slurp(p.out), "value replica-a:8080"));
	assert_int_equal(run(f->url, json, &p), 0);
	assert_non_null(strstr(slurp(p.out), "\"held\":true"));
	assert_non_null(strstr(slurp(p.out), "\"value\":\"replica-a:8080\""));
	assert_int_equal(run(f->url, inspect, &p), 0);
	assert_non_null(strstr(slurp(p.out), "\"payload\":\"replica-a:8080\""));
	assert_int_equal(close(open(go, O_WRONLY | O_CREAT, 0600)), 0);
	assert_int_equal(finish(&a), 0);
	assert_int_equal(finish(&b), 0);
	assert_int_equal(sscanf(slurp(terms), "%lld", &t1), 1);
	assert_int_equal(sscanf(slurp(b.out), "%lld", &t2), 1);
	assert_true(t2 > t1);
	assert_int_equal(run(f->url, leader, &p), 0);
	assert_non_null(strstr(slurp(p.out), "no leader of office"));
	assert_int_equal(run(f->url, bad, NULL), 64);
	unlink(go);
	unlink(started);
	unlink(terms);
}

/* A payload with terminal escapes and JSON's special characters: escaped
 * in list and inspect, text and JSON; a binary one shown by its size and
 * hex. */
static void payload_output_is_escaped(void **state)
{
	fx *f = *state;
	static const char hostile[] = "a\x1b[2J\"\\\nb";
	static const unsigned char binary[] = {0, 1, 2, 0xff};
	lks_lease_acquire_options o = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease *l = NULL, *b = NULL;
	const char *list[] = {"list", NULL}, *ljson[] = {"list", "--json", NULL};
	const char *inspect[] = {"inspect", "hostile", NULL}, *ijson[] = {"inspect", "hostile", "--json", NULL};
	const char *bin[] = {"inspect", "binary", "--json", NULL};
	proc p;
	o.payload = hostile;
	o.payload_len = sizeof hostile - 1;
	assert_int_equal(lks_lease_acquire(&l, f->c, "hostile", 30000, 0, &o), LKS_OK);
	o.payload = binary;
	o.payload_len = sizeof binary;
	assert_int_equal(lks_lease_acquire(&b, f->c, "binary", 30000, 0, &o), LKS_OK);
	const char *const *cases[] = {list, ljson, inspect, ijson};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(run(f->url, cases[i], &p), 0);
		assert_null(strchr(slurp(p.out), '\x1b'));
	}
	assert_int_equal(run(f->url, ijson, &p), 0);
	assert_non_null(strstr(slurp(p.out), "\"payload\":\"a\\u001b[2J\\\"\\\\\\u000ab\""));
	assert_int_equal(run(f->url, bin, &p), 0);
	assert_non_null(strstr(slurp(p.out), "\"payload\":null,\"payload_hex\":\"000102ff\""));
	assert_int_equal(lks_lease_release(f->c, l), LKS_OK);
	assert_int_equal(lks_lease_release(f->c, b), LKS_OK);
	lks_lease_free(l);
	lks_lease_free(b);
}

/* check: a verdict with its figures (text, JSON), and a violation seen:
 * the guarded counter changed behind the workload's back. */
/* The name of a running check's counter table, or "" (read from the
 * catalog as two integers: the tests have no text query). */
static void check_counter_table(lks_conn *c, char *out, size_t n)
{
	int64_t half[2] = {-1, -1};
	out[0] = '\0';
	for (int h = 0; h < 2; h++) {
		char sql[320];
		snprintf(sql, sizeof sql, T_BACKEND == LKS_BACKEND_POSTGRESQL
		         ? "SELECT ('x' || substr(relname, %d, 8))::bit(32)::bigint FROM pg_class"
		           " WHERE relname ~ '^lks_check_[0-9a-f]{16}_counter$' LIMIT 1"
		         : "SELECT CAST(CONV(SUBSTRING(TABLE_NAME, %d, 8), 16, 10) AS SIGNED)"
		           " FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
		           " AND TABLE_NAME REGEXP '^lks_check_[0-9a-f]{16}_counter$' LIMIT 1",
		         11 + 8 * h);
		if (t_int(c, &half[h], sql, NULL, 0) != LKS_OK || half[h] < 0)
			return;
	}
	snprintf(out, n, "lks_check_%08llx%08llx_counter", (unsigned long long)half[0],
	         (unsigned long long)half[1]);
}

static void check_reports_the_verdict(void **state)
{
	fx *f = *state;
	const char *text[] = {"check", "--duration", "1s", "--workers", "4", NULL};
	const char *json[] = {"check", "--duration", "1s", "--workers", "4", "--json", NULL};
	const char *long_run[] = {"check", "--duration", "4s", "--workers", "4", NULL};
	char table[128] = "", sql[256];
	int64_t n = 0;
	proc p, q, r;
	assert_int_equal(run(f->url, text, &p), 0);
	assert_non_null(strstr(slurp(p.out), "ok: "));
	assert_non_null(strstr(slurp(p.out), "acknowledged writes missing: 0"));
	assert_int_equal(run(f->url, json, &p), 0);
	assert_non_null(strstr(slurp(p.out), "{\"verdict\":\"ok\""));
	assert_non_null(strstr(slurp(p.out), "\"fences_granted_twice\":0"));
	/* the tables are gone after a clean run */
	check_counter_table(f->c, table, sizeof table);
	assert_string_equal(table, "");
	/* #29 item 5: two checks at once on a healthy server: both ok (they
	 * dropped and re-created each other's tables and reported violations) */
	q = start(f->url, long_run);
	r = start(f->url, long_run);
	assert_int_equal(finish(&q), 0);
	assert_int_equal(finish(&r), 0);
	assert_non_null(strstr(slurp(q.out), "ok: "));
	assert_non_null(strstr(slurp(r.out), "ok: "));
	/* someone else writes the counter while it runs: a violation, exit 1 */
	q = start(f->url, long_run);
	for (int i = 0; i < 1000; i++) {
		check_counter_table(f->c, table, sizeof table);
		snprintf(sql, sizeof sql, "SELECT n FROM %s", table);
		if (table[0] && t_int(f->c, &n, sql, NULL, 0) == LKS_OK && n > 0)
			break;
		usleep(10000);
	}
	assert_true(n > 0);
	snprintf(sql, sizeof sql, "UPDATE %s SET n = n + 1000", table);
	t_exec(f->c, sql);
	assert_int_equal(finish(&q), 1);
	assert_non_null(strstr(slurp(q.out), "VIOLATED"));
	/* the evidence is kept, and a later check leaves it alone */
	assert_int_equal(run(f->url, text, &p), 0);
	snprintf(sql, sizeof sql, "SELECT n FROM %s", table);
	assert_int_equal(t_int(f->c, &n, sql, NULL, 0), LKS_OK);
	assert_true(n >= 1000);
	size_t base = strlen(table) - strlen("_counter");
	for (const char *suffix = "_log"; suffix; suffix = !strcmp(suffix, "_log") ? "_counter"
	                                                  : !strcmp(suffix, "_counter") ? "_lease" : NULL) {
		snprintf(sql, sizeof sql, "DROP TABLE %.*s%s", (int)base, table, suffix);
		t_exec(f->c, sql);
	}
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(int argc, char **argv)
{
	tap_stdout();
	const struct CMUnitTest tests[] = {
		T(one_of_two_runs),
		T(wait_runs_in_turn),
		T(sigkilled_run_is_taken_over),
		T(force_release_stops_the_command),
		T(at_least_holds_after_the_command),
		T(signals_reach_the_command),
		T(bad_usage),
		T(help_install_and_output),
		T(sigkilled_run_takes_its_job_with_it),
		T(lost_lease_stops_grandchildren),
		T(run_environment_and_timing),
		T(url_hidden_in_every_mode),
		T(ignored_signals_stay_ignored),
		T(json_names_round_trip),
		T(status_file_tells_who_exited),
		T(once_runs_the_job_once),
		T(once_replicas_all_exit_zero),
		T(missing_table_exits_70),
		T(silent_database_stops_the_job_in_time),
		T(permits_run_side_by_side),
		T(several_names_guard_one_command),
		T(elect_one_leader_at_a_time),
		T(check_reports_the_verdict),
		T(payload_output_is_escaped),
	};
	char name[64];
	if (argc != 3 || support_init(argv[1])) {
		fprintf(stderr, "usage: cli_test postgresql|mysql PATH-TO-LOCKSTOCK\n");
		return 1;
	}
	cli = argv[2];
	if (getenv("LKS_CLI_WRAP")) {
		static char w[1024];
		char *save = NULL;
		int n = 0;
		snprintf(w, sizeof w, "%s", getenv("LKS_CLI_WRAP"));
		for (char *t = strtok_r(w, " ", &save); t && n < 15; t = strtok_r(NULL, " ", &save))
			wrap[n++] = t;
	}
	snprintf(name, sizeof name, "cli-%s", argv[1]);
	if (getenv("LKS_TEST_FILTER")) /* for development: one test by name */
		cmocka_set_test_filter(getenv("LKS_TEST_FILTER"));
	return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}

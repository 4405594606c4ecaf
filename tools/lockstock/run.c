/* lockstock run NAME... [options] -- COMMAND [ARGS...]: run a command while
 * holding a lease (several names, all at once; or a semaphore's permit with
 * --permits), renewed in the background, released when it ends. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

extern char **environ;

enum { OPT_URL = 256, OPT_TABLE, OPT_TTL, OPT_WAIT, OPT_OWNER, OPT_AT_LEAST, OPT_KILL_AFTER,
       OPT_BUSY_EXIT, OPT_HELP, OPT_PASS_URL, OPT_STATUS_FILE, OPT_ONCE, OPT_ONCE_PER,
       OPT_DONE_EXIT, OPT_PERMITS, OPT_VALUE };

typedef struct run_opts {
	cli_common co;
	const char *name;            /* the first name: once scope, messages */
	const char *names[LKS_LEASE_SET_MAX];
	size_t nnames;
	int permits;                 /* --permits N: a semaphore's permit */
	const char *value;           /* --value: the lease's payload (elect: the leader's value) */
	char **cmd;
	int64_t ttl_ms, wait_ms, at_least_ms, kill_after_ms;
	int busy_exit, kill_after_set, pass_url, wait_set;
	const char *status_file;
	const char *once, *once_per; /* --once KEY, --once-per PERIOD */
	int done_exit;
	char once_key[LKS_ONCE_KEY_MAX + 1]; /* "" without --once / --once-per */
	char owner[LKS_LEASE_OWNER_MAX + 1];
} run_opts;

/* lockstock elect: run, campaigning (waiting) for NAME until elected */
static bool electing;

/* Signals the main thread waits for; blocked in every thread. SIGUSR1 is
 * the renew thread telling it the lease was lost. */
static sigset_t waited;
static pthread_t main_thread;

static int parse_run(int argc, char **argv, run_opts *o)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, OPT_URL},
		{"table", required_argument, NULL, OPT_TABLE},
		{"ttl", required_argument, NULL, OPT_TTL},
		{"wait", required_argument, NULL, OPT_WAIT},
		{"owner", required_argument, NULL, OPT_OWNER},
		{"at-least", required_argument, NULL, OPT_AT_LEAST},
		{"kill-after", required_argument, NULL, OPT_KILL_AFTER},
		{"busy-exit", required_argument, NULL, OPT_BUSY_EXIT},
		{"help", no_argument, NULL, OPT_HELP},
		{"pass-url", no_argument, NULL, OPT_PASS_URL},
		{"status-file", required_argument, NULL, OPT_STATUS_FILE},
		{"once", required_argument, NULL, OPT_ONCE},
		{"once-per", required_argument, NULL, OPT_ONCE_PER},
		{"done-exit", required_argument, NULL, OPT_DONE_EXIT},
		{"permits", required_argument, NULL, OPT_PERMITS},
		{"value", required_argument, NULL, OPT_VALUE},
		{NULL, 0, NULL, 0},
	};
	char err[256], host[200] = "";
	int dashdash = -1, opt;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			dashdash = i;
			break;
		}
	for (int i = 1; i < (dashdash < 0 ? argc : dashdash); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			cli_help(stdout, "run");
			return 0;
		}
	if (dashdash < 0) {
		cli_error("run: missing -- before the command (lockstock run NAME [options] -- COMMAND [ARGS...])");
		return EXIT_USAGE;
	}
	if (dashdash + 1 >= argc) {
		cli_error("run: no command after --");
		return EXIT_USAGE;
	}
	o->cmd = argv + dashdash + 1;
	o->ttl_ms = 30000;
	/* elect: campaign until elected, however long it takes */
	o->wait_ms = electing ? LKS_LEASE_TTL_MAX_MS : 0;
	o->kill_after_ms = 10000;
	o->busy_exit = EXIT_BUSY;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(dashdash, argv, ":", opts, NULL)) != -1) {
		int64_t *dur = NULL, max = LKS_LEASE_TTL_MAX_MS;
		switch (opt) {
		case OPT_URL: o->co.url = optarg; break;
		case OPT_PASS_URL: o->pass_url = 1; break;
		case OPT_STATUS_FILE: o->status_file = optarg; break;
		case OPT_ONCE: o->once = optarg; break;
		case OPT_ONCE_PER:
			if (cli_once_check_period(optarg, err, sizeof err)) {
				cli_error("run: --once-per: %s (hour, day, week, month or a duration)", err);
				return EXIT_USAGE;
			}
			o->once_per = optarg;
			break;
		case OPT_TABLE: o->co.table = optarg; break;
		case OPT_TTL: dur = &o->ttl_ms; break;
		case OPT_WAIT:
			dur = &o->wait_ms;
			o->wait_set = 1;
			break;
		case OPT_AT_LEAST: dur = &o->at_least_ms; break;
		case OPT_KILL_AFTER:
			dur = &o->kill_after_ms;
			max = 86400000;
			o->kill_after_set = 1;
			break;
		case OPT_OWNER:
			if (strlen(optarg) > LKS_LEASE_OWNER_MAX || !*optarg) {
				cli_error("run: --owner must be 1..%d bytes", LKS_LEASE_OWNER_MAX);
				return EXIT_USAGE;
			}
			snprintf(o->owner, sizeof o->owner, "%s", optarg);
			break;
		case OPT_VALUE:
			if (strlen(optarg) > LKS_LEASE_PAYLOAD_MAX) {
				cli_error("run: --value must be at most %d bytes", LKS_LEASE_PAYLOAD_MAX);
				return EXIT_USAGE;
			}
			o->value = optarg;
			break;
		case OPT_PERMITS: {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < 1 || v > LKS_SEMAPHORE_PERMITS_MAX) {
				cli_error("run: --permits must be 1..%d, got '%s'", LKS_SEMAPHORE_PERMITS_MAX,
				          optarg);
				return EXIT_USAGE;
			}
			o->permits = (int)v;
			break;
		}
		case OPT_BUSY_EXIT:
		case OPT_DONE_EXIT: {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < 0 || v > 255) {
				cli_error("run: --%s must be 0..255, got '%s'", opts[opt - OPT_URL].name, optarg);
				return EXIT_USAGE;
			}
			*(opt == OPT_BUSY_EXIT ? &o->busy_exit : &o->done_exit) = (int)v;
			break;
		}
		case ':':
			cli_error("run: option %s needs a value (see lockstock run --help)", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			cli_error("run: unknown option %s (see lockstock run --help)", argv[optind - 1]);
			return EXIT_USAGE;
		}
		if (dur && cli_parse_duration(optarg, max, dur, err, sizeof err)) {
			cli_error("run: --%s: %s", opts[opt - OPT_URL].name, err); /* --ttl=5x too */
			return EXIT_USAGE;
		}
	}
	if (dashdash - optind < 1 || dashdash - optind > LKS_LEASE_SET_MAX) {
		cli_error("run: expected 1..%d lease NAMEs before --, got %d", LKS_LEASE_SET_MAX,
		          dashdash - optind);
		return EXIT_USAGE;
	}
	o->nnames = (size_t)(dashdash - optind);
	for (size_t i = 0; i < o->nnames; i++)
		o->names[i] = argv[optind + (int)i];
	o->name = o->names[0];
	if (o->nnames > 1 && (o->permits || o->once || o->once_per || o->value || electing)) {
		cli_error("%s: --permits, --value, --once and --once-per take one NAME", electing ? "elect" : "run");
		return EXIT_USAGE;
	}
	if (electing && (o->permits || o->once || o->once_per)) {
		cli_error("elect: --permits, --once and --once-per are run's");
		return EXIT_USAGE;
	}
	if (o->once && o->once_per) {
		cli_error("run: give --once KEY or --once-per PERIOD, not both");
		return EXIT_USAGE;
	}
	/* each permit is a lease of its own: N holders would each find the key
	 * not done and run the command N times at once */
	if (o->permits && (o->once || o->once_per)) {
		cli_error("run: --once and --once-per take a plain lease, not --permits: every permit"
		          " holder would run the job");
		return EXIT_USAGE;
	}
	/* --once / --once-per: a replica that finds the job running elsewhere
	 * waits for it by default, then finds it done (exit 0, as the replica
	 * that ran it) or, if that run failed, runs it itself: cron mails no
	 * failure for a job that ran */
	if ((o->once || o->once_per) && !o->wait_set)
		o->wait_ms = LKS_LEASE_TTL_MAX_MS;
	if (o->ttl_ms < 3) {
		cli_error("run: --ttl must be at least 3ms: the lease is renewed every third of it");
		return EXIT_USAGE;
	}
	if (!o->owner[0]) {
		gethostname(host, sizeof host - 1);
		snprintf(o->owner, sizeof o->owner, "%s:%ld", host[0] ? host : "localhost", (long)getpid());
	}
	return -1;
}

/* The renew thread found the lease lost: wake the main thread. */
static void on_lost(const lks_lease *l, int status, void *arg)
{
	(void)l;
	(void)status;
	(void)arg;
	pthread_kill(main_thread, SIGUSR1);
}

/* Variables this run sets for the command (inherited ones are dropped). */
static bool ours(const char *var, bool pass_url)
{
	static const char *const prefixes[] = {"LOCKSTOCK_LEASE", "LOCKSTOCK_FENCE", "LOCKSTOCK_HOLDER",
	                                       "LOCKSTOCK_SLOT=", "LOCKSTOCK_TABLE=",
	                                       "LOCKSTOCK_ONCE_KEY="};
	for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
		if (!strncmp(var, prefixes[i], strlen(prefixes[i])))
			return true;
	return !pass_url && !strncmp(var, "LOCKSTOCK_URL=", 14);
}

static bool add_var(char **env, size_t *k, char **bufs, size_t *nb, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static bool add_var(char **env, size_t *k, char **bufs, size_t *nb, const char *fmt, ...)
{
	va_list ap;
	char *v;
	int n;
	va_start(ap, fmt);
	n = vasprintf(&v, fmt, ap);
	va_end(ap);
	if (n < 0)
		return false;
	bufs[(*nb)++] = env[(*k)++] = v;
	return true;
}

/* The command's environment: ours plus the grant (built before fork: the
 * child may only call async-signal-safe functions before exec). The first
 * lease is LOCKSTOCK_LEASE / _FENCE / _HOLDER; with several names each is
 * also LOCKSTOCK_LEASE_<i> / _FENCE_<i> / _HOLDER_<i>, i = 1.. in the order
 * given, and LOCKSTOCK_LEASE_COUNT. bufs gets what to free. */
static char **child_env(lks_lease *const *ls, size_t nl, const run_opts *o, char **bufs,
                        size_t *nb)
{
	size_t n = 0, k = 0;
	bool ok = true;
	char **env;
	while (environ[n])
		n++;
	if (!(env = calloc(n + 8 + 3 * nl, sizeof *env)))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!ours(environ[i], o->pass_url))
			env[k++] = environ[i];
	if (o->once_key[0])
		ok = add_var(env, &k, bufs, nb, "LOCKSTOCK_ONCE_KEY=%s", o->once_key);
	if (ok && o->co.table)
		ok = add_var(env, &k, bufs, nb, "LOCKSTOCK_TABLE=%s", o->co.table);
	if (ok && lks_lease_slot(ls[0]) >= 0)
		ok = add_var(env, &k, bufs, nb, "LOCKSTOCK_SLOT=%d", lks_lease_slot(ls[0]));
	ok = ok && add_var(env, &k, bufs, nb, "LOCKSTOCK_LEASE=%s", lks_lease_name(ls[0])) &&
	     add_var(env, &k, bufs, nb, "LOCKSTOCK_FENCE=%lld", (long long)lks_lease_fence(ls[0])) &&
	     add_var(env, &k, bufs, nb, "LOCKSTOCK_HOLDER=%s", lks_lease_holder(ls[0]));
	if (ok && nl > 1)
		ok = add_var(env, &k, bufs, nb, "LOCKSTOCK_LEASE_COUNT=%zu", nl);
	for (size_t i = 0; ok && nl > 1 && i < nl; i++)
		ok = add_var(env, &k, bufs, nb, "LOCKSTOCK_LEASE_%zu=%s", i + 1, lks_lease_name(ls[i])) &&
		     add_var(env, &k, bufs, nb, "LOCKSTOCK_FENCE_%zu=%lld", i + 1,
		             (long long)lks_lease_fence(ls[i])) &&
		     add_var(env, &k, bufs, nb, "LOCKSTOCK_HOLDER_%zu=%s", i + 1, lks_lease_holder(ls[i]));
	env[k] = NULL;
	if (!ok) {
		free(env);
		return NULL;
	}
	return env;
}

/* File descriptors open when lockstock started are the command's to
 * inherit; the ones opened since (database connections) are not. */
static int inherited[64], n_inherited;

static void note_inherited_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d)) && n_inherited < (int)(sizeof inherited / sizeof *inherited)) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd > 2 && fd != dirfd(d))
			inherited[n_inherited++] = fd;
	}
	closedir(d);
}

/* Signals ignored when lockstock started (nohup, a shell's &): the
 * command keeps them ignored, as it would have without lockstock. */
static sigset_t ignored_at_start;

static void note_ignored_signals(void)
{
	sigemptyset(&ignored_at_start);
	for (int s = 1; s < NSIG; s++) {
		struct sigaction sa;
		if (s != SIGKILL && s != SIGSTOP && sigaction(s, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
			sigaddset(&ignored_at_start, s);
	}
}

static void exec_command(char **cmd, char **env)
{
	sigset_t none;
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP && !sigismember(&ignored_at_start, s))
			signal(s, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) /* kernel < 5.11 */
		for (int fd = 3; fd < 4096; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	for (int i = 0; i < n_inherited; i++)
		fcntl(inherited[i], F_SETFD, 0);
	execvpe(cmd[0], cmd, env);
	_exit(errno == ENOENT ? EXIT_NOT_FOUND_CMD : EXIT_CANNOT_EXEC);
}

/*
 * The command runs under a keeper: a forked lockstock that leads a process
 * group of its own (the command and everything it starts) and lives only
 * as long as lockstock. When lockstock dies, even by SIGKILL (OOM killer,
 * systemd's final kill), the kernel tells the keeper (PR_SET_PDEATHSIG)
 * and the keeper SIGKILLs the whole group, so no part of the job runs on
 * unguarded into the next holder's lease. The keeper blocks every signal
 * (lockstock signals the group; only the command acts on them), waits for
 * the command and exits with its status (128+N for signal N). Async-signal-
 * safe calls only: lockstock has threads.
 */
static pid_t start_child(char **cmd, char **env)
{
	pid_t parent = getpid(), pid = fork(), job;
	sigset_t all, keep;
	if (pid != 0) {
		if (pid > 0)
			setpgid(pid, pid); /* both sides: no window where it is not */
		return pid;
	}
	setpgid(0, 0);
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR2) != 0 || getppid() != parent)
		_exit(EXIT_CANNOT_EXEC); /* lockstock already gone: run nothing */
	if ((job = fork()) < 0)
		_exit(EXIT_CANNOT_EXEC);
	if (job == 0)
		exec_command(cmd, env);
	sigemptyset(&keep);
	sigaddset(&keep, SIGCHLD);
	sigaddset(&keep, SIGUSR2);
	for (;;) {
		int ws, sig = sigwaitinfo(&keep, NULL);
		if (sig == SIGUSR2 || getppid() != parent)
			kill(0, SIGKILL); /* lockstock died: the group goes with it */
		if (waitpid(job, &ws, WNOHANG) == job)
			_exit(WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws));
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for one of the signals in `waited`, up to timeout_ms (< 0: no
 * limit). Returns the signal, or 0 on timeout. */
static int wait_signal(int64_t timeout_ms)
{
	struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000};
	int sig;
	do
		sig = timeout_ms < 0 ? sigwaitinfo(&waited, NULL) : sigtimedwait(&waited, NULL, &ts);
	while (sig < 0 && errno == EINTR);
	return sig < 0 ? 0 : sig;
}

static int status_of(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	return 128 + WTERMSIG(wstatus);
}

/* Lost: SIGTERM to the command's whole group, then SIGKILL after
 * kill_after_ms (or as soon as the command itself has ended: nothing of
 * the job may outlive it); reap the keeper. */
static void stop_child(pid_t pid, int64_t kill_after_ms)
{
	int64_t until = now_ms() + kill_after_ms;
	siginfo_t si;
	kill(-pid, SIGTERM);
	for (;;) {
		si.si_pid = 0;
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
			break;
		int64_t left = until - now_ms();
		if (left <= 0)
			break;
		int sig = wait_signal(left < 20 ? left : 20);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
			kill(-pid, sig);
	}
	kill(-pid, SIGKILL); /* before the reap: the group id is still ours */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* --once / --once-per: derive the key, then the status to exit with when
 * it is done already (--done-exit, or an error's), or -1 to run. */
static int once_done(lks_conn *c, run_opts *o)
{
	int rc, done;
	if (!o->once_key[0] &&
	    (rc = cli_once_key(c, o->once, o->once_per, o->once_key, sizeof o->once_key))) {
		cli_error("run: --once-per: reading the server's clock: %s", lks_conn_errmsg(c));
		return cli_exit_for(rc);
	}
	done = cli_once_done(c, o->name, o->once_key, NULL);
	return done > 0 ? o->done_exit : done < 0 ? -done : -1;
}

/* The first lease marked lost, or NULL. */
static const lks_lease *first_lost(lks_lease *const *ls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lks_lease_is_lost(ls[i]))
			return ls[i];
	return NULL;
}

/* The lease whose local deadline comes first. */
static const lks_lease *first_expiring(lks_lease *const *ls, size_t n)
{
	const lks_lease *first = ls[0];
	for (size_t i = 1; i < n; i++)
		if (lks_lease_remaining_ms(ls[i]) < lks_lease_remaining_ms(first))
			first = ls[i];
	return first;
}

int cli_run(int argc, char **argv)
{
	run_opts o = {0};
	lks_conn *c = NULL;
	lks_lease *ls[LKS_LEASE_SET_MAX] = {NULL};
	lks_renewer *renewer = NULL;
	size_t nl = 0, nb = 0;
	lks_lease_acquire_options ao = LKS_LEASE_ACQUIRE_OPTIONS_INIT;
	lks_lease_autorenew_options ro = LKS_LEASE_AUTORENEW_OPTIONS_INIT;
	char **env = NULL, *bufs[8 + 3 * LKS_LEASE_SET_MAX];
	const char *url;
	int rc, ws, status, own = 0, status_fd = -1;
	int64_t started, poll_ms;
	pid_t pid;

	if ((rc = parse_run(argc, argv, &o)) >= 0)
		return rc;
	/* opened (and emptied) before anything runs, so a stale line from an
	 * earlier run is never read as this one's */
	if (o.status_file &&
	    (status_fd = open(o.status_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		cli_error("run: --status-file %s: %s", o.status_file, strerror(errno));
		return EXIT_USAGE;
	}
	note_inherited_fds();
	note_ignored_signals();
	if ((rc = cli_connect(&o.co, &c))) {
		status = rc;
		goto out;
	}
	url = o.co.url ? o.co.url : getenv("LOCKSTOCK_URL");
	if ((o.once || o.once_per) && (status = once_done(c, &o)) >= 0)
		goto out; /* done before, or an error */
	ao.owner = o.owner;
	if (o.value) {
		ao.payload = o.value;
		ao.payload_len = strlen(o.value);
	}
	/* The supervisor's timing, all inside the lease: the lease's local
	 * deadline is ttl/10 before the server's expiry; the command is stopped
	 * once less than kill_after + poll_ms is left before it (checked every
	 * poll_ms), SIGTERM to the group then and SIGKILL kill_after later, so
	 * SIGKILL lands before another replica can be granted the lease even
	 * when the database has gone silent and no renewal gets through. */
	poll_ms = o.ttl_ms / 20 < 1 ? 1 : o.ttl_ms / 20 > 250 ? 250 : o.ttl_ms / 20;
	if (o.kill_after_ms > o.ttl_ms / 4) {
		if (o.kill_after_set)
			cli_error("run: --kill-after %lldms does not fit in --ttl %lldms; using %lldms"
			          " (SIGKILL must land before the lease expires on the server)",
			          (long long)o.kill_after_ms, (long long)o.ttl_ms, (long long)(o.ttl_ms / 4));
		o.kill_after_ms = o.ttl_ms / 4;
	}
	started = now_ms();
	if (o.permits)
		rc = lks_semaphore_acquire(&ls[0], c, o.name, o.permits, o.ttl_ms, o.wait_ms, &ao);
	else if (o.nnames > 1)
		rc = lks_lease_acquire_all(ls, c, o.names, o.nnames, o.ttl_ms, o.wait_ms, &ao);
	else
		rc = lks_lease_acquire(&ls[0], c, o.name, o.ttl_ms, o.wait_ms, &ao);
	if (rc) {
		cli_error("run: %s", lks_conn_errmsg(c));
		status = rc == LKS_BUSY || rc == LKS_TIMEOUT ? o.busy_exit
		         : rc == LKS_EINVAL                ? EXIT_USAGE
		                                           : cli_exit_for(rc);
		goto out;
	}
	nl = o.nnames;
	/* a previous holder may have completed it while we waited */
	if (o.once_key[0] && (status = once_done(c, &o)) >= 0)
		goto release;
	/* From here every thread (the renew thread too) blocks these; the main
	 * thread takes them with sigwaitinfo. Until now a signal ends lockstock
	 * at once (nothing was held yet, or the grant expires at its TTL). */
	sigemptyset(&waited);
	sigaddset(&waited, SIGCHLD);
	sigaddset(&waited, SIGINT);
	sigaddset(&waited, SIGTERM);
	sigaddset(&waited, SIGHUP);
	sigaddset(&waited, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &waited, NULL);
	main_thread = pthread_self();
	ro.on_lost = on_lost;
	if (nl == 1) {
		if ((rc = lks_lease_autorenew_start(ls[0], c, url, &ro))) {
			cli_error("run: auto-renew: %s", lks_conn_errmsg(c));
			status = cli_exit_for(rc);
			goto release;
		}
	} else {
		/* several names: one renewer thread and connection for all */
		lks_renewer_options rno = LKS_RENEWER_OPTIONS_INIT;
		rno.on_lost = on_lost;
		if ((rc = lks_renewer_start(&renewer, c, url, &rno))) {
			cli_error("run: renewer: %s", lks_conn_errmsg(c));
			status = cli_exit_for(rc);
			goto release;
		}
		for (size_t i = 0; i < nl; i++)
			if ((rc = lks_renewer_add(renewer, ls[i]))) {
				cli_error("run: renewer: %s", lks_strerror(rc));
				status = cli_exit_for(rc);
				goto release;
			}
	}
	if (!(env = child_env(ls, nl, &o, bufs, &nb))) {
		cli_error("run: out of memory");
		status = EXIT_FAILURE_DB;
		goto release;
	}
	pid = start_child(o.cmd, env);
	if (pid < 0) {
		cli_error("run: cannot start %s: %s", o.cmd[0], strerror(errno));
		status = EXIT_CANNOT_EXEC;
		goto release;
	}
	for (;;) {
		int sig = wait_signal(poll_ms);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
			kill(-pid, sig); /* the command's group decides what a signal means */
			continue;
		}
		if (waitpid(pid, &ws, WNOHANG) == pid) {
			status = status_of(ws);
			own = 1;
			break;
		}
		const lks_lease *lost = first_lost(ls, nl), *soonest = first_expiring(ls, nl);
		if (sig == SIGUSR1 || lost || lks_lease_remaining_ms(soonest) <= o.kill_after_ms + poll_ms) {
			if (sig == SIGUSR1 || lost)
				cli_error("run: lease %s was lost while the command ran; stopping it",
				          lks_lease_name(lost ? lost : soonest));
			else
				cli_error("run: lease %s could not be renewed and expires soon; stopping the"
				          " command", lks_lease_name(soonest));
			stop_child(pid, o.kill_after_ms);
			status = EXIT_LOST, own = 0;
			goto out; /* no release: the lease is someone else's or expiring */
		}
	}
	if (first_lost(ls, nl)) {
		cli_error("run: lease %s was lost before the command ended",
		          lks_lease_name(first_lost(ls, nl)));
		status = EXIT_LOST, own = 0;
		goto out;
	}
	if (o.once_key[0] && status == 0) {
		/* the record, in a fenced transaction on this run's lease */
		rc = lks_once_complete(c, ls[0], o.name, o.once_key, NULL, 0, NULL, 0);
		if (rc == LKS_LOST) {
			cli_error("run: lease %s was lost before the command's completion was recorded;"
			          " it may run again", o.name);
			status = EXIT_LOST, own = 0;
		} else if (rc && rc != LKS_CONFLICT) {
			cli_error("run: --once: recording the completion: %s", lks_conn_errmsg(c));
			status = cli_exit_for(rc), own = 0;
		}
	}
	if (o.at_least_ms > 0 && now_ms() - started < o.at_least_ms) {
		/* keep it at least that long, on the server's clock: shorten the
		 * lease to what is left, and leave it to expire */
		int64_t left = o.at_least_ms - (now_ms() - started);
		rc = LKS_OK;
		for (size_t i = 0; i < nl && rc == LKS_OK; i++) {
			lks_lease_autorenew_stop(ls[i]);
			rc = lks_lease_renew(c, ls[i], left > 1 ? left : 1);
		}
		if (rc == LKS_LOST) {
			cli_error("run: lease %s was lost before the command ended", o.name);
			status = EXIT_LOST, own = 0;
		} else if (rc) {
			cli_error("run: could not keep the lease for --at-least: %s", lks_conn_errmsg(c));
		}
		goto out; /* it expires on its own, at least that long after the start */
	}
release:
	rc = lks_lease_release_all(c, ls, nl);
	if (rc == LKS_LOST) {
		cli_error("run: lease %s was lost before the command ended", o.name);
		status = EXIT_LOST, own = 0;
	} else if (rc) {
		/* it expires at its TTL anyway */
		cli_error("run: release: %s", lks_conn_errmsg(c));
	}
out:
	/* the one place the leases (stopping their auto-renew) and the handle go */
	for (size_t i = 0; i < LKS_LEASE_SET_MAX; i++)
		lks_lease_free(ls[i]); /* out of the renewer too */
	lks_renewer_stop(renewer);
	lks_conn_close(c);
	if (status_fd >= 0) {
		/* who decided the exit status: the command's own 75 or 79 and
		 * lockstock's look alike otherwise */
		dprintf(status_fd, "%s %d\n", own ? "command" : "lockstock", status);
		close(status_fd);
	}
	free(env);
	for (size_t i = 0; i < nb; i++)
		free(bufs[i]);
	return status;
}

int cli_elect(int argc, char **argv)
{
	electing = true;
	return cli_run(argc, argv);
}

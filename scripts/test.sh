#!/usr/bin/env bash
# The whole lockstock test suite on a fresh Debian 12 machine:
#   unit (no server), integration-postgresql, integration-mysql, TLS on
#   MySQL, leases on a three-node MariaDB Galera cluster, and the tests of
#   the lockstock command and the inventory example on both databases,
#   built with AddressSanitizer + UndefinedBehaviorSanitizer, with
#   ThreadSanitizer, and plain under valgrind; then a bounded libFuzzer run
#   over the parsers and input checks (clang). Installs what is missing (as root), starts throwaway
#   PostgreSQL and MariaDB servers unless LKS_PG_URL / LKS_MYSQL_URL point at
#   existing ones (and a TLS-only MariaDB unless LKS_MYSQL_TLS_URL and
#   LKS_TLS_DIR do), stops them afterwards, exits non-zero if any test fails.
# Options (environment): LKS_VALGRIND=0 skips the valgrind pass.
source "$(dirname "$0")/common.sh"

ensure_packages
start_servers
start_tls_server
start_pgbouncer
# two primary/standby pairs, each failed over once (first pass only)
pg_pair sync
pg_pair async
# a three-node MariaDB Galera cluster (ASan and TSan passes); a cluster that
# cannot start fails the run with its log
galera_cluster

log "building (ASan+UBSan, TSan, and plain for valgrind)"
build "$LKS_ROOT/build-asan" -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
build "$LKS_ROOT/build-tsan" -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug
build "$LKS_ROOT/build-plain" -Dbuildtype=debug
CC=clang build "$LKS_ROOT/build-fuzz" -Dfuzz=true -Dtests=disabled -Dexamples=false \
	-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1

PASSED=0 FAILED=0 SKIPPED=0 SUITES_FAILED=()
# run_suite LABEL COMMAND...: runs one cmocka binary, counts its results
run_suite() {
	local label=$1 out rc p f k
	shift
	out=$(mktemp)
	log "suite $label"
	set +e
	"$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	set -e
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$out" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$out" | tail -1)
	k=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s), listed below:/\1/p' "$out" | tail -1)
	p=${p:-0} f=${f:-0} k=${k:-0}
	# a crash, a sanitizer report or a missing server leaves no cmocka totals
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	PASSED=$((PASSED + p)) FAILED=$((FAILED + f)) SKIPPED=$((SKIPPED + k))
	[ "$f" -eq 0 ] || SUITES_FAILED+=("$label")
	rm -f "$out"
}

for b in asan tsan plain; do
	dir="$LKS_ROOT/build-$b"
	wrap=()
	# no test bounds elapsed time (speed figures are in bench/), so the
	# slow passes (ThreadSanitizer, valgrind) run the same assertions
	if [ "$b" = plain ]; then
		[ "${LKS_VALGRIND:-1}" = 0 ] && continue
		wrap=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
		      --show-leak-kinds=definite --track-fds=no)
		export LKS_TEST_LEASE_ITERS=25 LKS_TEST_QUEUE_THREADS=8 # valgrind runs one thread at a time
	fi
	run_suite "$b/unit" "${wrap[@]}" "$dir/tests/unit"
	run_suite "$b/integration-postgresql" "${wrap[@]}" "$dir/tests/integration" postgresql
	run_suite "$b/integration-mysql" "${wrap[@]}" "$dir/tests/integration" mysql
	# the PostgreSQL suite again, through PgBouncer in transaction pooling
	LKS_PG_URL="$LKS_PGBOUNCER_URL" run_suite "$b/integration-postgresql-pgbouncer" "${wrap[@]}" \
		"$dir/tests/integration" postgresql
	if [ "$b" = asan ]; then
		# the example driver and the command through the pooler too
		LKS_PG_URL="$LKS_PGBOUNCER_URL" run_suite "$b/inventory-postgresql-pgbouncer" \
			"$dir/tests/inventory_test" postgresql "$dir/examples/inventory/inventory"
		LKS_PG_URL="$LKS_PGBOUNCER_URL" run_suite "$b/cli-postgresql-pgbouncer" \
			"$dir/tests/cli_test" postgresql "$dir/tools/lockstock/lockstock"
		# no password in any program's output, for URLs it rejects too
		for db in postgresql mysql; do
			run_suite "$b/redaction-$db" bash "$LKS_ROOT/tests/redaction_test.sh" "$dir" $db
		done
		run_suite "$b/failover-sync" "$dir/tests/failover_test" sync
		run_suite "$b/failover-async" "$dir/tests/failover_test" async
	fi
	[ "$b" = plain ] || run_suite "$b/galera" "$dir/tests/galera_test"
	run_suite "$b/tls-mysql" "${wrap[@]}" "$dir/tests/tls"
	run_suite "$b/inventory-postgresql" "${wrap[@]}" "$dir/tests/inventory_test" postgresql "$dir/examples/inventory/inventory"
	run_suite "$b/inventory-mysql" "${wrap[@]}" "$dir/tests/inventory_test" mysql "$dir/examples/inventory/inventory"
	for db in postgresql mysql; do
		run_suite "$b/examples-$db" "$dir/tests/examples_test" $db "$dir/examples"
	done
	# the lockstock command: under valgrind it is the command that runs
	# under it (LKS_CLI_WRAP), the test driver only forks it
	for db in postgresql mysql; do
		LKS_CLI_WRAP="${wrap[*]}" run_suite "$b/cli-$db" "$dir/tests/cli_test" $db "$dir/tools/lockstock/lockstock"
	done
done

# packaging: install into a private prefix, consume it three ways, check
# the exported symbols
run_suite "packaging" "$LKS_ROOT/tests/packaging/check.sh" "$LKS_ROOT"

# libFuzzer over the parsers and input checks: a bounded run each, from the
# checked-in corpus with a fixed seed and run count, so CI repeats what was
# run before a commit (LKS_FUZZ_SEED=0 explores afresh); a crash, a hang
# over 5 s or a leak fails it
declare -A FUZZ_RUNS=([url]=600000 [ident]=1000000 [redact]=1000000)
for t in url ident redact; do
	corpus=$(mktemp -d)
	cp "$LKS_ROOT/fuzz/corpus/$t/"* "$corpus/"
	log "fuzz $t (${FUZZ_RUNS[$t]} runs)"
	if (cd "$corpus" && "$LKS_ROOT/build-fuzz/fuzz/fuzz_$t" -seed="${LKS_FUZZ_SEED:-1}" \
		-runs="${FUZZ_RUNS[$t]}" -max_len=4096 -timeout=5 "$corpus" >"$corpus.log" 2>&1); then
		PASSED=$((PASSED + 1))
		tail -1 "$corpus.log"
	else
		FAILED=$((FAILED + 1)) SUITES_FAILED+=("fuzz/$t")
		tail -40 "$corpus.log"
	fi
	rm -rf "$corpus" "$corpus.log"
done

echo
if [ ${#SUITES_FAILED[@]} -gt 0 ]; then
	log "failed suites: ${SUITES_FAILED[*]}"
fi
echo "tests: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]

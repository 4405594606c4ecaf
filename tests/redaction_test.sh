#!/usr/bin/env bash
# No password in any program's output (issue 22): runs every shipped program
# with hostile URLs that carry a known password, through flags, arguments and
# environment variables, and fails if the password shows up in its stdout,
# stderr or any file it writes. The hosts are unreachable or malformed, so
# every run is an error path: the one that echoes URLs back.
# usage: redaction_test.sh BUILD_DIR SCHEME   (SCHEME: postgresql | mysql)
# Prints TAP (one case per run, the plan at the end) for meson test.
set -u
build=$1 scheme=$2
PW='Zq7S3cretPW'              # the secret to look for
PWENC='Zq7S3cr%65tPW'         # the same, percent-encoded ('e' = %65)
PWODD='Zq7S3c@r:e/tPW'        # '@', ':' and '/' inside it
PWODDENC='Zq7S3c%40r%3Ae%2FtPW'
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0

if [ "$scheme" = postgresql ]; then s=postgresql; else s=mysql; fi
# port 1 on loopback refuses at once; no server is needed
urls=(
	"mysqlx://app:$PW@127.0.0.1/shop"
	"redis://app:$PW@127.0.0.1:1/0"
	"postgres:/app:$PW@127.0.0.1:1/shop"
	"$s:/app:$PW@127.0.0.1:1/shop"
	"$s://app:$PW@127.0.0.1:1/shop"
	"$s://app:$PWENC@127.0.0.1:1/shop"
	"$s://app:$PWODD@127.0.0.1:1/shop"
	"$s://app:$PWODDENC@127.0.0.1:1/shop"
	"$s://app:$PW@/shop"
	"$s://app:$PW@"
	"$s://app:$PW@[::1/shop"
	"$s://app:$PW@127.0.0.1:99999999/shop"
	"$s://127.0.0.1:1/shop?password=$PW"
	"$s://127.0.0.1:1/shop?user=app&password=$PW&sslmode=bogus"
	"$s://app:$PW@127.0.0.1:1/shop?bogus-param=1"
	"host=127.0.0.1 port=1 user=app password=$PW dbname=shop"
	"host=127.0.0.1 port=1 password = '$PW' dbname=shop"
	"app:$PW@127.0.0.1/shop"
)

# check LABEL: the last run's output and files must not hold the password
check() {
	local label=$1 hit
	hit=$(grep -rlaF -e "$PW" -e "Zq7S3c@r" -e "Zq7S3cr%65" -e "Zq7S3c%40" "$work/out" 2>/dev/null)
	if [ -n "$hit" ]; then
		fail=$((fail + 1))
		echo "not ok $((pass + fail)) - $label"
		echo "# password in $(basename "$hit"):"
		grep -haF -e "$PW" -e "Zq7S3c@r" -e "Zq7S3cr%65" -e "Zq7S3c%40" "$work/out"/* | head -3 | sed 's/^/#    /'
	else
		pass=$((pass + 1))
		echo "ok $((pass + fail)) - $label"
	fi
}

# run LABEL [ENV=VALUE...] -- COMMAND...: in a fresh directory whose files
# (the ones the program writes) are checked with its output
run() {
	local label=$1
	shift
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	rm -rf "$work/out" && mkdir "$work/out"
	(cd "$work/out" && env "${envs[@]}" timeout 60 "$@" >"$work/out/stdout" 2>"$work/out/stderr" </dev/null)
	check "$label"
}

lockstock=$build/tools/lockstock/lockstock
inventory=$build/examples/inventory/inventory
n=0
for u in "${urls[@]}"; do
	n=$((n + 1))
	run "inventory --url #$n" -- "$inventory" --url "$u" --strategy naive --workers 1 --stock 1 \
		--json out.json --csv out.csv
	run "inventory LKS_URL-style env #$n" LKS_PG_URL="$u" LKS_MYSQL_URL="$u" -- "$inventory" \
		--url "$u" --url "$u" --strategy optimistic --workers 1 --stock 1
	for sub in "run job -- true" "install" "install --print" "list" "list --json" \
		"inspect job" "inspect job --json" "release --force job"; do
		# shellcheck disable=SC2086
		run "lockstock $sub --url #$n" -- "$lockstock" ${sub%% *} --url "$u" ${sub#* }
		# shellcheck disable=SC2086
		run "lockstock $sub LOCKSTOCK_URL #$n" LOCKSTOCK_URL="$u" -- "$lockstock" ${sub%% *} ${sub#* }
	done
	run "lockstock bad option --url #$n" -- "$lockstock" list --url "$u" --bogus
	run "bench #$n" LKS_PG_URL="$u" LKS_MYSQL_URL="$u" -- "$build/bench/bench" "$scheme" 3
	run "lease_bench #$n" LKS_PG_URL="$u" LKS_MYSQL_URL="$u" -- "$build/bench/lease_bench" "$scheme" 0.1
	for ex in basics/adopt basics/balance basics/nightly_job; do
		run "$ex #$n" -- "$build/examples/$ex" "$u"
	done
	run "metrics/prometheus #$n" -- "$build/examples/metrics/prometheus" "$u" out.prom 0
done

# and against the real server (successful runs print reports and write
# JSON and CSV): its own password must not appear either
real=${LKS_PG_URL:-}
[ "$scheme" = mysql ] && real=${LKS_MYSQL_URL:-}
[ -n "$real" ] || { echo "Bail out! no server URL for $scheme (LKS_PG_URL / LKS_MYSQL_URL)"; exit 1; }
PW=$(printf '%s' "$real" | sed -n 's#^[a-z]*://[^:/@]*:\([^@]*\)@.*#\1#p')
[ -n "$PW" ] || { echo "Bail out! the server URL has no password to look for"; exit 1; }
run "inventory on the server" -- "$inventory" --url "$real" --strategy naive,optimistic \
	--workers 2 --stock 20 --json out.json --csv out.csv
if [ -s "$work/out/out.json" ]; then
	pass=$((pass + 1)) && echo "ok $((pass + fail)) - inventory wrote its JSON"
else
	fail=$((fail + 1)) && echo "not ok $((pass + fail)) - inventory wrote its JSON"
fi
run "lockstock run on the server" LOCKSTOCK_URL="$real" -- "$lockstock" run redaction-job -- true
run "lockstock list --json on the server" -- "$lockstock" list --json --url "$real"
run "lockstock inspect on the server" LOCKSTOCK_URL="$real" -- "$lockstock" inspect redaction-job

echo "1..$((pass + fail))"
[ "$fail" -eq 0 ]

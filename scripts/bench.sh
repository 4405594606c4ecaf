#!/usr/bin/env bash
# Benchmarks, each printing ratios measured in one run against its baseline,
# on throwaway servers at default durability (fsync, synchronous_commit on;
# innodb_flush_log_at_trx_commit=1), unless LKS_PG_URL / LKS_MYSQL_URL point
# at existing servers:
#   lease_bench: leases against a ShedLock-style statement pair and session
#                locks at 1 and 16 threads, a hot lease at 8 and 64 workers,
#                hand-off latency (see bench/lease_bench.c);
#   once_bench:  processed once against a bare fenced write and a naive
#                dedupe, and its replay against one round trip;
#   purge_bench: lease-table cleanup of 1e6 rows, and grant p99 beside it;
#   sets_bench:  semaphores against a lease and a hand-written slot table,
#                all-or-nothing sets against sorted single acquires, and
#                one renewer against single renewals;
#   election_bench: a killed leader's hand-over against its TTL, observe
#                after a resign in the name's line against polling;
#   bench:       CAS and lease overhead against the raw client libraries.
# Usage: scripts/bench.sh [seconds per lease_bench run, default 3]
export LKS_DURABLE=${LKS_DURABLE:-1}
source "$(dirname "$0")/common.sh"

ensure_packages
start_servers
build "$LKS_ROOT/build-release" -Dbuildtype=release -Dtests=disabled -Dbench=true
for db in postgresql mysql; do
	"$LKS_ROOT/build-release/bench/lease_bench" "$db" "${1:-3}"
	echo
	"$LKS_ROOT/build-release/bench/once_bench" "$db" "${1:-3}"
	echo
	"$LKS_ROOT/build-release/bench/purge_bench" "$db"
	echo
	"$LKS_ROOT/build-release/bench/sets_bench" "$db" "${1:-3}"
	echo
	"$LKS_ROOT/build-release/bench/election_bench" "$db" 20
	echo
	"$LKS_ROOT/build-release/bench/bench" "$db" 3000
	echo
done

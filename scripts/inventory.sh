#!/usr/bin/env bash
# The main job: the flash-sale comparison on PostgreSQL and MariaDB.
# Installs what is missing (as root), starts throwaway servers unless
# LKS_PG_URL / LKS_MYSQL_URL point at existing ones, builds, runs the default
# comparison (one hot product, limited stock, 16 buyers, until sold out),
# then a contention sweep, and writes to out/:
#   inventory.json, inventory.csv            the comparison
#   inventory-duplicates.json, .csv          the same with 20% of the orders
#                                            delivered twice (charged2x)
#   inventory-items.json, .csv               multi-item orders: 3 of 6 hot
#                                            products each, all or nothing
#   inventory-sweep.csv, inventory-sweep.svg the sweep and its chart
# Extra arguments go to the comparison run (see --help), e.g.
#   scripts/inventory.sh --pause 0.1 --lease-ttl-ms 300
# LKS_SWEEP=0 skips the sweep.
export LKS_DURABLE=${LKS_DURABLE:-1}
source "$(dirname "$0")/common.sh"

ensure_packages
start_servers
build "$LKS_ROOT/build-release" -Dbuildtype=release -Dtests=disabled -Dbench=true
bin="$LKS_ROOT/build-release/examples/inventory/inventory"
out="$LKS_ROOT/out"
mkdir -p "$out"

set +e
log "flash sale: every strategy on PostgreSQL and MariaDB"
"$bin" --json "$out/inventory.json" --csv "$out/inventory.csv" "$@"
rc=$?
if [ $rc -eq 0 ]; then
	log "duplicate deliveries: 20% of the orders sent twice (retries, redeliveries)"
	"$bin" --duplicates 0.2 --strategy optimistic,pessimistic,select-for-update,atomic,once \
		--json "$out/inventory-duplicates.json" --csv "$out/inventory-duplicates.csv" "$@"
	rc=$?
fi
if [ $rc -eq 0 ]; then
	log "multi-item orders: 3 distinct products of 6 per order, all or nothing"
	"$bin" --items 3 --products 6 --stock 100 \
		--strategy naive,optimistic,pessimistic,pessimistic-all,select-for-update,atomic \
		--json "$out/inventory-items.json" --csv "$out/inventory-items.csv" "$@"
	rc=$?
fi
if [ $rc -eq 0 ] && [ "${LKS_SWEEP:-1}" != 0 ]; then
	log "contention sweep (workers 1..32, 1 and 8 products): a few minutes; each run is shown as it starts"
	"$bin" --sweep --quiet --stock 100 --csv "$out/inventory-sweep.csv" \
		--chart "$out/inventory-sweep.svg" >/dev/null
	rc=$?
fi
set -e
[ $rc -eq 0 ] && log "results in $out/"
exit $rc

#!/usr/bin/env bash
# Reproduces the "get-entries against the stock stack" figures of
# docs/benchmarks.md: ctstage's get-entries beside the stock Trillian +
# ct-go stack (trillian_log_server v1.7.2 and ct_server v1.3.2, each its own
# process, their default flags) serving the same tree from the same MariaDB
# database, read by the same readers in the same run. bench-scale grows the
# tree by bulk loading and starts the stock stack on it (--stock).
#
# Needs a MariaDB the ctstage user can create databases on (see .ci/run).
# Usage: [POOL=2G] [CTSTAGE=BIN] scripts/bench-compare.sh [ENTRIES] [READER]
#   ENTRIES: tree size (default 100000); READER: raw (default) or ct-go.
#   POOL: sets MariaDB's innodb_buffer_pool_size for the run (as root over
#   the socket; the old size is put back at the end). Debian's default of
#   128 MiB holds 20,000 entries: past that, both stacks wait on InnoDB
#   page reads, and the figure is the database's, not the log's.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100000}"
reader="${2:-raw}"
work=$(mktemp -d)
db=ctstage_compare_$$
pool_was=""
if [ -n "${POOL:-}" ]; then
  pool_was=$(mariadb -N -e "SELECT @@innodb_buffer_pool_size")
  mariadb -e "SET GLOBAL innodb_buffer_pool_size = $(numfmt --from=iec "$POOL")"
fi
trap '[ -n "$pool_was" ] && mariadb -e "SET GLOBAL innodb_buffer_pool_size = $pool_was"; mariadb -h127.0.0.1 -uctstage -pctstage -e "DROP DATABASE IF EXISTS $db" 2>/dev/null || true; rm -rf "$work"' EXIT
# CTSTAGE=PATH measures another ctstage binary (an older commit, say).
if [ -n "${CTSTAGE:-}" ]; then cp "$CTSTAGE" "$work/ctstage"; else go build -o "$work/ctstage" ./cmd/ctstage; fi
# The stock stack at the versions DESIGN's figures name, built from the module
# proxy: ct_server does not build against Trillian v1.8.0 (docs/design.md).
GOBIN="$work/stock" go install github.com/google/trillian/cmd/trillian_log_server@v1.7.2
GOBIN="$work/stock" go install github.com/google/certificate-transparency-go/trillian/ctfe/ct_server@v1.3.2
echo "## $(date -u +%FT%TZ) $n entries, $reader readers, InnoDB buffer pool $(mariadb -h127.0.0.1 -uctstage -pctstage -N -e "SELECT @@innodb_buffer_pool_size" | numfmt --to=iec)   (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$work/ctstage" bench-scale --data "$work/data" --storage "mysql://ctstage:ctstage@127.0.0.1:3306/$db" \
  --entries "$n" --at "$n" --stock "$work/stock" --entries-reader "$reader" \
  --proofs 200 --add-duration 2s --log-level warn
echo "machine: $(nproc) cores, $(go version), $(uname -r)"

#!/usr/bin/env bash
# Reproduces the "get-entries against the stock stack" figures of
# docs/benchmarks.md: ctstage's get-entries beside the stock Trillian +
# ct-go stack (trillian_log_server v1.7.2 and ct_server v1.3.2, each its own
# process, their default flags) serving the same tree from the same MariaDB
# database, read by the same readers in the same run. bench-scale grows the
# tree by bulk loading and starts the stock stack on it (--stock).
#
# Needs a MariaDB the ctstage user can create databases on (see .ci/run).
# Usage: scripts/bench-compare.sh [ENTRIES] [READER]
#   ENTRIES: tree size (default 100000); READER: raw (default) or ct-go.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100000}"
reader="${2:-raw}"
work=$(mktemp -d)
db=ctstage_compare_$$
trap 'mariadb -h127.0.0.1 -uctstage -pctstage -e "DROP DATABASE IF EXISTS $db" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/ctstage" ./cmd/ctstage
# The stock stack at the versions DESIGN's figures name, built from the module
# proxy: ct_server does not build against Trillian v1.8.0 (docs/design.md).
GOBIN="$work/stock" go install \
  github.com/google/trillian/cmd/trillian_log_server@v1.7.2 \
  github.com/google/certificate-transparency-go/trillian/ctfe/ct_server@v1.3.2
echo "## $(date -u +%FT%TZ) $n entries, $reader readers   (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$work/ctstage" bench-scale --data "$work/data" --storage "mysql://ctstage:ctstage@127.0.0.1:3306/$db" \
  --entries "$n" --at "$n" --stock "$work/stock" --entries-reader "$reader" \
  --proofs 200 --add-duration 2s --log-level warn
echo "machine: $(nproc) cores, $(go version), $(uname -r)"

#!/usr/bin/env bash
# Reproduces the "CT logs" figures of docs/benchmarks.md: add-pre-chain
# throughput, latency and merge delay of one shard at 64 clients, on the
# embedded SQLite default and on MariaDB, as fast as possible and at a
# steady 1,000/s. Needs a MariaDB the ctstage user can create databases on
# (see .ci/run). Usage: scripts/bench-logs.sh [N]   (N submissions, default 25000)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-25000}"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/ctstage" ./cmd/ctstage
bin="$work/ctstage"
"$bin" bench --make-ca "$work/p256" >/dev/null
quiet=(--mgmt-addr= --acme-addr= --dns-addr= --dns-mgmt-addr=)

run() { # run NAME STORAGE
  local name=$1 storage=$2 data="$work/data-$1" addr=127.0.0.1:16970
  "$bin" serve --data "$data" --log-addr "$addr" --storage "$storage" --log-level warn \
    --extra-roots "$work/p256/root.pem" "${quiet[@]}" 2>"$work/$name.log" &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://$addr/healthz" >/dev/null && break; sleep 0.2; done
  local list="http://$addr/log.v3.json"
  echo "## $name: P-256 load-test CA, 64 clients, $n submissions   (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bin" bench --data "$data" --ca "$work/p256" --log-list "$list" -c 64 -n "$n" --log-level warn
  echo "## $name: staging RSA chain, 64 clients, $n submissions   (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bin" bench --data "$data" --log-list "$list" -c 64 -n "$n" --log-level warn
  echo "## $name: P-256, steady 1000/s for 20 s   (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bin" bench --data "$data" --ca "$work/p256" --log-list "$list" -c 64 --rate 1000 --duration 20s --log-level warn
  kill "$pid"; wait "$pid" || true
}

run sqlite sqlite
db=ctstage_bench_$$
mariadb -e "CREATE DATABASE $db" 2>/dev/null || mariadb -h127.0.0.1 -uctstage -pctstage -e "CREATE DATABASE $db"
run mariadb "mysql://ctstage:ctstage@127.0.0.1:3306/$db"
mariadb -e "DROP DATABASE $db" 2>/dev/null || mariadb -h127.0.0.1 -uctstage -pctstage -e "DROP DATABASE $db"
echo "machine: $(nproc) cores, $(go version), $(uname -r)"

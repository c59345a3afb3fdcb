#!/usr/bin/env bash
# Reproduces the "Dashboard" figures of docs/benchmarks.md: W1
# (add-pre-chain, 64 clients) against `ctstage serve` with and without the
# dashboard's search index (--no-dashboard), alternated twice, each on a
# fresh embedded store; then, with 100,000 entries in the logs and indexed, the time of
# every page over HTTP (median of 5 curl requests each), the
# certificate's pages included: a logged precertificate's, and that of a
# certificate of the CA (`ctstage issue`), which checks each SCT and
# proves its inclusion in its log.
#
# Usage: scripts/bench-dashboard.sh [N]   (W1 submissions per run, default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20000}"
big=100000
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/ctstage" ./cmd/ctstage
bin="$work/ctstage"
quiet=(--mgmt-addr= --acme-addr= --dns-addr= --dns-mgmt-addr= --log-level warn)
addr=127.0.0.1:17962
serve() { # serve DATA [ARGS...]: starts serve, waits for /healthz; its PID in $pid
  local data=$1
  shift
  "$bin" serve --data "$data" --log-addr "$addr" "${quiet[@]}" "$@" >/dev/null 2>"$data.log" &
  pid=$!
  for _ in $(seq 300); do curl -sf "http://$addr/healthz" >/dev/null && return; sleep 0.2; done
  cat "$data.log" >&2
  exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

# Alternated twice: this machine's speed drifts by tens of percent within
# minutes, and ABAB separates that drift from the index's cost.
for mode in without with without with; do
  args=()
  [ "$mode" = without ] && args=(--no-dashboard)
  rm -rf "$work/w1-$mode"
  serve "$work/w1-$mode" "${args[@]}"
  echo "## $(date -u +%FT%TZ) W1 $mode the dashboard's index: 64 clients, $n submissions   (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bin" bench --data "$work/w1-$mode" --log-list "http://$addr/log.v3.json" -c 64 -n "$n" --server-pid "$pid" --log-level warn
  sleep 3 # the index catches up
  echo "serve RSS after the run: $(awk '/VmRSS/ {print $2 / 1024 " MiB"}' /proc/$pid/status)"
  stop
done

quiet=(--acme-addr= --dns-addr= --dns-mgmt-addr= --log-level warn --mgmt-addr 127.0.0.1:17963)
serve "$work/big"
echo "## $(date -u +%FT%TZ) loading $big entries, then the pages"
"$bin" bench --data "$work/big" --log-list "http://$addr/log.v3.json" -c 64 -n "$big" --log-level warn | head -2
start=$(date +%s)
until curl -sf "http://$addr/" | grep -q "$big entries indexed"; do
  sleep 1
  [ $(($(date +%s) - start)) -lt 600 ] || { echo "not indexed in 10 minutes" >&2; exit 1; }
done
echo "indexed $big entries $(($(date +%s) - start)) s after the load ended"
shard=$(curl -sf "http://$addr/" | grep -o 'href="/shard/[a-z0-9]*"' | head -1 | cut -d/ -f3 | tr -d '"')
for s in $(curl -sf "http://$addr/" | grep -o 'href="/shard/[a-z0-9]*"' | cut -d/ -f3 | tr -d '"'); do
  curl -sf "http://$addr/shard/$s" | grep -q "$big entries indexed" && shard=$s
done
sha=$(curl -sf "http://$addr/shard/$shard" | grep -o 'href="/cert/[0-9a-f]*"' | head -1 | cut -d/ -f3 | tr -d '"')
# A certificate of the CA, whose page checks its SCTs and proves their inclusion.
"$bin" issue --mgmt-addr 127.0.0.1:17963 --name dash-bench.example.com >/dev/null
sleep 3
issued=$(curl -sf "http://$addr/issuances" | grep -o 'href="/cert/[0-9a-f]*"' | head -1 | cut -d/ -f3 | tr -d '"')
name=$(curl -sf "http://$addr/cert/$sha" | grep -o '<h1>[^<]*</h1>' | sed 's/<[^>]*>//g')
serial=$(curl -sf "http://$addr/cert/$sha" | grep -o 'search?q=[0-9a-f]*' | head -1 | cut -d= -f2)
echo "shard $shard; a certificate $sha ($name, serial $serial)"
for path in "/" "/shard/$shard" "/shard/$shard?page=$((big / 50))" "/search?q=loadgen.ctstage.test" "/search?q=$name" \
  "/search?q=$serial" "/search?q=$sha" "/cert/$sha" "/cert/$issued" "/issuances" "/faults"; do
  ts=()
  for _ in 1 2 3 4 5; do
    ts+=("$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "http://$addr$path")")
  done
  printf '%s\n' "${ts[@]}" | sort -k2 -n | sed -n 3p | awk -v p="$path" '{ printf "  %-40s HTTP %s, median %.1f ms\n", substr(p, 1, 40), $1, $2 * 1000 }'
done
echo "serve RSS: $(awk '/VmRSS/ {print $2 / 1024 " MiB"}' /proc/$pid/status)"
stop
echo "machine: $(nproc) cores, $(go version), $(uname -r)"

#!/usr/bin/env bash
# Reproduces the "Tiled logs" figures of docs/benchmarks.md: add-pre-chain
# at 64 clients against an RFC 6962 shard and a tiled shard of one
# `ctstage serve` (embedded default), and against Sunlight v0.8.1 on its
# local-directory backend (its default 1 s period, and 100 ms, ctstage's
# checkpoint interval), all with the same P-256 load-test chains, in
# alternating rounds. Server CPU is the process's user+system time during
# the load (`ctstage bench --server-pid`), in all and above the process's
# idle rate sampled for 5 s before each load (the other shards' timers).
# The dashboard is off (--no-dashboard): its index reads every new entry,
# which is the dashboard's cost, measured in its own section.
#
# Sunlight builds from the module proxy in a scratch module (`go install
# ...@v0.8.1` is refused: its go.mod has replace directives). Its files
# are made immutable (chattr +i), so each run gets a new directory under
# the work directory, which is left behind (remove with chattr -R -i).
#
# Usage: scripts/bench-tiled.sh [ROUNDS] [SECONDS]   (default 2 rounds of 30 s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}" secs="${2:-30}"
work=$(mktemp -d /tmp/bench-tiled.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
go build -o "$work/ctstage" ./cmd/ctstage
bin="$work/ctstage"
(mkdir -p "$work/sunlight-src" && cd "$work/sunlight-src" && go mod init scratch >/dev/null 2>&1 &&
  go get filippo.io/sunlight/cmd/sunlight@v0.8.1 >/dev/null 2>&1 && go build -o "$work/sunlight" filippo.io/sunlight/cmd/sunlight)
"$bin" bench --make-ca "$work/ca" >/dev/null
notafter=$(date -u -d "+90 days" +%Y-%m-%dT00:00:00Z)
half=$(date -u -d "$notafter" +%Y)h$(( $(date -u -d "$notafter" +%-m) < 7 ? 1 : 2 ))
start=$(date -u -d "$notafter" +%Y)-$( [ "${half#*h}" = 1 ] && echo 01-01 || echo 07-01 )T00:00:00Z
limit=$(date -u -d "${start%T*} +6 months" +%Y-%m-%dT00:00:00Z)
common=(--ca "$work/ca" --not-after "$notafter" -c 64 -n 40000 --duration "${secs}s" --log-level warn)
quiet=(--mgmt-addr= --acme-addr= --dns-addr= --dns-mgmt-addr=)

"$bin" serve --data "$work/data" --log-addr 127.0.0.1:16971 --extra-roots "$work/ca/root.pem" --log-level warn --no-dashboard "${quiet[@]}" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:16971/healthz >/dev/null && break; sleep 0.2; done

# Sunlight: a checkpoints database, a seed, a static file server for the
# monitoring prefix (Sunlight serves the write path only), a log list.
mkdir -p "$work/sl"
head -c 32 /dev/urandom >"$work/sl/seed.bin"
python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('CREATE TABLE checkpoints (logID BLOB PRIMARY KEY, body BLOB NOT NULL) STRICT'); c.commit()" "$work/sl/checkpoints.db"
python3 -m http.server 16973 --bind 127.0.0.1 --directory "$work/sl/cur" >/dev/null 2>&1 &
sunlight() { # sunlight PERIOD_MS ROUND
  local d="$work/sl/data-$1-$2"
  ln -sfn "$d" "$work/sl/cur"
  rm -f "$work/sl/cache.db"
  python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('DELETE FROM checkpoints'); c.commit()" "$work/sl/checkpoints.db"
  cat >"$work/sl/sunlight.yaml" <<EOF
listen: ["127.0.0.1:16972"]
checkpoints: $work/sl/checkpoints.db
logs:
  - shortname: sunlight$half
    inception: "$(date -u +%Y-%m-%d)"
    submissionprefix: https://localhost/sunlight$half
    monitoringprefix: https://localhost/sunlight$half-monitoring/
    roots: $work/ca/root.pem
    secret: $work/sl/seed.bin
    cache: $work/sl/cache.db
    localdirectory: $d
    notafterstart: "$start"
    notafterlimit: "$limit"
    period: $1
EOF
  "$work/sunlight" -c "$work/sl/sunlight.yaml" >"$work/sl/sunlight-$1-$2.log" 2>&1 &
  local spid=$!
  for _ in $(seq 50); do [ -f "$d/log.v3.json" ] && break; sleep 0.2; done
  # Sunlight routes by the prefix's host without port: submit to localhost.
  python3 - "$d/log.v3.json" "$work/sl/list.json" <<'EOF'
import json, sys
li = json.load(open(sys.argv[1]))
json.dump({"version": "bench", "operators": [{"name": "Sunlight", "email": [], "logs": [], "tiled_logs": [{
    "description": "Sunlight v0.8.1", "log_id": li["log_id"], "key": li["key"],
    "submission_url": "http://localhost:16972/" + li["friendly_name"] + "/",
    "monitoring_url": "http://127.0.0.1:16973/", "mmd": 60,
    "state": {"usable": {"timestamp": "2026-01-01T00:00:00Z"}},
    "temporal_interval": li["temporal_interval"]}]}]}, open(sys.argv[2], "w"))
EOF
  echo "## Sunlight v0.8.1, period ${1} ms, round $2   (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bin" bench "${common[@]}" --log-list "$work/sl/list.json" --log-url "http://localhost:16972/sunlight$half/" --server-pid "$spid" || true
  kill "$spid"; wait "$spid" || true
}

list=http://127.0.0.1:16971/log.v3.json
for round in $(seq "$rounds"); do
  echo "## ctstage RFC 6962 shard testflume$half, round $round   (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bin" bench "${common[@]}" --log-list "$list" --log-url "http://127.0.0.1:16971/testflume$half/" --server-pid "$pid" || true
  echo "## ctstage tiled shard testflumetiles$half, round $round   (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bin" bench "${common[@]}" --log-list "$list" --log-url "http://127.0.0.1:16971/testflumetiles$half/" --server-pid "$pid" || true
  sunlight 1000 "$round"
  sunlight 100 "$round"
done
# CPU at the same load: a steady 400/s, which all three sustain.
steady=(--ca "$work/ca" --not-after "$notafter" -c 64 --rate 400 --duration 20s --log-level warn)
echo "## ctstage RFC 6962 shard, steady 400/s   (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$bin" bench "${steady[@]}" --log-list "$list" --log-url "http://127.0.0.1:16971/testflume$half/" --server-pid "$pid" || true
echo "## ctstage tiled shard, steady 400/s   (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$bin" bench "${steady[@]}" --log-list "$list" --log-url "http://127.0.0.1:16971/testflumetiles$half/" --server-pid "$pid" || true
common=("${steady[@]}")
sunlight 100 steady
kill "$pid"; wait "$pid" || true
echo "machine: $(nproc) cores, $(go version), $(uname -r); work directory $work"

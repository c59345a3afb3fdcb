#!/usr/bin/env bash
# bench-start.sh [BINARY] [RUNS]: time from exec of `ctstage serve` to the
# first 200 from /healthz, on an empty --data (fresh start) and again on
# the same --data (restart), RUNS times each (default 5); prints every run
# and the medians in milliseconds. Default listeners, embedded storage,
# on ports of their own so that a running serve does not interfere.
set -euo pipefail
bin=${1:-}
runs=${2:-5}
if [ -z "$bin" ]; then
  bin=$(mktemp -d)/ctstage
  go build -o "$bin" ./cmd/ctstage
fi
ms() { date +%s%N | cut -c1-13; }
one() { # one DIR: prints ms to healthy
  local dir=$1 start end pid
  start=$(ms)
  "$bin" serve --data "$dir" --log-addr 127.0.0.1:26962 --mgmt-addr 127.0.0.1:26963 \
    --acme-addr 127.0.0.1:24000 --dns-addr 127.0.0.1:28053 --dns-mgmt-addr 127.0.0.1:28055 \
    2>>"$dir.log" &
  pid=$!
  until curl -sf -o /dev/null http://127.0.0.1:26962/healthz; do
    kill -0 $pid 2>/dev/null || { echo "serve exited; see $dir.log" >&2; exit 1; }
    sleep 0.005
  done
  end=$(ms)
  kill -TERM $pid; wait $pid || true
  echo $((end - start))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fresh=(); restart=()
for _ in $(seq "$runs"); do
  d=$(mktemp -d)/data
  fresh+=("$(one "$d")")
  restart+=("$(one "$d")")
done
echo "fresh:   ${fresh[*]} ms; median $(printf '%s\n' "${fresh[@]}" | median) ms"
echo "restart: ${restart[*]} ms; median $(printf '%s\n' "${restart[@]}" | median) ms"

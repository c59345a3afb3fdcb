#!/usr/bin/env bash
# Reproduces the "Scale-out" figures of docs/benchmarks.md: W1
# (add-pre-chain, 64 clients, P-256 load-test CA) against one log
# frontend, then against two frontends sharing the load (two bench
# processes of 32 clients, one per frontend), with one elected sequencer,
# all separate `ctstage serve` processes on the same MariaDB database and
# an etcd on loopback. Prints each run's throughput, latency and merge
# delay, and the CPU time per accepted submission of every process
# (frontends, sequencer, MariaDB) from /proc. Then the same W1 against the
# stock Trillian + ct_server stack on the same MariaDB, in the same run.
#
# Needs Debian's etcd (apt-get install -y etcd-server), python3, openssl,
# the Go module proxy (for the stock stack) and a
# MariaDB the ctstage user can create databases on (see .ci/run).
# Every load runs for SECONDS (default 18) from a pool of N
# precertificates (default 30000; 60 % of N for each of the two
# frontends' benches), so that those two run side by side for the same
# time; throughput is what was accepted over the span from the first
# submission to the last answer.
# Usage: scripts/bench-scaleout.sh [N] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-30000}" secs="${2:-18}"
work=$(mktemp -d)
db=ctstage_scaleout_$$
storage="mysql://ctstage:ctstage@127.0.0.1:3306/$db"
my=(mariadb -h127.0.0.1 -uctstage -pctstage)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  for d in $("${my[@]}" -N -e "SHOW DATABASES LIKE '${db}%'" 2>/dev/null); do "${my[@]}" -e "DROP DATABASE \`$d\`"; done
  rm -rf "$work"
}
trap cleanup EXIT
"${my[@]}" -e "CREATE DATABASE $db"
go build -o "$work/ctstage" ./cmd/ctstage
bin="$work/ctstage"
"$bin" bench --make-ca "$work/p256" >/dev/null
quiet=(--mgmt-addr= --acme-addr= --dns-addr= --dns-mgmt-addr= --log-level warn)

etcd --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:23791 --advertise-client-urls http://127.0.0.1:23791 \
  --listen-peer-urls http://127.0.0.1:23801 --initial-advertise-peer-urls http://127.0.0.1:23801 \
  --initial-cluster default=http://127.0.0.1:23801 --log-level error >"$work/etcd.log" 2>&1 </dev/null &
for _ in $(seq 100); do curl -fsS http://127.0.0.1:23791/health 2>/dev/null | grep -q true && break; sleep 0.1; done

serve() { # serve NAME ADDR ROLE [ARGS...]: starts a process, waits for /healthz; its PID in $pid
  local name=$1 addr=$2 role=$3
  shift 3
  "$bin" serve --role "$role" --storage "$storage" --keys "$work/keys" --data "$work/data-$name" \
    --log-addr "$addr" --extra-roots "$work/p256/root.pem" "${quiet[@]}" "$@" >/dev/null 2>"$work/$name.log" &
  pid=$!
  for _ in $(seq 300); do curl -sf "http://$addr/healthz" >/dev/null && break; sleep 0.2; done
  curl -sf "http://$addr/healthz" >/dev/null || { cat "$work/$name.log" >&2; exit 1; }
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

serve seq 127.0.0.1:16980 sequencer --election etcd://127.0.0.1:23791
seq_pid=$pid
serve fe1 127.0.0.1:16981 log --log-url http://127.0.0.1:16981
fe1_pid=$pid
maria_pid=$(pidof mariadbd || pidof mysqld)
list=http://127.0.0.1:16981/log.v3.json
shard=$(curl -sf "$list" | python3 -c '
import json, sys, datetime
ll = json.load(sys.stdin)
na = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=90)
for l in ll["operators"][0]["logs"]:
    ti = l["temporal_interval"]
    s = datetime.datetime.fromisoformat(ti["start_inclusive"].replace("Z", "+00:00"))
    e = datetime.datetime.fromisoformat(ti["end_exclusive"].replace("Z", "+00:00"))
    if s <= na < e:
        print(l["url"].rstrip("/").rsplit("/", 1)[1])
')

report_cpu() { # report_cpu ACCEPTED PID_NAME=PID...
  local accepted=$1
  shift
  for pn in "$@"; do
    local name=${pn%%=*} before=${pn#*=}
    local pid=${before%%:*} t0=${before#*:}
    local t1
    t1=$(ticks "$pid")
    awk -v n="$name" -v d="$((t1 - t0))" -v hz="$hz" -v a="$accepted" 'BEGIN { printf "  CPU %-10s %.0f µs per accepted submission\n", n, d / hz * 1e6 / a }'
  done
}

accepted() { grep -hoP 'accepted \K[0-9]+(?= \()' "$@" | awk '{ s += $1 } END { print s }'; }
echo "## $(date -u +%FT%TZ) 1 frontend, 1 sequencer: W1, 64 clients, ${secs} s   (load $(cut -d' ' -f1-3 /proc/loadavg))"
s0=$(ticks "$seq_pid") f0=$(ticks "$fe1_pid") m0=$(ticks "$maria_pid")
"$bin" bench --ca "$work/p256" --log-list "$list" -c 64 -n "$n" --duration "${secs}s" --log-level warn | tee "$work/one.txt"
sleep 2 # the sequencer integrates the tail
report_cpu "$(accepted "$work/one.txt")" "frontend1=$fe1_pid:$f0" "sequencer=$seq_pid:$s0" "mariadb=$maria_pid:$m0"

serve fe2 127.0.0.1:16982 log --log-url http://127.0.0.1:16981
fe2_pid=$pid
pool=$((n * 6 / 10)) # each bench's: 32 clients get half the throughput
echo "## $(date -u +%FT%TZ) 2 frontends, 1 sequencer: W1, 2 x 32 clients, ${secs} s   (load $(cut -d' ' -f1-3 /proc/loadavg))"
s0=$(ticks "$seq_pid") f0=$(ticks "$fe1_pid") g0=$(ticks "$fe2_pid") m0=$(ticks "$maria_pid")
"$bin" bench --ca "$work/p256" --log-list "$list" --log-url "http://127.0.0.1:16981/$shard/" -c 32 -n "$pool" --duration "${secs}s" --log-level warn >"$work/a.txt" &
a=$!
# The same list with frontend 2's URL, so that its bench checks the SCTs too.
curl -sf "$list" | sed 's#127.0.0.1:16981#127.0.0.1:16982#g' >"$work/list2.json"
"$bin" bench --ca "$work/p256" --log-list "$work/list2.json" --log-url "http://127.0.0.1:16982/$shard/" -c 32 -n "$pool" --duration "${secs}s" --log-level warn >"$work/b.txt" &
b=$!
wait "$a" "$b"
echo "--- through frontend 1:"; cat "$work/a.txt"
echo "--- through frontend 2:"; cat "$work/b.txt"
# The two loads on one time line: accepted by both, from the first
# submission of either to the last answer of either.
python3 - "$work/a.txt" "$work/b.txt" <<'EOF2'
import re, sys
spans, acc = [], 0
for f in sys.argv[1:]:
    t = open(f).read()
    acc += int(re.search(r"accepted (\d+) \(", t).group(1))
    a, b = re.search(r"load from (\S+) to (\S+) UTC", t).groups()
    sec = lambda x: sum(float(p) * m for p, m in zip(x.split(":"), (3600, 60, 1)))
    spans.append((sec(a), sec(b)))
lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
print(f"  both loads: {acc} accepted from the first submission to the last answer, {hi - lo:.2f} s: {acc / (hi - lo):.1f}/s"
      f" (starts {abs(spans[0][0] - spans[1][0]):.2f} s apart, ends {abs(spans[0][1] - spans[1][1]):.2f} s apart)")
EOF2
sleep 2
report_cpu "$(accepted "$work/a.txt" "$work/b.txt")" "frontend1=$fe1_pid:$f0" "frontend2=$fe2_pid:$g0" "sequencer=$seq_pid:$s0" "mariadb=$maria_pid:$m0"
kill "$fe1_pid" "$fe2_pid" "$seq_pid"
wait "$fe1_pid" "$fe2_pid" "$seq_pid" 2>/dev/null || true

# The stock stack on the same MariaDB, a database of its own: Trillian's
# log server and log signer (v1.7.2) and ct-go's ct_server (v1.3.2: it
# does not build against Trillian v1.8.0), their default flags but the
# signer's batch, set to ctstage's 4,096.
stock="$work/stock"
GOBIN="$stock" go install github.com/google/trillian/cmd/trillian_log_server@v1.7.2 \
  github.com/google/trillian/cmd/trillian_log_signer@v1.7.2 github.com/google/trillian/cmd/createtree@v1.7.2
GOBIN="$stock" go install github.com/google/certificate-transparency-go/trillian/ctfe/ct_server@v1.3.2
"${my[@]}" -e "CREATE DATABASE ${db}_stock"
"${my[@]}" "${db}_stock" <"$(go env GOMODCACHE)/github.com/google/trillian@v1.7.2/storage/mysql/schema/storage.sql"
uri="ctstage:ctstage@tcp(127.0.0.1:3306)/${db}_stock"
"$stock/trillian_log_server" --mysql_uri "$uri" --rpc_endpoint 127.0.0.1:16990 --http_endpoint 127.0.0.1:16991 >"$work/tls.log" 2>&1 &
tls_pid=$!
"$stock/trillian_log_signer" --mysql_uri "$uri" --force_master --batch_size 4096 \
  --rpc_endpoint 127.0.0.1:16992 --http_endpoint 127.0.0.1:16993 >"$work/signer.log" 2>&1 &
signer_pid=$!
tree=""
for _ in $(seq 100); do tree=$("$stock/createtree" --admin_server 127.0.0.1:16990 2>>"$work/createtree.log") && break; sleep 0.2; done
[ -n "$tree" ] || { cat "$work/createtree.log" "$work/tls.log" >&2; exit 1; }
openssl ecparam -name prime256v1 -genkey -noout -out "$work/stock-key.pem"
openssl ec -in "$work/stock-key.pem" -pubout -outform DER -out "$work/stock-pub.der" 2>/dev/null
# ct_server's PEMKeyFile insists on a password.
openssl ec -in "$work/stock-key.pem" -aes-128-cbc -passout pass:stock -out "$work/stock-key-enc.pem" 2>/dev/null
cat >"$work/ct_server.cfg" <<EOF
config {
  log_id: $tree
  prefix: "stock"
  roots_pem_file: "$work/p256/root.pem"
  private_key {
    [type.googleapis.com/keyspb.PEMKeyFile] {
      path: "$work/stock-key-enc.pem"
      password: "stock"
    }
  }
}
EOF
"$stock/ct_server" --log_config "$work/ct_server.cfg" --log_rpc_server 127.0.0.1:16990 --http_endpoint 127.0.0.1:16994 >"$work/ct_server.log" 2>&1 &
ct_pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:16994/stock/ct/v1/get-sth >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:16994/stock/ct/v1/get-sth >/dev/null || { cat "$work/ct_server.log" >&2; exit 1; }
python3 - "$work/stock-pub.der" >"$work/stock-list.json" <<'PY'
import base64, hashlib, json, sys
der = open(sys.argv[1], "rb").read()
print(json.dumps({"version": "stock", "log_list_timestamp": "2026-01-01T00:00:00Z", "operators": [{
    "name": "stock", "email": ["stock@example.com"], "logs": [{
        "description": "stock Trillian + ct_server", "log_id": base64.b64encode(hashlib.sha256(der).digest()).decode(),
        "key": base64.b64encode(der).decode(), "url": "http://127.0.0.1:16994/stock/", "mmd": 86400,
        "state": {"usable": {"timestamp": "2026-01-01T00:00:00Z"}}}]}]}))
PY
echo "## $(date -u +%FT%TZ) stock stack (ct_server, trillian_log_server, trillian_log_signer): W1, 64 clients, ${secs} s   (load $(cut -d' ' -f1-3 /proc/loadavg))"
c0=$(ticks "$ct_pid") l0=$(ticks "$tls_pid") s0=$(ticks "$signer_pid") m0=$(ticks "$maria_pid")
"$bin" bench --ca "$work/p256" --log-list "$work/stock-list.json" --log-url http://127.0.0.1:16994/stock/ -c 64 -n "$n" --duration "${secs}s" --log-level warn | tee "$work/stock.txt" ||
  echo "  (the bench failed some submissions to the stock stack: see above)"
sleep 2
report_cpu "$(accepted "$work/stock.txt")" "ct_server=$ct_pid:$c0" "log_server=$tls_pid:$l0" "log_signer=$signer_pid:$s0" "mariadb=$maria_pid:$m0"
echo "machine: $(nproc) cores, $(go version), $(uname -r)"

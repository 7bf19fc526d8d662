#!/usr/bin/env bash
# Times a durable bulk import over gRPC with release binaries, server and CLI pinned to
# different cores, on a fresh data directory each run; then the same file again (every
# record unchanged). Prints one line per run and the medians.
#
#   bench/import.sh [FILE]         default FILE: ../shared/data/phenopacket-store.jsonl.gz
#   RUNS=5 PORT=50561 bench/import.sh
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=${1:-../shared/data/phenopacket-store.jsonl.gz}
runs=${RUNS:-5}
port=${PORT:-50561}
server_core=${SERVER_CORE:-1}
client_core=${CLIENT_CORE:-0}
[ -f "$corpus" ] || { echo "no such file: $corpus" >&2; exit 1; }
for tool in /usr/bin/time taskset python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool (Debian: apt-get install time util-linux python3)" >&2; exit 1; }
done

cargo build --release --locked -q -p casereg-server -p casereg-client
bin=target/release
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "file: $corpus ($(stat -c %s "$corpus") bytes); server on core $server_core, CLI on core $client_core; $runs runs"
echo "run  records  import_s  records_per_s  reimport_s  server_peak_rss_kib  cli_peak_rss_kib  data_dir_kib"
for run in $(seq 1 "$runs"); do
    rm -rf "$work/data"
    taskset -c "$server_core" "$bin/casereg-server" --data-dir "$work/data" \
        --listen "127.0.0.1:$port" --log-format json 2>"$work/server.log" &
    server=$!
    for _ in $(seq 1 100); do
        "$bin/casereg" --server "http://127.0.0.1:$port" health >/dev/null 2>&1 && break
        sleep 0.1
    done
    /usr/bin/time -f "%e %M" -o "$work/time" taskset -c "$client_core" \
        "$bin/casereg" --server "http://127.0.0.1:$port" --format json import "$corpus" >"$work/report.json" 2>>"$work/cli.log"
    read -r seconds cli_rss <"$work/time"
    created=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["rejected"]==0, r["rejected"]; print(r["created"])' "$work/report.json")
    /usr/bin/time -f "%e" -o "$work/time2" taskset -c "$client_core" \
        "$bin/casereg" --server "http://127.0.0.1:$port" --format json import "$corpus" >"$work/report2.json" 2>>"$work/cli.log"
    reimport=$(cat "$work/time2")
    server_rss=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
    kill -TERM "$server"; wait "$server" || true
    disk=$(du -sk "$work/data" | cut -f1)
    rate=$(python3 -c "print(round($created / $seconds))")
    echo "$run  $created  $seconds  $rate  $reimport  $server_rss  $cli_rss  $disk" | tee -a "$work/rows"
done
echo "median import_s: $(awk '{print $3}' "$work/rows" | median)  records_per_s: $(awk '{print $4}' "$work/rows" | median)  reimport_s: $(awk '{print $5}' "$work/rows" | median)  server_peak_rss_kib: $(awk '{print $6}' "$work/rows" | median)  cli_peak_rss_kib: $(awk '{print $7}' "$work/rows" | median)"

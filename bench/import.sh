#!/usr/bin/env bash
# Times a durable bulk import over gRPC with release binaries, server and CLI pinned to
# different cores, on a fresh data directory each run; then the same file again (every
# record unchanged). Prints one line per run and the medians; server_cpu_s is the server's
# user and system CPU time for the first import (from /proc).
#
#   bench/import.sh [FILE]         default FILE: ../shared/data/phenopacket-store.jsonl.gz
#   RUNS=5 PORT=50561 bench/import.sh
#   SERVER_CORE=0,1 CLIENT_CORE=0,1 bench/import.sh     both processes on both cores
#   BASELINE=DIR bench/import.sh   alternate each run with the casereg-server and casereg
#                                  binaries in DIR (another build), and give medians for
#                                  each build: this host's load changes from minute to
#                                  minute, so two builds are compared in the same minutes
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=${1:-../shared/data/phenopacket-store.jsonl.gz}
runs=${RUNS:-5}
port=${PORT:-50561}
server_core=${SERVER_CORE:-1}
client_core=${CLIENT_CORE:-0}
baseline=${BASELINE:-}
[ -f "$corpus" ] || { echo "no such file: $corpus" >&2; exit 1; }
for tool in /usr/bin/time taskset python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool (Debian: apt-get install time util-linux python3)" >&2; exit 1; }
done
if [ -n "$baseline" ]; then
    for b in casereg-server casereg; do
        [ -x "$baseline/$b" ] || { echo "BASELINE=$baseline has no executable $b" >&2; exit 1; }
    done
fi

cargo build --release --locked -q -p casereg-server -p casereg-cli
builds=(target/release)
[ -n "$baseline" ] && builds+=("$baseline")
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

# User plus system CPU time of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat;
# the command name, field 2, is the only one that can hold spaces, and ends with ")").
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
ticks=$(getconf CLK_TCK)
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "file: $corpus ($(stat -c %s "$corpus") bytes); server on core $server_core, CLI on core $client_core; $runs runs"
echo "run  records  import_s  records_per_s  reimport_s  server_peak_rss_kib  cli_peak_rss_kib  data_dir_kib  server_cpu_s${baseline:+  build}"
for run in $(seq 1 "$runs"); do
    for bin in "${builds[@]}"; do
        rm -rf "$work/data"
        taskset -c "$server_core" "$bin/casereg-server" --data-dir "$work/data" \
            --listen "127.0.0.1:$port" --log-format json 2>"$work/server.log" &
        server=$!
        for _ in $(seq 1 100); do
            "$bin/casereg" --server "http://127.0.0.1:$port" health >/dev/null 2>&1 && break
            sleep 0.1
        done
        cpu_before=$(cpu_ticks "$server")
        /usr/bin/time -f "%e %M" -o "$work/time" taskset -c "$client_core" \
            "$bin/casereg" --server "http://127.0.0.1:$port" --format json import "$corpus" >"$work/report.json" 2>>"$work/cli.log"
        cpu_after=$(cpu_ticks "$server")
        read -r seconds cli_rss <"$work/time"
        created=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["rejected"]==0, r["rejected"]; print(r["created"])' "$work/report.json")
        /usr/bin/time -f "%e" -o "$work/time2" taskset -c "$client_core" \
            "$bin/casereg" --server "http://127.0.0.1:$port" --format json import "$corpus" >"$work/report2.json" 2>>"$work/cli.log"
        reimport=$(cat "$work/time2")
        server_rss=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
        kill -TERM "$server"; wait "$server" || true
        disk=$(du -sk "$work/data" | cut -f1)
        rate=$(python3 -c "print(round($created / $seconds))")
        server_cpu=$(python3 -c "print(round(($cpu_after - $cpu_before) / $ticks, 2))")
        echo "$run  $created  $seconds  $rate  $reimport  $server_rss  $cli_rss  $disk  $server_cpu${baseline:+  $bin}" | tee -a "$work/rows"
    done
done
for bin in "${builds[@]}"; do
    if [ -n "$baseline" ]; then
        awk -v build="$bin" '$NF == build' "$work/rows" > "$work/these"
        label="$bin "
    else
        cp "$work/rows" "$work/these"
        label=""
    fi
    echo "${label}median import_s: $(awk '{print $3}' "$work/these" | median)  records_per_s: $(awk '{print $4}' "$work/these" | median)  reimport_s: $(awk '{print $5}' "$work/these" | median)  server_peak_rss_kib: $(awk '{print $6}' "$work/these" | median)  cli_peak_rss_kib: $(awk '{print $7}' "$work/these" | median)  server_cpu_s: $(awk '{print $9}' "$work/these" | median)"
done

#!/usr/bin/env bash
# Three centers and a coordinator on this machine, with the project's binaries only.
#
#   scripts/network.sh [CORPUS.jsonl.gz]     (default: ../shared/data/phenopacket-store.jsonl.gz,
#                                             else the sample in tests/data)
#
# The corpus is split three ways by a throw-away registry (export --where), each part goes
# to its own center, and the coordinator (which holds no cases) asks the network. Each
# center has its own principals file; the coordinator holds a count-level peer token for
# each. Everything runs on 127.0.0.1 and is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=${1:-../shared/data/phenopacket-store.jsonl.gz}
[ -e "$corpus" ] || corpus=tests/data/phenopacket-store-sample.jsonl.gz
cargo build -q --release --locked -p casereg-server -p casereg-cli
server=target/release/casereg-server
cli=target/release/casereg
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Starts a server on 127.0.0.1:PORT with the given flags and waits until it serves.
start() {
    local name=$1 port=$2
    shift 2
    "$server" --listen "127.0.0.1:$port" --data-dir "$work/$name" --center "$name" "$@" \
        2>"$work/$name.log" &
    pids+=($!)
    for _ in $(seq 100); do
        "$cli" --server "http://127.0.0.1:$port" health >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "$name did not start; its log:" >&2
    cat "$work/$name.log" >&2
    exit 1
}
add() { "$server" principal add --principals "$1" --name "$2" --center "$3" --role "$4" 2>/dev/null; }

echo "== splitting $corpus three ways"
start staging 50070
"$cli" --server http://127.0.0.1:50070 import "$corpus" >/dev/null
"$cli" --server http://127.0.0.1:50070 export --where 'sex:female' -o "$work/a.jsonl.gz"
"$cli" --server http://127.0.0.1:50070 export --where 'sex:male' -o "$work/b.jsonl.gz"
"$cli" --server http://127.0.0.1:50070 export --where 'not (sex:female or sex:male)' \
    -o "$work/c.jsonl.gz"

echo "== three centers"
peers=()
port=50071
for center in hospital-a hospital-b hospital-c; do
    part="$work/${center#hospital-}.jsonl.gz"
    curator=$(add "$work/$center.toml" curator "$center" curator)
    peer_token=$(add "$work/$center.toml" coordinator network peer)
    start "$center" "$port" --principals "$work/$center.toml"
    CASEREG_TOKEN=$curator "$cli" --server "http://127.0.0.1:$port" import "$part" >/dev/null
    echo "$center: $(CASEREG_TOKEN=$curator "$cli" --server "http://127.0.0.1:$port" count) cases"
    peers+=(--peer "$center=http://127.0.0.1:$port" --peer-token "$center=$peer_token")
    port=$((port + 1))
done

echo "== the coordinator"
admin=$(add "$work/network.toml" admin network admin)
start network 50074 --principals "$work/network.toml" "${peers[@]}"
export CASEREG_TOKEN=$admin
network=(--server http://127.0.0.1:50074)

set -x
"$cli" "${network[@]}" count --network 'phenotype:"Seizure"'
"$cli" "${network[@]}" count --network 'phenotype:HP:0001250 and onset<1y'
"$cli" "${network[@]}" stats --network --by phenotype:1 --where 'phenotype:HP:0001250' --top 8
{ set +x; } 2>/dev/null

echo "== hospital-b stops; the network answers without it and says so"
kill "${pids[2]}"
"$cli" "${network[@]}" count --network 'phenotype:HP:0001250'

#!/usr/bin/env bash
# The benchmark suite from one command: builds the release binaries, then runs
# `casereg-bench suite` — casereg's server against PostgreSQL (when installed) and against
# the gRPC floor, workloads W0–W7, on the same synthetic cases — and prints the markdown
# report (also written to the --out file).
#
#   bench/suite.sh                                   # 100,000 and 1,000,000 cases
#   bench/suite.sh --cases 100000                    # one size
#   bench/suite.sh --smoke                           # 10,000 cases: does everything still work?
#
# The servers run under `taskset -c 1`, the clients on CPU 0 (--server-cpus, --client-cpus).
# Needs taskset (util-linux); PostgreSQL's pg_ctl and initdb on PATH or under
# /usr/lib/postgresql (Debian: apt-get install postgresql), else its columns stay empty.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p casereg-server -p casereg-bench
mkdir -p bench/results
exec target/release/casereg-bench suite --out "bench/results/suite-$(date -u +%Y-%m-%d).md" "$@"

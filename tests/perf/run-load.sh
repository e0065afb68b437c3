#!/usr/bin/env bash
# Runs the load generator against a stack on the local PostgreSQL (127.0.0.1:5432, user
# postgres, synchronous_commit on): fresh databases, release binaries, all processes on
# 127.0.0.1, stopped at the end. Usage: tests/perf/run-load.sh [loadgen flags...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

cargo build --release --locked -p e2e --bins
bin=${CARGO_TARGET_DIR:-target}/release
pg=postgres://postgres@127.0.0.1:5432
log_dir=$(mktemp -d)

for name in patient therapist matching communication saga_store; do
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS perf_$name" postgres
    psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE perf_$name" postgres
done
echo "synchronous_commit: $(psql -tA -h 127.0.0.1 -U postgres -c 'SHOW synchronous_commit' postgres)"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
port=8081
for name in patient therapist matching communication; do
    RUST_LOG=warn "$bin/e2e-stack" participant "$name" --database-url "$pg/perf_$name" \
        --bind-addr "127.0.0.1:$port" >"$log_dir/$name.log" 2>&1 &
    pids+=($!)
    port=$((port + 1))
done
RUST_LOG=warn DATABASE_URL="$pg/perf_saga_store" REPLICA_ID=perf \
    "$bin/e2e-stack" serve >"$log_dir/coordinator.log" 2>&1 &
pids+=($!)

for port in 8080 8081 8082 8083 8084; do
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
        sleep 0.2
    done
done

"$bin/loadgen" "$@"
echo "logs: $log_dir"

#!/usr/bin/env bash
# Runs the load generator against a stack on the local PostgreSQL (127.0.0.1:5432, user
# postgres, synchronous_commit on): fresh databases, release binaries, all processes on
# 127.0.0.1, stopped at the end. The coordinator listens on BASE_PORT (default 8080) and
# the patient, therapist, matching and communication services on the next four ports.
# Usage: [BASE_PORT=9080] tests/perf/run-load.sh [loadgen flags...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

cargo build --release -p e2e --bins
bin=${CARGO_TARGET_DIR:-target}/release
pg=postgres://postgres@127.0.0.1:5432
log_dir=$(mktemp -d)

for name in patient therapist matching communication saga_store; do
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS perf_$name" postgres
    psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE perf_$name" postgres
done
echo "synchronous_commit: $(psql -tA -h 127.0.0.1 -U postgres -c 'SHOW synchronous_commit' postgres)"

base=${BASE_PORT:-8080}
url() { echo "http://127.0.0.1:$((base + $1))"; }

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
offset=1
for name in patient therapist matching communication; do
    extra=()
    [ "$name" = communication ] && extra=(--coordinator-url "$(url 0)")
    RUST_LOG=warn "$bin/e2e-stack" participant "$name" "${extra[@]}" --database-url "$pg/perf_$name" \
        --bind-addr "127.0.0.1:$((base + offset))" >"$log_dir/$name.log" 2>&1 &
    pids+=($!)
    offset=$((offset + 1))
done
RUST_LOG=warn DATABASE_URL="$pg/perf_saga_store" REPLICA_ID=perf BIND_ADDR="127.0.0.1:$base" \
    PATIENT_SERVICE_URL="$(url 1)" THERAPIST_SERVICE_URL="$(url 2)" \
    MATCHING_SERVICE_URL="$(url 3)" \
    "$bin/e2e-stack" serve >"$log_dir/coordinator.log" 2>&1 &
pids+=($!)

for port in $base $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)); do
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
        sleep 0.2
    done
done

"$bin/loadgen" --coordinator-url "$(url 0)" --patient-url "$(url 1)" \
    --matching-url "$(url 3)" "$@"
echo "logs: $log_dir"

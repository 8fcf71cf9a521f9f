#!/usr/bin/env bash
# What a Redis outage costs the api: GET /games/{id} under load with wrk, for
#   up        Redis reachable (reads are cache hits),
#   down      REDIS_URL pointing at a port nothing listens on,
#   bypassed  the cache turned off on purpose (CACHE_TTL_SECONDS=0), every
#             read from PostgreSQL: the baseline "down" is measured against.
# Prints requests/s, p50 and p99 of each, and the /readyz status during "down"
# (acceptance in issue 9: down keeps p99 <= 10 ms, >= 50% of bypassed's
# throughput, and /readyz 200).
#
# Needs wrk, psql and curl; builds the release api first (a no-op when fresh),
# with PostgreSQL and RabbitMQ reachable at DATABASE_URL and RABBITMQ_URL
# (default: the local servers the tests use) and Redis at REDIS_URL for "up".
# Each run uses a fresh database and its own Redis key prefix; nothing shared
# is stopped or flushed.
#
# Usage: scripts/bench-cache-outage.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-2}
PORT=${BENCH_PORT:-18080}
SERVER=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${REDIS_URL:-redis://127.0.0.1:6379}
RABBITMQ=${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
# A port nothing listens on: Redis "down" as a stopped server looks.
DEAD_REDIS=${BENCH_DEAD_REDIS_URL:-redis://127.0.0.1:1}

for tool in wrk psql curl; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
# Always: a stale binary from an older checkout would measure old code.
cargo build --release --locked -p api

DB=gamenight_bench_$(date +%s)_$$
psql -q "$SERVER" -c "CREATE DATABASE $DB"
DATABASE=${SERVER%/*}/$DB
API_PID=
cleanup() { [[ -n $API_PID ]] && kill "$API_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# start_api <REDIS_URL> <CACHE_TTL_SECONDS>: the api on $PORT, once it answers.
start_api() {
  DATABASE_URL=$DATABASE REDIS_URL=$1 RABBITMQ_URL=$RABBITMQ \
    CACHE_TTL_SECONDS=$2 REDIS_KEY_PREFIX="gamenight-bench-$$:" \
    API_LISTEN_ADDR=127.0.0.1:$PORT OTEL_SDK_DISABLED=true RUST_LOG=warn \
    target/release/api >/dev/null 2>&1 &
  API_PID=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return
    sleep 0.1
  done
  echo "error: the api did not start" >&2
  exit 1
}

stop_api() { kill "$API_PID"; wait "$API_PID" 2>/dev/null || true; API_PID=; }

# run <name> <REDIS_URL> <CACHE_TTL_SECONDS>
run() {
  start_api "$2" "$3"
  local id out rps p50 p99 ready
  id=$(curl -fs -X POST "http://127.0.0.1:$PORT/games" -H 'content-type: application/json' \
    -d '{"title":"Bench night","host":"ada","scheduled_at":"2035-01-04T19:00:00Z","max_players":4,"reminder_minutes":60}' |
    sed -E 's/.*"id":"([^"]+)".*/\1/')
  # Warm up: fill the cache, open the breaker, fill the pool.
  wrk -t1 -c4 -d1s "http://127.0.0.1:$PORT/games/$id" >/dev/null
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/games/$id")
  ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  if grep -q 'Non-2xx' <<<"$out"; then echo "warning: $1 had non-2xx answers" >&2; fi
  printf '%-9s %12s %10s %10s %8s\n' "$1" "$rps" "$p50" "$p99" "$ready"
  stop_api
}

printf 'wrk -t%s -c%s -d%ss, GET /games/{id}\n' "$THREADS" "$CONNECTIONS" "$DURATION"
printf '%-9s %12s %10s %10s %8s\n' run 'requests/s' p50 p99 readyz
run up "$REDIS" 60
run down "$DEAD_REDIS" 60
run bypassed "$REDIS" 0

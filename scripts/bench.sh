#!/usr/bin/env bash
# The benchmark (docs/PERFORMANCE.md, "Rerun it"): builds the release `bench` tool and
# runs it. Options go to the tool (`scripts/bench.sh --help` lists them):
#
#   scripts/bench.sh [overhead|peers|pipeline|discord|all] [--quick] [--markdown FILE] ...
#
#   overhead  the api under wrk with telemetry off, metrics only, on,
#             collector down, collector stuck and profiling, for
#             GET /games/{id} and POST /games (--configs picks some)
#   peers     the cached GET /games/{id} with telemetry off, on, spans
#             only, and under tower-http's TraceLayer and
#             axum-tracing-opentelemetry instead (about 6 minutes; not in all)
#   pipeline  POST /games at stepped rates through api, worker and bot to a
#             local webhook: create→webhook latency, lost, duplicates
#   discord   a backlog of 500 announcements against a webhook limited to 5
#             posts per 2 s, by one bot and by two: share of the permitted
#             rate reached, posts answered 429 (about 7 minutes)
#   all       all three (the default, about 27 minutes; --quick: 2-3 minutes)
#
# Uses the PostgreSQL, Redis and RabbitMQ at DATABASE_URL, REDIS_URL and
# RABBITMQ_URL (default: the local servers the tests use), on a database,
# key prefix and queues of its own per run, all removed at the end. Installs
# wrk with apt-get when it is missing. Not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: $*" >&2; exit 2; }

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"
command -v taskset >/dev/null || die "taskset not found: install util-linux"
if ! command -v wrk >/dev/null; then
  command -v apt-get >/dev/null || die "wrk not found, and no apt-get to install it: install wrk"
  sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "wrk not found: installing it (apt-get install -y wrk)"
  $sudo apt-get install -y wrk >/dev/null || {
    $sudo apt-get update >/dev/null && $sudo apt-get install -y wrk >/dev/null
  } || die "cannot install wrk with apt-get: install it yourself"
fi

# Built as the images are (Dockerfile): without debug info, which the
# profiler would otherwise read and keep in memory.
CARGO_PROFILE_RELEASE_DEBUG=false cargo build --release --locked -p bench
BENCH_COMMAND="scripts/bench.sh $*" exec target/release/bench "$@"

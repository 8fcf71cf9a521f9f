#!/usr/bin/env bash
# The fault-injection run (docs/TESTING.md, "Fault-injection suite"): builds the
# release binary and runs it. Options go to the binary:
#
#   scripts/chaos.sh [--debug-build] [--duration 40s] [--rate 50] [--short] [--report-only]
#
# --debug-build (first, if given) builds and runs the debug binary instead:
# the test command's short run, which reuses what the tests compiled.
# It starts its own PostgreSQL, Redis and RabbitMQ on free ports in a temp
# directory (never the shared servers on 5432/6379/5672), and removes them
# at the end. Exit 0: every acceptance criterion met (or --report-only);
# 1: a criterion broken; 2: the run itself failed.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found: install Redis" >&2; exit 2; }
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null \
  || { echo "error: PostgreSQL's initdb not found: install PostgreSQL" >&2; exit 2; }
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null \
  || { echo "error: rabbitmq-server not found: install RabbitMQ" >&2; exit 2; }

build=(--release -p chaos) dir=release
if [ "${1:-}" = --debug-build ]; then
  shift
  # With the workspace's tests, so that the dependencies get the features
  # they have in `cargo test --workspace` and are not built again.
  build=(--workspace --bin chaos --tests) dir=debug
fi
cargo build "${build[@]}" --locked
exec "target/$dir/chaos" "$@"

#!/usr/bin/env bash
# The project's one test command (README "Test", and what CI runs):
# checks the toolchain and the three servers the tests talk to, starting a
# server when this machine can, then runs fmt, clippy and the whole suite.
#
# Server addresses come from DATABASE_URL, REDIS_URL and RABBITMQ_URL when
# set, else the local defaults the tests use too.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

step "toolchain"
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) and rerun"
cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing: run 'rustup component add rustfmt'"
cargo clippy --version >/dev/null 2>&1 || die "clippy missing: run 'rustup component add clippy'"
cargo --version

# host and port of a URL such as postgres://user:pass@host:5432/db
host_port() {
  local url=$1 default_port=$2 rest
  rest=${url#*://}
  rest=${rest##*@}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  if [[ $rest == *:* ]]; then echo "${rest%:*} ${rest##*:}"; else echo "$rest $default_port"; fi
}

reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# wait_for NAME HOST PORT START_COMMAND...: check, else try to start, else fail.
wait_for() {
  local name=$1 host=$2 port=$3
  shift 3
  if reachable "$host" "$port"; then
    echo "$name: reachable at $host:$port"
    return
  fi
  case $host in
    127.0.0.1 | localhost | ::1) ;;
    *) die "$name is not reachable at $host:$port, and it is not local so this script cannot start it" ;;
  esac
  if ! command -v "$1" >/dev/null; then
    die "$name is not reachable at $host:$port and '$1' is not installed; start $name yourself (see README, 'Running the tests')"
  fi
  echo "$name: not reachable at $host:$port, starting it: $*"
  "$@" >/dev/null 2>&1 || die "$name: '$*' failed; start $name yourself and rerun"
  local deadline=$((SECONDS + 90))
  until reachable "$host" "$port"; do
    ((SECONDS < deadline)) || die "$name started but is still not reachable at $host:$port after 90 s"
    sleep 1
  done
  echo "$name: reachable at $host:$port"
}

step "servers"
read -r pg_host pg_port < <(host_port "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" 5432)
read -r redis_host redis_port < <(host_port "${REDIS_URL:-redis://127.0.0.1:6379}" 6379)
read -r amqp_host amqp_port < <(host_port "${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}" 5672)
pg_cluster=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
wait_for PostgreSQL "$pg_host" "$pg_port" pg_ctlcluster --skip-systemctl-redirect "${pg_cluster:-15}" main start
wait_for Redis "$redis_host" "$redis_port" redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" --appendonly no
wait_for RabbitMQ "$amqp_host" "$amqp_port" rabbitmq-server -detached

step "compose files against the Compose specification"
# check-jsonschema carries the Compose specification's JSON schema. It is
# installed once into target/, inside the clone.
venv=target/tools/venv
if [ ! -x "$venv/bin/check-jsonschema" ]; then
  command -v python3 >/dev/null || die "python3 not found: it runs check-jsonschema for the compose files"
  python3 -m venv "$venv" || die "cannot create a Python venv in $venv (install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check check-jsonschema==0.39.0 \
    || die "cannot install check-jsonschema from PyPI"
fi
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml docker-compose.base.yml

# Debian's Prometheus tools, unpacked into target/ rather than installed:
# installing the packages would start their servers.
prometheus_tools=target/tools/prometheus/usr/bin
debian_tool() { # debian_tool PACKAGE BINARY WHAT-FOR
  [ -x "$prometheus_tools/$2" ] && return
  command -v apt-get >/dev/null || die "apt-get not found: it fetches $2 (Debian's $1) to $3"
  mkdir -p target/tools/prometheus
  (cd target/tools && apt-get download "$1" >/dev/null 2>&1) \
    || { apt-get update >/dev/null && (cd target/tools && apt-get download "$1" >/dev/null 2>&1); } \
    || die "cannot download Debian's $1 (for $2, to $3)"
  dpkg-deb -x target/tools/"$1"_*.deb target/tools/prometheus
  rm -f target/tools/"$1"_*.deb
}

step "the alerting rules, with promtool"
debian_tool prometheus promtool "check grafana/alerts"
"$prometheus_tools/promtool" check rules grafana/alerts/*.yml

step "the guides' TraceQL and LogQL"
# Parsed with the grammars of Grafana's own query editors, installed once
# into target/ (the PromQL is checked by cargo test).
lezer=target/tools/lezer
if [ ! -d "$lezer/node_modules/@grafana/lezer-logql" ]; then
  command -v npm >/dev/null || die "npm not found (Node.js): it installs the grammars that check the guides' TraceQL and LogQL"
  npm install --silent --no-audit --no-fund --prefix "$lezer" \
    @grafana/lezer-traceql@1.0.0 @grafana/lezer-logql@0.3.0 @lezer/lr@1.4.12 \
    || die "cannot install the TraceQL and LogQL grammars from npm"
fi
command -v node >/dev/null || die "node not found: install Node.js to check the guides' TraceQL and LogQL"
NODE_PATH="$lezer/node_modules" node scripts/check-queries.cjs README.md grafana-alloy/*.md grafana/*.md grafana/dashboards/*.json

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "the API against its OpenAPI document, with schemathesis"
# Every check and every phase (examples, coverage, fuzzing, stateful):
# requests generated from /openapi.json, valid and invalid, against a real
# api on a database of its own. The document must list every status a route
# answers, and the server must accept what the schemas admit and refuse
# what they do not. scripts/schemathesis_hooks.py explains the one rule
# JSON Schema cannot state (a game is scheduled in the future).
if [ ! -x "$venv/bin/st" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5 \
    || die "cannot install schemathesis from PyPI"
fi
command -v psql >/dev/null || die "psql not found: it creates the database schemathesis' api runs on"
cargo build --locked --quiet -p api
admin_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
contract_db="gamenight_contract_$$"
api_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
psql -q "$admin_url" -c "CREATE DATABASE $contract_db" || die "cannot create the database $contract_db"
contract_cleanup() {
  [ -n "${api_pid:-}" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $contract_db WITH (FORCE)" >/dev/null || true
}
trap contract_cleanup EXIT
DATABASE_URL="${admin_url%/*}/$contract_db" \
  REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" \
  RABBITMQ_URL="${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}" \
  API_LISTEN_ADDR="127.0.0.1:$api_port" REDIS_KEY_PREFIX="$contract_db:" \
  EVENTS_EXCHANGE=gamenight.contract.events OTEL_SDK_DISABLED=true \
  LOG_FORMAT=json RUST_LOG=warn \
  target/debug/api >target/contract-api.log 2>&1 &
api_pid=$!
deadline=$((SECONDS + 60))
until API_LISTEN_ADDR="127.0.0.1:$api_port" target/debug/api healthcheck >/dev/null 2>&1; do
  kill -0 "$api_pid" 2>/dev/null || die "the api stopped before answering (target/contract-api.log)"
  ((SECONDS < deadline)) || die "the api did not answer within 60 s (target/contract-api.log)"
  sleep 1
done
PYTHONPATH=scripts SCHEMATHESIS_HOOKS=schemathesis_hooks \
  "$venv/bin/st" run "http://127.0.0.1:$api_port/openapi.json" \
  --checks all --phases examples,coverage,fuzzing,stateful --no-color \
  || die "schemathesis found the API and its OpenAPI document disagreeing (above: each case, and how to replay it)"
contract_cleanup
trap - EXIT

step "scraped series against the real exporters"
# The exporters Alloy embeds, as Debian packages them, run against the local
# PostgreSQL and Redis, and RabbitMQ's own endpoint (its rabbitmq_prometheus
# plugin, enabled here when the server is local): every series a keep-list,
# dashboard, alert or guide names must be one they export.
debian_tool prometheus-postgres-exporter prometheus-postgres-exporter "read PostgreSQL's series"
debian_tool prometheus-redis-exporter prometheus-redis-exporter "read Redis' series"
if command -v rabbitmq-plugins >/dev/null; then
  rabbitmq-plugins enable --quiet rabbitmq_prometheus >/dev/null \
    || die "cannot enable RabbitMQ's rabbitmq_prometheus plugin"
fi
GAMENIGHT_EXPORTERS="$PWD/$prometheus_tools" \
  cargo test --locked -p stack-tests --test exporters -- --ignored

step "fault-injection run (short)"
# Alone, after the suite: it starts private servers of its own and
# restarts them, so it never disturbs the shared ones the tests use.
scripts/chaos.sh --short

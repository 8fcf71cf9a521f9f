#!/usr/bin/env bash
# The project's one test command (README "Running the tests", and what CI runs):
# checks the toolchain and the three servers the tests talk to, starting a
# server when this machine can, then runs fmt, clippy and the whole suite.
#
# Server addresses come from DATABASE_URL, REDIS_URL and RABBITMQ_URL when
# set, else the local defaults the tests use too.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it began, in seconds since the start: where a run's
# time goes (CI must stay well under 30 minutes).
step() { printf '\n==> %s (at %d s)\n' "$*" "$SECONDS"; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

step "toolchain"
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) and rerun"
cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing: run 'rustup component add rustfmt'"
cargo clippy --version >/dev/null 2>&1 || die "clippy missing: run 'rustup component add clippy'"
cargo --version

# shellcheck source=scripts/servers.sh
source scripts/servers.sh
check_servers

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
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml docker-compose.base.yml docker-compose.sampling.yml

# The Kubernetes checks (testing/stack-tests/tests/kubernetes.rs) render the
# overlays with kubectl's kustomize and validate them with
# kubernetes-validate, installed beside check-jsonschema.
command -v "${KUBECTL:-kubectl}" >/dev/null \
  || die "kubectl not found: it renders deploy/kubernetes (https://kubernetes.io/docs/tasks/tools/), or set KUBECTL to its path"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 \
    || die "cannot install kubernetes-validate from PyPI"
fi

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
# Their unit tests: series in, alerts expected out (grafana/alert-tests).
"$prometheus_tools/promtool" test rules grafana/alert-tests/*.yml

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
NODE_PATH="$lezer/node_modules" node scripts/check-queries.cjs README.md docs/*.md grafana-alloy/*.md grafana/*.md grafana/dashboards/*.json

step "Chromium, for the docs page's browser test"
# services/api/tests/api/docs_page.rs drives Debian's chromium through
# chromium-driver (CHROMIUM and CHROMEDRIVER name others). Installed when
# missing; a package install starts no server.
if [ -z "${CHROMEDRIVER:-}" ] && ! command -v chromedriver >/dev/null; then
  command -v apt-get >/dev/null \
    || die "chromedriver not found and no apt-get to install it: install Chromium and ChromeDriver, or set CHROMIUM and CHROMEDRIVER"
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  apt_install() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
  apt_install || { "${sudo[@]}" apt-get update -qq && apt_install; } \
    || die "cannot install Debian's chromium and chromium-driver (the docs page's browser test needs them)"
fi
"${CHROMEDRIVER:-chromedriver}" --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the telemetry crate alone: each feature, and its docs"
# What people copy must build with any one of its features, and its docs
# (every public item documented) must render without a warning.
# cargo-hack is installed once into target/tools, inside the clone.
if [ ! -x target/tools/bin/cargo-hack ]; then
  cargo install --quiet --locked --root target/tools cargo-hack@0.6.46 \
    || die "cannot install cargo-hack from crates.io"
fi
PATH="$PWD/target/tools/bin:$PATH" cargo hack --each-feature --locked -p telemetry check --all-targets
RUSTDOCFLAGS="-D warnings" cargo doc --locked -p telemetry --no-deps --all-features

step "leftovers of killed test runs"
# Tests drop the databases and delete the exchanges and queues they make,
# pass or fail; a run that is killed cannot. Every such name carries the time
# it was made: what is over an hour old belongs to no run still going.
cargo test --workspace --locked --no-run --quiet
target/debug/sweep

step "cargo test"
cargo test --workspace --locked

step "the Kubernetes manifests, run natively"
# The local overlay's api, worker and bot, two replicas each, started with
# the environment their rendered Deployments give them, under 50 games/s
# and loadgen's mix: nothing lost, nothing posted twice. Alone, because six processes under
# load would slow the tests beside them (and be slowed by them). With
# --workspace rather than -p demo, so that the dependencies keep the
# features `cargo test --workspace` built them with (-p demo compiled 94
# crates again, 2m 21s).
cargo test --workspace --locked --test e2e -- --ignored --exact \
  kubernetes::two_replicas_of_each_service_run_from_the_rendered_manifests_lose_and_double_nothing

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
# The api binary the tests ran (built with --tests, the features are theirs).
cargo build --workspace --locked --quiet --bin api --tests
admin_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# Stamped as the tests stamp their names, so that the sweep removes them.
stamp="$(date +%s)_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
contract_db="gamenight_contract_$stamp"
api_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
psql -q "$admin_url" -c "CREATE DATABASE $contract_db" || die "cannot create the database $contract_db"
contract_cleanup() {
  [ -n "${api_pid:-}" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
  target/debug/sweep --stamp "$stamp" >/dev/null
}
trap contract_cleanup EXIT
DATABASE_URL="${admin_url%/*}/$contract_db" \
  REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" \
  RABBITMQ_URL="${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}" \
  API_LISTEN_ADDR="127.0.0.1:$api_port" REDIS_KEY_PREFIX="$contract_db:" \
  EVENTS_EXCHANGE="gamenight.contract.$stamp.events" OTEL_SDK_DISABLED=true \
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
trap - EXIT
contract_cleanup || die "cannot remove the database and exchange the contract step made"

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
  cargo test --workspace --locked --test exporters -- --ignored

step "fault-injection run (short)"
# Alone, after the suite: it starts private servers of its own and
# restarts them, so it never disturbs the shared ones the tests use. On the
# debug build the tests made (a release build would double the run's compile
# time), at half the full run's load: at 50 games a second the debug
# pipeline fell behind on a slow machine, and the backlog, not the recovery,
# took a first webhook past the 2 s its criteria allow.
scripts/chaos.sh --debug-build --short --rate 25
printf '\nall steps passed in %d s\n' "$SECONDS"

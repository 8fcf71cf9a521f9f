#!/usr/bin/env bash
# Mutation testing with cargo-mutants (docs/TESTING.md, "Mutation testing"): changes
# the code where a silent mistake costs most, one small mutation at a time,
# and runs the tests of the mutated package against each; a mutant the tests
# do not catch is a behaviour no test pins down.
#
#   scripts/mutants.sh                  the whole scope below (hours on 2 cores)
#   scripts/mutants.sh --file services/api/src/outbox.rs
#                                       one file of it (any cargo-mutants options)
#   scripts/mutants.sh --list           the mutants, without running them
#
# Results go to target/mutants/mutants.out: caught.txt, missed.txt
# (survivors), timeout.txt, unviable.txt, and outcomes.json. The tests talk to
# the real servers, as scripts/test.sh's do. Not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

# The code where a silent mistake costs most: trace propagation, span
# building and telemetry configuration; publishing, consuming and the
# ack/requeue/dead-letter decision; the worker's scheduler and the applying
# of events; the bot's delivery; the api's outbox.
scope=(
  crates/telemetry/src/config.rs
  crates/telemetry/src/console.rs
  crates/telemetry/src/http_server.rs
  crates/telemetry/src/propagation.rs
  crates/telemetry/src/spans.rs
  crates/broker/src/consumer.rs
  crates/broker/src/lib.rs
  crates/broker/src/topology.rs
  services/worker/src/scheduler.rs
  services/worker/src/apply.rs
  services/bot/src/lib.rs
  services/api/src/outbox.rs
)

# The one on PATH when it is this version, else one installed into target/.
version=27.1.0
tool=$(command -v cargo-mutants || true)
if [ "$("${tool:-false}" mutants --version 2>/dev/null)" != "cargo-mutants $version" ]; then
  tool=target/tools/cargo-mutants/bin/cargo-mutants
fi
if [ "$("$tool" mutants --version 2>/dev/null)" != "cargo-mutants $version" ]; then
  step "installing cargo-mutants $version into target/tools"
  cargo install --locked --quiet --root target/tools/cargo-mutants cargo-mutants --version "$version" \
    || die "cannot install cargo-mutants $version from crates.io"
fi

# shellcheck source=scripts/servers.sh
source scripts/servers.sh
check_servers

# A --file of the caller's narrows the scope; without one, all of it.
files=()
if [[ " $* " != *" --file "* && " $* " != *" -f "* ]]; then
  for file in "${scope[@]}"; do files+=(--file "$file"); done
fi

step "cargo mutants"
# In a copy of the tree (cargo-mutants' default), so the working tree is
# never left mutated; each package's own tests judge its mutants.
"$tool" mutants --no-shuffle --output target/mutants "${files[@]}" "$@"

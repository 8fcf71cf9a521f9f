# Sourced by scripts/test.sh and scripts/mutants.sh: checks the three
# servers the tests talk to, starting a local one when it is down and
# installed, and fails with a message saying which one is missing.
#
# Server addresses come from DATABASE_URL, REDIS_URL and RABBITMQ_URL when
# set, else the local defaults the tests use too. Expects die() and step().

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
    die "$name is not reachable at $host:$port and '$1' is not installed; start $name yourself (see docs/TESTING.md)"
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

check_servers() {
  local pg_host pg_port redis_host redis_port amqp_host amqp_port pg_cluster
  step "servers"
  read -r pg_host pg_port < <(host_port "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" 5432)
  read -r redis_host redis_port < <(host_port "${REDIS_URL:-redis://127.0.0.1:6379}" 6379)
  read -r amqp_host amqp_port < <(host_port "${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}" 5672)
  pg_cluster=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
  wait_for PostgreSQL "$pg_host" "$pg_port" pg_ctlcluster --skip-systemctl-redirect "${pg_cluster:-15}" main start
  wait_for Redis "$redis_host" "$redis_port" redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" --appendonly no
  wait_for RabbitMQ "$amqp_host" "$amqp_port" rabbitmq-server -detached
}

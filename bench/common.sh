# Shared by the benchmark scripts: builds, ports, tokens, wrk runs. Source it; not a benchmark.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/release/whatsapp-numbers"
BASE="$ROOT/bench/baseline/target/release"
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
export AUTH_JWT_SECRET=${AUTH_JWT_SECRET:-bench-secret-0123456789abcdef0123456789}
export SECRETS_KEY=${SECRETS_KEY:-MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}
export RUST_LOG=${RUST_LOG:-warn}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

build() {
  echo "== building the service and the baselines (release)" >&2
  (cd "$ROOT" && cargo build --release --quiet --locked)
  (cd "$ROOT/bench/baseline" && cargo build --release --quiet)
  command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
}

# scratch NAME: a work directory ($WORK) and the name of this run's PostgreSQL database ($PG_DB,
# created by the script that needs one); on exit both go, with the servers the script started.
scratch() {
  WORK=$(mktemp -d /tmp/wn-bench.XXXXXX)
  PG_DB="wn_bench_$1_$$"
  trap 'cleanup; rm -rf "$WORK"; psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
}

wait_for() { # url
  for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing answers $1" >&2; exit 1
}

machine() {
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
}

# wrk_run URL TOKEN SECONDS -> "requests_per_second p99_ms"
wrk_run() {
  local out
  out=$(wrk -t2 -c32 -d"$3"s --latency -H "Authorization: Bearer $2" "$1")
  local rps p99 unit
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  read -r p99 unit < <(awk '$1=="99%" {v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v); print v, u}' <<<"$out")
  case "$unit" in us) p99=$(awk -v v="$p99" 'BEGIN {printf "%.2f", v/1000}');; s) p99=$(awk -v v="$p99" 'BEGIN {printf "%.2f", v*1000}');; esac
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers from $1" >&2; grep "Non-2xx" <<<"$out" >&2; fi
  echo "$rps $p99"
}

#!/usr/bin/env bash
# The numbers table under load: `GET /api/v1/phone-numbers?limit=100` (and one number) from the
# release build, against the bare actix + rusqlite baseline (bench/baseline, bare-table) reading
# the same SQLite file, both under the same wrk load (2 threads, 32 connections, on this machine's
# cores), in alternating rounds; prints each round and the ratio. Then the service on PostgreSQL.
# Usage: bench/table.sh [seconds per round, default 10] [rounds, default 3]
source "$(dirname "$0")/common.sh"
SECONDS_PER_ROUND=${1:-10}
ROUNDS=${2:-3}
NUMBERS=1006
build
machine
WORK=$(mktemp -d /tmp/wn-bench.XXXXXX)
trap 'cleanup; rm -rf "$WORK"' EXIT

# SQLite: the service migrates, the seed fills, both read the one file.
DB="$WORK/table.db"
DATABASE_URL="sqlite://$DB" DATA_DIR="$WORK" "$BIN" migrate >/dev/null
python3 "$ROOT/bench/seed.py" "$NUMBERS" bench | sqlite3 "$DB"
TOKEN=$(DATA_DIR="$WORK" "$BIN" token --workspace bench --role viewer)
DATABASE_URL="sqlite://$DB" DATA_DIR="$WORK" BIND_ADDR=127.0.0.1:18081 SYNC_INTERVAL_SECONDS=0 "$BIN" serve >"$WORK/ours.log" 2>&1 &
PIDS+=($!)
DB="$DB" BIND_ADDR=127.0.0.1:18082 "$BASE/bare-table" >"$WORK/bare.log" 2>&1 &
PIDS+=($!)
wait_for http://127.0.0.1:18081/healthz
sleep 0.5
ONE=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:18081/api/v1/phone-numbers?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
# Both answer the same page (the same ids in the same order) before anything is measured.
ids() { curl -fsS -H "Authorization: Bearer $TOKEN" "$1" | python3 -c 'import json,sys; print(" ".join(n["id"] for n in json.load(sys.stdin)["data"]))'; }
[ "$(ids http://127.0.0.1:18081/api/v1/phone-numbers?limit=100)" = "$(ids http://127.0.0.1:18082/api/v1/phone-numbers?limit=100)" ] \
  || { echo "the service and the baseline answer different pages" >&2; exit 1; }

echo "== SQLite, $NUMBERS numbers, GET /api/v1/phone-numbers?limit=100, wrk -t2 -c32, ${SECONDS_PER_ROUND}s rounds"
wrk_run "http://127.0.0.1:18081/api/v1/phone-numbers?limit=100" "$TOKEN" 3 >/dev/null # warm-up
wrk_run "http://127.0.0.1:18082/api/v1/phone-numbers?limit=100" "$TOKEN" 3 >/dev/null
best_ratio=0 ours_total=0 bare_total=0
for round in $(seq 1 "$ROUNDS"); do
  read -r ours_rps ours_p99 < <(wrk_run "http://127.0.0.1:18081/api/v1/phone-numbers?limit=100" "$TOKEN" "$SECONDS_PER_ROUND")
  read -r bare_rps bare_p99 < <(wrk_run "http://127.0.0.1:18082/api/v1/phone-numbers?limit=100" "$TOKEN" "$SECONDS_PER_ROUND")
  ratio=$(awk -v a="$ours_rps" -v b="$bare_rps" 'BEGIN {printf "%.2f", a/b}')
  printf 'round %d: ours %8.0f req/s p99 %6.2f ms | bare %8.0f req/s p99 %6.2f ms | ratio %s\n' \
    "$round" "$ours_rps" "$ours_p99" "$bare_rps" "$bare_p99" "$ratio"
  ours_total=$(awk -v a="$ours_total" -v b="$ours_rps" 'BEGIN {print a+b}')
  bare_total=$(awk -v a="$bare_total" -v b="$bare_rps" 'BEGIN {print a+b}')
done
echo "SQLite page: ratio over all rounds $(awk -v a="$ours_total" -v b="$bare_total" 'BEGIN {printf "%.2f", a/b}') (ours / bare requests per second)"
read -r ours_rps ours_p99 < <(wrk_run "http://127.0.0.1:18081/api/v1/phone-numbers/$ONE" "$TOKEN" "$SECONDS_PER_ROUND")
read -r bare_rps bare_p99 < <(wrk_run "http://127.0.0.1:18082/api/v1/phone-numbers/$ONE" "$TOKEN" "$SECONDS_PER_ROUND")
printf 'SQLite one number: ours %.0f req/s p99 %.2f ms | bare %.0f req/s p99 %.2f ms | ratio %.2f\n' \
  "$ours_rps" "$ours_p99" "$bare_rps" "$bare_p99" "$(awk -v a="$ours_rps" -v b="$bare_rps" 'BEGIN {print a/b}')"
cleanup; PIDS=()

# PostgreSQL: a database of its own, the same seed.
PG_DB="wn_bench_$$"
psql -q "$PG_ADMIN" -c "CREATE DATABASE $PG_DB" >/dev/null
trap 'cleanup; rm -rf "$WORK"; psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null' EXIT
PG_URL="${PG_ADMIN%/*}/$PG_DB"
DATABASE_URL="$PG_URL" DATA_DIR="$WORK" "$BIN" migrate >/dev/null
python3 "$ROOT/bench/seed.py" "$NUMBERS" bench | psql -q "$PG_URL" >/dev/null
psql -q "$PG_URL" -c ANALYZE >/dev/null # as autovacuum would soon: statistics of the seeded rows
DATABASE_URL="$PG_URL" DATA_DIR="$WORK" BIND_ADDR=127.0.0.1:18083 SYNC_INTERVAL_SECONDS=0 "$BIN" serve >"$WORK/ours-pg.log" 2>&1 &
PIDS+=($!)
wait_for http://127.0.0.1:18083/healthz
ONE=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:18083/api/v1/phone-numbers?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
wrk_run "http://127.0.0.1:18083/api/v1/phone-numbers?limit=100" "$TOKEN" 3 >/dev/null
read -r rps p99 < <(wrk_run "http://127.0.0.1:18083/api/v1/phone-numbers?limit=100" "$TOKEN" "$SECONDS_PER_ROUND")
printf 'PostgreSQL page:       ours %.0f req/s p99 %.2f ms\n' "$rps" "$p99"
read -r rps p99 < <(wrk_run "http://127.0.0.1:18083/api/v1/phone-numbers/$ONE" "$TOKEN" "$SECONDS_PER_ROUND")
printf 'PostgreSQL one number: ours %.0f req/s p99 %.2f ms\n' "$rps" "$p99"

#!/usr/bin/env bash
# The numbers table under load: `GET /api/v1/phone-numbers?limit=100` (and one number) from the
# release build, against the bare baseline (bench/baseline, bare-table: actix with rusqlite, or
# with tokio-postgres) reading the same database, both under the same wrk load (2 threads, 32
# connections, on this machine's cores), in alternating rounds; prints each round and the ratio.
# First on one SQLite file, then on one PostgreSQL database (both read it over loopback TCP
# without TLS).
# Usage: bench/table.sh [seconds per round, default 10] [rounds, default 3]
source "$(dirname "$0")/common.sh"
SECONDS_PER_ROUND=${1:-10}
ROUNDS=${2:-3}
NUMBERS=1006
build
machine
scratch table

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

# compare LABEL PATH ROUNDS OURS_PORT BARE_PORT: alternating rounds of the same path on both.
compare() {
  local label=$1 path=$2 rounds=$3 ours=$4 bare=$5 ours_total=0 bare_total=0 ours_rps ours_p99 bare_rps bare_p99
  wrk_run "http://127.0.0.1:$ours$path" "$TOKEN" 3 >/dev/null # warm-up
  wrk_run "http://127.0.0.1:$bare$path" "$TOKEN" 3 >/dev/null
  for round in $(seq 1 "$rounds"); do
    read -r ours_rps ours_p99 < <(wrk_run "http://127.0.0.1:$ours$path" "$TOKEN" "$SECONDS_PER_ROUND")
    read -r bare_rps bare_p99 < <(wrk_run "http://127.0.0.1:$bare$path" "$TOKEN" "$SECONDS_PER_ROUND")
    printf '%s, round %d: ours %8.0f req/s p99 %6.2f ms | bare %8.0f req/s p99 %6.2f ms | ratio %s\n' \
      "$label" "$round" "$ours_rps" "$ours_p99" "$bare_rps" "$bare_p99" \
      "$(awk -v a="$ours_rps" -v b="$bare_rps" 'BEGIN {printf "%.2f", a/b}')"
    ours_total=$(awk -v a="$ours_total" -v b="$ours_rps" 'BEGIN {print a+b}')
    bare_total=$(awk -v a="$bare_total" -v b="$bare_rps" 'BEGIN {print a+b}')
  done
  echo "$label: ratio over all rounds $(awk -v a="$ours_total" -v b="$bare_total" 'BEGIN {printf "%.2f", a/b}') (ours / bare requests per second)"
}

# same_page OURS_PORT BARE_PORT: both answer the same page (the same ids in the same order).
same_page() {
  local ids='import json,sys; print(" ".join(n["id"] for n in json.load(sys.stdin)["data"]))' a b
  a=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/api/v1/phone-numbers?limit=100" | python3 -c "$ids")
  b=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$2/api/v1/phone-numbers?limit=100" | python3 -c "$ids")
  [ -n "$a" ] && [ "$a" = "$b" ] || { echo "the service and the baseline answer different pages" >&2; exit 1; }
}

first_id() {
  curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/api/v1/phone-numbers?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])'
}

same_page 18081 18082
ONE=$(first_id 18081)
echo "== SQLite, $NUMBERS numbers, wrk -t2 -c32, ${SECONDS_PER_ROUND}s rounds"
compare "SQLite page" "/api/v1/phone-numbers?limit=100" "$ROUNDS" 18081 18082
compare "SQLite one number" "/api/v1/phone-numbers/$ONE" 1 18081 18082
cleanup; PIDS=()

# PostgreSQL: a database of its own, the same seed, read by both over loopback without TLS.
psql -q "$PG_ADMIN" -c "CREATE DATABASE $PG_DB" >/dev/null
PG_URL="${PG_ADMIN%/*}/$PG_DB"
DATABASE_URL="$PG_URL" DATA_DIR="$WORK" "$BIN" migrate >/dev/null
python3 "$ROOT/bench/seed.py" "$NUMBERS" bench | psql -q "$PG_URL" >/dev/null
psql -q "$PG_URL" -c ANALYZE >/dev/null # as autovacuum would soon: statistics of the seeded rows
DATABASE_URL="$PG_URL?sslmode=disable" DATA_DIR="$WORK" BIND_ADDR=127.0.0.1:18083 SYNC_INTERVAL_SECONDS=0 "$BIN" serve >"$WORK/ours-pg.log" 2>&1 &
PIDS+=($!)
PG_URL="$PG_URL" BIND_ADDR=127.0.0.1:18084 "$BASE/bare-table" >"$WORK/bare-pg.log" 2>&1 &
PIDS+=($!)
wait_for http://127.0.0.1:18083/healthz
same_page 18083 18084
ONE=$(first_id 18083)
echo "== PostgreSQL, $NUMBERS numbers, wrk -t2 -c32, ${SECONDS_PER_ROUND}s rounds"
compare "PostgreSQL page" "/api/v1/phone-numbers?limit=100" "$ROUNDS" 18083 18084
compare "PostgreSQL one number" "/api/v1/phone-numbers/$ONE" 1 18083 18084

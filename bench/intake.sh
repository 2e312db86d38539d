#!/usr/bin/env bash
# Meta's webhook deliveries coming in: the release build's `POST /webhooks/whatsapp` (signature
# check, JSON, one job per message, group commit, 200 only after the commit) against the bare
# actix + rusqlite receiver doing the same work (bench/baseline, bare-intake), under the same
# load (intake-load: 32 keep-alive connections, every delivery a new signed customer message), in
# alternating rounds. Prints each round, the ratio, and whether every 200 was stored (rows stored
# equal 200s returned). Then the service on PostgreSQL. The service runs with WEBHOOK_WORKERS=0,
# so that the intake alone is measured (workers answering the stored messages are another load).
# Usage: bench/intake.sh [seconds per round, default 10] [rounds, default 3]
source "$(dirname "$0")/common.sh"
SECONDS_PER_ROUND=${1:-10}
ROUNDS=${2:-3}
SECRET=bench-app-secret
build
machine
scratch intake

serve_ours() { # DATABASE_URL PORT
  DATABASE_URL="$1" DATA_DIR="$WORK" META_APP_ID=1 META_APP_SECRET=$SECRET BIND_ADDR=127.0.0.1:$2 \
    SYNC_INTERVAL_SECONDS=0 WEBHOOK_WORKERS=0 "$BIN" serve >"$WORK/ours-$2.log" 2>&1 &
  PIDS+=($!)
  wait_for "http://127.0.0.1:$2/healthz"
}
# load PORT PREFIX -> "deliveries_per_second p99_ms ok other"
load() { ADDRESS=127.0.0.1:$1 META_APP_SECRET=$SECRET SECONDS=$SECONDS_PER_ROUND PREFIX=$2 "$BASE/intake-load"; }

serve_ours "sqlite://$WORK/ours.db" 18081
DB="$WORK/bare.db" META_APP_SECRET=$SECRET BIND_ADDR=127.0.0.1:18082 "$BASE/bare-intake" >"$WORK/bare.log" 2>&1 &
PIDS+=($!)
sleep 0.5

echo "== SQLite, POST /webhooks/whatsapp (one new signed message per delivery), 32 connections, ${SECONDS_PER_ROUND}s rounds"
ours_total=0 bare_total=0 ours_ok=0 bare_ok=0
for round in $(seq 1 "$ROUNDS"); do
  read -r ours_rps ours_p99 ok other < <(load 18081 "ours$round")
  ours_ok=$((ours_ok + ok)); [ "$other" = 0 ] || echo "ours: $other answers other than 200" >&2
  read -r bare_rps bare_p99 ok other < <(load 18082 "bare$round")
  bare_ok=$((bare_ok + ok)); [ "$other" = 0 ] || echo "bare: $other answers other than 200" >&2
  printf 'round %d: ours %6.0f/s p99 %5.2f ms | bare %6.0f/s p99 %5.2f ms | ratio %.2f, p99 x%.2f\n' "$round" \
    "$ours_rps" "$ours_p99" "$bare_rps" "$bare_p99" "$(awk -v a="$ours_rps" -v b="$bare_rps" 'BEGIN {print a/b}')" \
    "$(awk -v a="$ours_p99" -v b="$bare_p99" 'BEGIN {print a/b}')"
  ours_total=$(awk -v a="$ours_total" -v b="$ours_rps" 'BEGIN {print a+b}')
  bare_total=$(awk -v a="$bare_total" -v b="$bare_rps" 'BEGIN {print a+b}')
done
echo "SQLite: ratio over all rounds $(awk -v a="$ours_total" -v b="$bare_total" 'BEGIN {printf "%.2f", a/b}') (ours / bare deliveries per second)"
ours_rows=$(sqlite3 "$WORK/ours.db" "SELECT COUNT(*) FROM webhook_jobs")
bare_rows=$(sqlite3 "$WORK/bare.db" "SELECT COUNT(*) FROM deliveries")
echo "stored: ours $ours_rows rows for $ours_ok 200s; bare $bare_rows rows for $bare_ok 200s"
cleanup; PIDS=()

psql -q "$PG_ADMIN" -c "CREATE DATABASE $PG_DB" >/dev/null
PG_URL="${PG_ADMIN%/*}/$PG_DB"
serve_ours "$PG_URL" 18083
read -r rps p99 ok other < <(load 18083 pg)
rows=$(psql -At "$PG_URL" -c "SELECT COUNT(*) FROM webhook_jobs")
printf 'PostgreSQL: ours %.0f/s p99 %.2f ms; stored %s rows for %s 200s (%s other answers)\n' "$rps" "$p99" "$rows" "$ok" "$other"

#!/usr/bin/env bash
# One WABA of 10,000 numbers synced from a local Meta stand-in (bench/baseline, meta-standin) that
# answers each page at once: the first sync (connect: every number added), a sync in which nothing
# changed, and one in which 1 % changed, by the release build on SQLite and on PostgreSQL, over
# HTTP as the dashboard asks for them; the bare baseline (bare-sync: reqwest + rusqlite, the same
# pages, the same compare-and-write) does the same three in the same run. Prints each time, how
# many rows the service wrote, and the ratios.
# Usage: bench/sync.sh [numbers, default 10000]
source "$(dirname "$0")/common.sh"
NUMBERS=${1:-10000}
WABA=102290129340398
build
machine
scratch sync

NUMBERS=$NUMBERS BIND_ADDR=127.0.0.1:18090 "$BASE/meta-standin" >"$WORK/standin.log" 2>&1 &
PIDS+=($!)
STANDIN=http://127.0.0.1:18090
wait_for_standin() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$STANDIN/v25.0/$WABA" 2>/dev/null && return; sleep 0.05; done; exit 1; }
wait_for_standin
ms() { awk -v s="$1" 'BEGIN {printf "%.0f", s*1000}'; }

# run_ours NAME DATABASE_URL SQL_RUNNER: prints "first unchanged changed" in ms
run_ours() {
  local name=$1 url=$2 sql=$3 port=18085
  DATABASE_URL="$url" DATA_DIR="$WORK" META_APP_ID=1 META_APP_SECRET=bench META_GRAPH_URL="$STANDIN" \
    META_TIMEOUT_SECONDS=30 BIND_ADDR=127.0.0.1:$port SYNC_INTERVAL_SECONDS=0 "$BIN" serve >"$WORK/ours-$name.log" 2>&1 &
  local pid=$!
  wait_for "http://127.0.0.1:$port/healthz"
  local token api=http://127.0.0.1:$port/api/v1
  token=$(DATA_DIR="$WORK" "$BIN" token --workspace bench --role editor)
  local t_first t_same t_changed account
  t_first=$(curl -fsS -o "$WORK/connect.json" -w '%{time_total}' -X POST -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "{\"waba_id\":\"$WABA\",\"access_token\":\"EAAG-bench-token\"}" "$api/whatsapp/accounts")
  account=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["sync"]["added"]=='"$NUMBERS"', d["sync"]; print(d["id"])' "$WORK/connect.json")
  local writes_before writes_after
  $sql "UPDATE whatsapp_accounts SET last_synced_at = '2000-01-01 00:00:00'" # past the coalescing window
  writes_before=$($sql "SELECT COUNT(*) FROM phone_numbers WHERE updated_at > (SELECT MAX(created_at) FROM phone_numbers)")
  t_same=$(curl -fsS -o "$WORK/same.json" -w '%{time_total}' -X POST -H "Authorization: Bearer $token" "$api/whatsapp/accounts/$account/sync")
  writes_after=$($sql "SELECT COUNT(*) FROM phone_numbers WHERE updated_at > (SELECT MAX(created_at) FROM phone_numbers)")
  curl -fsS -X POST "$STANDIN/__change?percent=1" >/dev/null
  $sql "UPDATE whatsapp_accounts SET last_synced_at = '2000-01-01 00:00:00'"
  t_changed=$(curl -fsS -o "$WORK/changed.json" -w '%{time_total}' -X POST -H "Authorization: Bearer $token" "$api/whatsapp/accounts/$account/sync")
  curl -fsS -X POST "$STANDIN/__change?percent=1" >/dev/null # flipped back: every number GREEN again
  echo "$name: $(cat "$WORK/same.json") / $(cat "$WORK/changed.json"); rows written by the unchanged sync: $((writes_after - writes_before))" >&2
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$(ms "$t_first") $(ms "$t_same") $(ms "$t_changed")"
}

sqlite_sql() { sqlite3 "$WORK/sync.db" "$1"; }
pg_sql() { psql -qtA "${PG_ADMIN%/*}/$PG_DB" -c "$1"; }

echo "== one WABA of $NUMBERS numbers, pages of 100 from a stand-in answering at once"
read -r s_first s_same s_changed < <(run_ours sqlite "sqlite://$WORK/sync.db" sqlite_sql)
psql -q "$PG_ADMIN" -c "CREATE DATABASE $PG_DB" >/dev/null
read -r p_first p_same p_changed < <(run_ours postgres "${PG_ADMIN%/*}/$PG_DB" pg_sql)

bare() { "$BASE/bare-sync" "$STANDIN/v25.0" "$WABA" "$WORK/bare.db" | awk '{print $1}'; }
b_first=$(bare); b_same=$(bare)
curl -fsS -X POST "$STANDIN/__change?percent=1" >/dev/null
b_changed=$(bare)

printf '%-28s %10s %10s %10s\n' "" "first" "unchanged" "1% changed"
printf '%-28s %8s ms %7s ms %7s ms\n' "ours, SQLite" "$s_first" "$s_same" "$s_changed"
printf '%-28s %8s ms %7s ms %7s ms\n' "ours, PostgreSQL" "$p_first" "$p_same" "$p_changed"
printf '%-28s %8s ms %7s ms %7s ms\n' "bare (reqwest + rusqlite)" "$b_first" "$b_same" "$b_changed"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b/a}'; }
echo "ratio bare/ours, SQLite:     $(ratio "$s_first" "$b_first") $(ratio "$s_same" "$b_same") $(ratio "$s_changed" "$b_changed")"
echo "ratio bare/ours, PostgreSQL: $(ratio "$p_first" "$b_first") $(ratio "$p_same" "$b_same") $(ratio "$p_changed" "$b_changed")"

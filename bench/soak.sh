#!/usr/bin/env bash
# Soak: the release build (SQLite) under mixed traffic for SECONDS (default 180): the numbers
# table read by wrk (8 connections), signed webhook deliveries (intake-load, 4 connections; the
# workers take each job), and 50 live-stream clients while an assignment changes every second
# (sse-clients). Samples the server's resident memory every 10 s and prints the series, so that a
# leak shows as a climb; prints what each load managed. A measurement: nothing is asserted.
# Usage: bench/soak.sh [seconds, default 180]
source "$(dirname "$0")/common.sh"
SECONDS_TOTAL=${1:-180}
SECRET=bench-app-secret
build
machine
scratch soak

DB="$WORK/soak.db"
DATABASE_URL="sqlite://$DB" DATA_DIR="$WORK" "$BIN" migrate >/dev/null
python3 "$ROOT/bench/seed.py" 1006 bench | sqlite3 "$DB"
DATABASE_URL="sqlite://$DB" DATA_DIR="$WORK" META_APP_ID=1 META_APP_SECRET=$SECRET BIND_ADDR=127.0.0.1:18081 \
  SYNC_INTERVAL_SECONDS=0 "$BIN" serve >"$WORK/ours.log" 2>&1 &
OURS=$!
PIDS+=($OURS)
wait_for http://127.0.0.1:18081/healthz
TOKEN=$(DATA_DIR="$WORK" "$BIN" token --workspace bench --role editor)
api() { curl -fsS -X "$1" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "http://127.0.0.1:18081$2" ${3:+-d "$3"}; }
NUMBER=$(api GET '/api/v1/phone-numbers?can_use_as_outbound=true&limit=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
AGENT=$(api POST /api/v1/agents '{"name": "Soak", "responder": {"kind": "faq", "faq": {"entries": [{"keywords": ["hi"], "answer": "hello"}]}}}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
rss() { awk '/VmRSS/ {print $2}' "/proc/$OURS/status"; }

echo "== ${SECONDS_TOTAL}s of mixed traffic; resident memory (KiB) every 10 s"
wrk -t1 -c8 -d"${SECONDS_TOTAL}s" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:18081/api/v1/phone-numbers?limit=100" >"$WORK/wrk.txt" 2>&1 &
LOADS=($!)
ADDRESS=127.0.0.1:18081 META_APP_SECRET=$SECRET SECONDS=$SECONDS_TOTAL CONNECTIONS=4 PREFIX=soak "$BASE/intake-load" >"$WORK/intake.txt" 2>&1 &
LOADS+=($!)
ADDRESS=127.0.0.1:18081 TOKEN=$TOKEN CLIENTS=50 ROUNDS=$((SECONDS_TOTAL / 2)) SERVER_PID=$OURS \
  TRIGGER_METHOD=PUT TRIGGER_PATH="/api/v1/phone-numbers/$NUMBER/inbound-agent" \
  TRIGGER_BODIES="{\"agent_id\": \"$AGENT\"}|{\"agent_id\": null}" WAIT_FOR="event: inbound_agent.changed" \
  "$BASE/sse-clients" >"$WORK/sse.txt" 2>&1 &
LOADS+=($!)
echo "t_s rss_kib"
for t in $(seq 0 10 "$SECONDS_TOTAL"); do
  echo "$t $(rss)"
  sleep 10
done
wait "${LOADS[@]}" || true
echo "table: $(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt") req/s"
echo "webhook deliveries (per second, p99 ms, 200s, others): $(cat "$WORK/intake.txt")"
echo "stream rounds with every client served: $(awk '$1 ~ /^[0-9]+$/ && $5 == $6' "$WORK/sse.txt" | wc -l) of $(awk '$1 ~ /^[0-9]+$/' "$WORK/sse.txt" | wc -l)"
echo "jobs: $(sqlite3 "$DB" "SELECT state, COUNT(*) FROM webhook_jobs GROUP BY state" | tr '\n' ' ')"
echo "resident memory after the loads: $(rss) KiB"

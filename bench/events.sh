#!/usr/bin/env bash
# The live stream: CLIENTS (default 1,000) idle `GET /api/v1/events` connections of one workspace on
# the release build (SQLite, sandbox Meta), then ROUNDS assignment changes (`PUT
# /phone-numbers/{id}/inbound-agent`, alternately an agent and null); for each, how long until
# every client received its `inbound_agent.changed` frame, timed from just before the PUT was sent
# (the PUT's own work, the database write, the 100 ms poll and the fan-out). The bare baseline
# (bench/baseline, bare-sse) fans one in-memory broadcast out to as many clients, with no
# authentication and no database: the floor. Also the servers' resident memory per client.
# Usage: bench/events.sh [clients, default 1000] [rounds, default 5]
source "$(dirname "$0")/common.sh"
CLIENTS=${1:-1000}
ROUNDS=${2:-5}
build
machine
scratch events
ulimit -n 65536 2>/dev/null || ulimit -n 8192

DATABASE_URL="sqlite://$WORK/events.db" DATA_DIR="$WORK" BIND_ADDR=127.0.0.1:18081 SYNC_INTERVAL_SECONDS=0 \
  "$BIN" serve >"$WORK/ours.log" 2>&1 &
OURS=$!
PIDS+=($OURS)
BIND_ADDR=127.0.0.1:18082 "$BASE/bare-sse" >"$WORK/bare.log" 2>&1 &
BARE=$!
PIDS+=($BARE)
wait_for http://127.0.0.1:18081/healthz
TOKEN=$(DATA_DIR="$WORK" "$BIN" token --workspace bench --role editor)
api() { curl -fsS -X "$1" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "http://127.0.0.1:18081$2" ${3:+-d "$3"}; }
api POST /api/v1/whatsapp/accounts '{"waba_id": "100000000000001", "access_token": "sandbox"}' >/dev/null
NUMBER=$(api GET '/api/v1/phone-numbers?can_use_as_outbound=true&limit=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
AGENT=$(api POST /api/v1/agents '{"name": "Bench", "responder": {"kind": "faq", "faq": {"entries": [{"keywords": ["hi"], "answer": "hello"}]}}}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

echo "== $CLIENTS idle clients of one workspace, one assignment change per round, $ROUNDS rounds"
echo "round p50_ms p99_ms max_ms received clients"
echo "-- ours (release, SQLite)"
ADDRESS=127.0.0.1:18081 TOKEN=$TOKEN CLIENTS=$CLIENTS ROUNDS=$ROUNDS SERVER_PID=$OURS \
  TRIGGER_METHOD=PUT TRIGGER_PATH="/api/v1/phone-numbers/$NUMBER/inbound-agent" \
  TRIGGER_BODIES="{\"agent_id\": \"$AGENT\"}|{\"agent_id\": null}" WAIT_FOR="event: inbound_agent.changed" \
  "$BASE/sse-clients" | tee "$WORK/ours.txt"
echo "-- bare (in-memory broadcast)"
ADDRESS=127.0.0.1:18082 CLIENTS=$CLIENTS ROUNDS=$ROUNDS SERVER_PID=$BARE STREAM_PATH=/events \
  TRIGGER_METHOD=PUT TRIGGER_PATH=/trigger TRIGGER_BODIES='{}' WAIT_FOR="event: inbound_agent.changed" \
  "$BASE/sse-clients" | tee "$WORK/bare.txt"
median() { awk '$1 ~ /^[0-9]+$/ {print $'"$1"'}' "$2" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ours_p99=$(median 3 "$WORK/ours.txt") bare_p99=$(median 3 "$WORK/bare.txt")
echo "median of rounds' p99: ours ${ours_p99} ms, bare ${bare_p99} ms; ours - bare = $(awk -v a="$ours_p99" -v b="$bare_p99" 'BEGIN {printf "%.1f", a-b}') ms"

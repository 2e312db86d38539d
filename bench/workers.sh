#!/usr/bin/env bash
# The webhook workers answering stored messages: JOBS deliveries from CUSTOMERS customers are taken
# in by the release build with its workers off, then a restart with WEBHOOK_WORKERS=4 answers them
# (FAQ agent; marked read and the answer sent to the local Meta stand-in, bench/baseline
# meta-standin), timed from the restart's first answer to health until no job is queued or
# running. The bare baseline (bare-workers) answers the same payloads with 4 async workers over
# rusqlite: claim in batches keeping each customer's order, store the message, mark read, store
# and send the answer, record it. Prints both rates, the ratio, and that every message was
# answered once; then the service alone on PostgreSQL. A measurement: nothing is asserted.
# The deliveries go to NUMBERS numbers in turn, each with the agent: Meta lets one number send 80
# messages a second, and the service paces each number's answers within that, so one number alone
# would measure Meta's limit, not the workers.
# Usage: bench/workers.sh [customers, default 1000] [seconds of intake, default 1] [numbers, default 50]
source "$(dirname "$0")/common.sh"
CUSTOMERS=${1:-1000}
INTAKE_SECONDS=${2:-1}
NUMBERS=${3:-50}
SECRET=bench-app-secret
WABA=102290129340398
build
machine
scratch workers
STANDIN=http://127.0.0.1:18090
standin() {
  NUMBERS=$NUMBERS BIND_ADDR=127.0.0.1:18090 "$BASE/meta-standin" >"$WORK/standin.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$STANDIN/__sent" 2>/dev/null && break; sleep 0.05; done
}
sent() { curl -fsS "$STANDIN/__sent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sent"])'; }

# ours NAME DATABASE_URL SQL_RUNNER: prints "jobs_per_second jobs"; the numbers in $WORK/numbers.txt
ours() {
  local name=$1 url=$2 sql=$3 pid
  serve() { # WORKERS
    DATABASE_URL="$url" DATA_DIR="$WORK" META_APP_ID=1 META_APP_SECRET=$SECRET META_GRAPH_URL="$STANDIN" \
      BIND_ADDR=127.0.0.1:18081 SYNC_INTERVAL_SECONDS=0 WEBHOOK_WORKERS="$1" "$BIN" serve >>"$WORK/ours-$name.log" 2>&1 &
    pid=$!
    PIDS+=($pid)
    wait_for http://127.0.0.1:18081/healthz
  }
  serve 0
  TOKEN=$(DATA_DIR="$WORK" "$BIN" token --workspace bench --role editor)
  api() { curl -fsS -X "$1" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "http://127.0.0.1:18081$2" ${3:+-d "$3"}; }
  api POST /api/v1/whatsapp/accounts "{\"waba_id\": \"$WABA\", \"access_token\": \"EAAG-bench-token\"}" >/dev/null
  api GET "/api/v1/phone-numbers?limit=$NUMBERS" | python3 -c 'import json,sys; [print(n["id"], n["phone_number_id"]) for n in json.load(sys.stdin)["data"]]' >"$WORK/numbers.txt"
  local agent
  agent=$(api POST /api/v1/agents '{"name": "Front desk", "responder": {"kind": "faq", "faq": {"entries": [{"keywords": ["hours"], "answer": "9 to 5"}], "fallback": "A person will answer soon."}}}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  while read -r number _; do
    api PUT "/api/v1/phone-numbers/$number/inbound-agent" "{\"agent_id\": \"$agent\"}" >/dev/null
  done <"$WORK/numbers.txt"
  local meta_ids
  meta_ids=$(awk '{print $2}' "$WORK/numbers.txt" | paste -sd,)
  ADDRESS=127.0.0.1:18081 META_APP_SECRET=$SECRET PHONE_NUMBER_ID=$meta_ids SECONDS=$INTAKE_SECONDS CONNECTIONS=8 \
    CUSTOMERS=$CUSTOMERS PREFIX="workers$name" "$BASE/intake-load" >"$WORK/intake.txt"
  local jobs before started ended after
  jobs=$($sql "SELECT COUNT(*) FROM webhook_jobs WHERE state = 'queued'")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  before=$(sent)
  serve 4
  started=$(date +%s.%N)
  while [ "$($sql "SELECT COUNT(*) FROM webhook_jobs WHERE state IN ('queued', 'running')")" != 0 ]; do sleep 0.05; done
  ended=$(date +%s.%N)
  after=$(sent)
  echo "$name: $jobs jobs; $($sql "SELECT COUNT(*) FROM messages WHERE direction = 'inbound' AND status = 'answered'") messages answered, $((after - before)) answers sent, dead jobs: $($sql "SELECT COUNT(*) FROM webhook_jobs WHERE state = 'dead'")" >&2
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$(awk -v n="$jobs" -v a="$started" -v b="$ended" 'BEGIN {printf "%.0f", n/(b-a)}') $jobs"
}
sqlite_sql() { sqlite3 "$WORK/ours.db" "$1"; }
pg_sql() { psql -qtA "${PG_ADMIN%/*}/$PG_DB" -c "$1"; }

echo "== ${INTAKE_SECONDS}s of deliveries from $CUSTOMERS customers to $NUMBERS numbers taken in with the workers off, then answered by 4"
standin
read -r ours_rate JOBS < <(ours sqlite "sqlite://$WORK/ours.db" sqlite_sql)
echo "ours (SQLite): $ours_rate jobs/s for $JOBS jobs"
META_IDS=$(awk '{print $2}' "$WORK/numbers.txt" | paste -sd,)
cleanup; PIDS=()
standin
read -r bare_rate bare_jobs bare_sent < <(DB="$WORK/bare.db" STANDIN="$STANDIN/v25.0" NUMBER="$META_IDS" JOBS="$JOBS" \
  CUSTOMERS="$CUSTOMERS" WORKERS=4 "$BASE/bare-workers")
echo "bare: $bare_rate jobs/s; $bare_sent answers sent for $bare_jobs jobs"
echo "ratio: $(awk -v a="$ours_rate" -v b="$bare_rate" 'BEGIN {printf "%.2f", a/b}') (ours / bare jobs per second)"
cleanup; PIDS=()
standin
psql -q "$PG_ADMIN" -c "CREATE DATABASE $PG_DB" >/dev/null
read -r pg_rate pg_jobs < <(ours postgres "${PG_ADMIN%/*}/$PG_DB" pg_sql)
echo "ours (PostgreSQL): $pg_rate jobs/s for $pg_jobs jobs"

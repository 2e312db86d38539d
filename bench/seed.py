#!/usr/bin/env python3
"""Prints SQL that fills a migrated database (SQLite or PostgreSQL) with one workspace's table:
one connected account, N numbers of mixed platforms and ratings, a few agents answering some of
them, and register calls on some. The same rows serve the service and the bare baseline."""
import random
import sys
import uuid
from datetime import datetime, timedelta, timezone

numbers = int(sys.argv[1]) if len(sys.argv) > 1 else 1006
workspace = sys.argv[2] if len(sys.argv) > 2 else "bench"
rng = random.Random(7)
now = datetime.now(timezone.utc).replace(tzinfo=None)


def ts(t):
    return "'" + t.strftime("%Y-%m-%d %H:%M:%S.%f") + "'"


def q(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


out = ["BEGIN;"]
out.append(f"INSERT INTO workspaces (id, created_at) VALUES ({q(workspace)}, {ts(now)});")
account = str(uuid.UUID(int=rng.getrandbits(128)))
out.append(
    "INSERT INTO whatsapp_accounts (id, workspace_id, waba_id, name, status, last_synced_at, created_at, updated_at) "
    f"VALUES ({q(account)}, {q(workspace)}, '1029{rng.randrange(10**10):010d}', 'Bench WABA', 'connected', {ts(now)}, {ts(now)}, {ts(now)});"
)
agents = []
for i in range(5):
    agent = str(uuid.UUID(int=rng.getrandbits(128)))
    agents.append(agent)
    name = f"Agent {i}"
    out.append(
        "INSERT INTO agents (id, workspace_id, name, name_key, description, responder_kind, responder_config, created_at, updated_at) "
        f"VALUES ({q(agent)}, {q(workspace)}, {q(name)}, {q(name.lower())}, 'answers', 'faq', "
        "'{\"entries\":[],\"fallback\":\"Sorry?\"}', " + f"{ts(now)}, {ts(now)});"
    )
ranks = {"RED": "0", "YELLOW": "1", "UNKNOWN": "2", "GREEN": "3"}
for i in range(numbers):
    nid = str(uuid.UUID(int=rng.getrandbits(128)))
    digits = f"1555{i:07d}"
    display = f"+1 555-{i // 10000:03d}-{i % 10000:04d}"
    platform = rng.choice(["CLOUD_API", "CLOUD_API", "CLOUD_API", "ON_PREMISE", "NOT_APPLICABLE"])
    quality = rng.choice(["GREEN", "GREEN", "GREEN", "YELLOW", "RED", "UNKNOWN"])
    throughput = "STANDARD" if platform == "CLOUD_API" else "NOT_APPLICABLE"
    name = f"Jaspers Market {i}"
    agent = rng.choice(agents) if platform == "CLOUD_API" and rng.random() < 0.4 else None
    state = "registered" if platform == "CLOUD_API" else rng.choice(["not_registered", "failed"])
    error = "The PIN is wrong." if state == "failed" else None
    code = 133005 if state == "failed" else None
    created = now - timedelta(days=30, seconds=i)
    # As the service keeps it: no register call is later than the number's last attempt time.
    last_attempt = {"failed": ts(now - timedelta(hours=1)), "registered": ts(created)}.get(state, "NULL")
    out.append(
        "INSERT INTO phone_numbers (id, workspace_id, whatsapp_account_id, meta_phone_number_id, display_phone_number, "
        "display_digits, verified_name, verified_name_key, platform_type, quality_rating, quality_rank, status, "
        "code_verification_status, name_status, messaging_limit, throughput_level, account_mode, is_on_biz_app, "
        "inbound_agent_id, registration_state, registration_last_error, registration_last_error_code, "
        "registration_last_attempt_at, last_synced_at, created_at, updated_at) VALUES ("
        + ", ".join(
            [q(nid), q(workspace), q(account), q(f"10{i:013d}"), q(display), q(digits), q(name), q(name.lower()),
             q(platform), q(quality), q(ranks[quality]), q("CONNECTED"), q("VERIFIED"), q("APPROVED"), q("TIER_1K"),
             q(throughput), q("LIVE"), q(False), q(agent), q(state), q(error), q(code),
             last_attempt, ts(now), ts(created), ts(created)]
        )
        + ");"
    )
    if state == "failed":
        for k in range(rng.randrange(1, 4)):
            out.append(
                "INSERT INTO registration_attempts (id, workspace_id, number_id, actor, outcome, meta_code, meta_message, created_at) "
                f"VALUES ({q(str(uuid.UUID(int=rng.getrandbits(128))))}, {q(workspace)}, {q(nid)}, 'bench', 'failed', 133005, "
                f"'PIN mismatch', {ts(now - timedelta(hours=k + 1))});"
            )
out.append("COMMIT;")
print("\n".join(out))

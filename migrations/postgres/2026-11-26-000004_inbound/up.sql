-- Meta's webhook deliveries, stored before they are acknowledged: one job per message, status or
-- other change, deduplicated on Meta's ids (Meta redelivers for days). Workers take jobs under a
-- lease with an owner; jobs with the same order_key (one conversation) run one at a time, in id order.
CREATE TABLE webhook_jobs (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key               TEXT NOT NULL UNIQUE,
    kind                    TEXT NOT NULL,
    waba_id                 TEXT,
    meta_phone_number_id    TEXT,
    order_key               TEXT,
    payload                 TEXT NOT NULL,
    state                   TEXT NOT NULL,
    attempts                BIGINT NOT NULL DEFAULT 0,
    run_after               TIMESTAMP NOT NULL,
    lease_owner             TEXT,
    lease_until             TIMESTAMP,
    last_error              TEXT,
    received_at             TIMESTAMP NOT NULL,
    finished_at             TIMESTAMP
);
CREATE INDEX webhook_jobs_ready ON webhook_jobs (state, run_after, id);
CREATE INDEX webhook_jobs_order ON webhook_jobs (order_key, id) WHERE state IN ('queued', 'running');
-- The people who write to the workspace's numbers. Meta names them by a business-scoped user id
-- (BSUID) and, when it shares it, a phone number; either may be missing, never both.
CREATE TABLE customers (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    user_id         TEXT,
    phone           TEXT,
    profile_name    TEXT,
    username        TEXT,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX customers_user_id ON customers (workspace_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX customers_phone ON customers (workspace_id, phone);

-- One customer on one of our numbers.
CREATE TABLE conversations (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    number_id           TEXT NOT NULL REFERENCES phone_numbers (id),
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    -- The customer's last message: the 24-hour customer-service window runs from here.
    last_inbound_at     TIMESTAMP,
    last_message_at     TIMESTAMP NOT NULL,
    created_at          TIMESTAMP NOT NULL,
    UNIQUE (number_id, customer_id)
);
CREATE INDEX conversations_workspace ON conversations (workspace_id, last_message_at, id);
CREATE INDEX conversations_customer ON conversations (customer_id);

-- What customers wrote and what agents answered.
CREATE TABLE messages (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    conversation_id     TEXT NOT NULL REFERENCES conversations (id),
    direction           TEXT NOT NULL,
    -- Meta's id: the customer's message, or ours once Meta accepted it.
    wamid               TEXT,
    kind                TEXT NOT NULL,
    body                TEXT,
    -- An answer: the inbound message it answers, and which part of a split answer it is.
    reply_to_id         TEXT REFERENCES messages (id),
    part                BIGINT NOT NULL DEFAULT 0,
    agent_id            TEXT,
    status              TEXT NOT NULL,
    error_code          BIGINT,
    error_message       TEXT,
    -- When Meta says the customer sent it (inbound), or when the last status happened (outbound).
    meta_timestamp      TIMESTAMP,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX messages_wamid ON messages (wamid) WHERE wamid IS NOT NULL;
CREATE UNIQUE INDEX messages_answer_part ON messages (reply_to_id, part) WHERE reply_to_id IS NOT NULL;
CREATE INDEX messages_conversation ON messages (conversation_id, created_at, id);

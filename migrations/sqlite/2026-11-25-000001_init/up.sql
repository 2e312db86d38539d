-- Portable column types only (TEXT, BIGINT, BOOLEAN, TIMESTAMP): the same diesel schema serves SQLite.
-- UUIDs are stored as TEXT; timestamps are UTC.

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE whatsapp_accounts (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    waba_id             TEXT NOT NULL UNIQUE,
    name                TEXT,
    access_token_enc    TEXT,
    token_expires_at    TIMESTAMP,
    status              TEXT NOT NULL DEFAULT 'connected',
    last_synced_at      TIMESTAMP,
    last_sync_error     TEXT,
    sync_lease_until    TIMESTAMP,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);
CREATE INDEX whatsapp_accounts_workspace ON whatsapp_accounts (workspace_id);

CREATE TABLE agents (
    id                          TEXT PRIMARY KEY,
    workspace_id                TEXT NOT NULL REFERENCES workspaces (id),
    name                        TEXT NOT NULL,
    name_key                    TEXT NOT NULL,
    description                 TEXT,
    responder_kind              TEXT NOT NULL,
    responder_config            TEXT NOT NULL,
    responder_secret_enc        TEXT,
    outbound_phone_number_id    TEXT REFERENCES phone_numbers (id),
    created_at                  TIMESTAMP NOT NULL,
    updated_at                  TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX agents_workspace_name ON agents (workspace_id, name_key);
CREATE INDEX agents_workspace_order ON agents (workspace_id, name_key, id);
CREATE INDEX agents_outbound ON agents (outbound_phone_number_id);

CREATE TABLE phone_numbers (
    id                              TEXT PRIMARY KEY,
    workspace_id                    TEXT NOT NULL REFERENCES workspaces (id),
    whatsapp_account_id             TEXT NOT NULL REFERENCES whatsapp_accounts (id),
    phone_number_id                 TEXT NOT NULL UNIQUE,
    display_phone_number            TEXT NOT NULL,
    display_digits                  TEXT NOT NULL,
    verified_name                   TEXT,
    verified_name_key               TEXT NOT NULL DEFAULT '',
    platform_type                   TEXT NOT NULL,
    quality_rating                  TEXT NOT NULL,
    status                          TEXT,
    code_verification_status        TEXT,
    name_status                     TEXT,
    messaging_limit                 TEXT,
    throughput_level                TEXT,
    account_mode                    TEXT,
    is_on_biz_app                   BOOLEAN NOT NULL DEFAULT FALSE,
    inbound_agent_id                TEXT REFERENCES agents (id) ON DELETE SET NULL,
    registration_state              TEXT NOT NULL DEFAULT 'not_registered',
    registration_last_error         TEXT,
    registration_last_attempt_at    TIMESTAMP,
    registration_lease_until        TIMESTAMP,
    pin_enc                         TEXT,
    last_synced_at                  TIMESTAMP,
    removed_at                      TIMESTAMP,
    created_at                      TIMESTAMP NOT NULL,
    updated_at                      TIMESTAMP NOT NULL
);
CREATE INDEX phone_numbers_workspace_order ON phone_numbers (workspace_id, display_digits, id);
CREATE INDEX phone_numbers_inbound_agent ON phone_numbers (workspace_id, inbound_agent_id);
CREATE INDEX phone_numbers_account ON phone_numbers (whatsapp_account_id);

CREATE TABLE registration_attempts (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    phone_number_id     TEXT NOT NULL REFERENCES phone_numbers (id),
    actor               TEXT NOT NULL,
    outcome             TEXT NOT NULL,
    meta_code           BIGINT,
    meta_subcode        BIGINT,
    meta_message        TEXT,
    fbtrace_id          TEXT,
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX registration_attempts_number ON registration_attempts (phone_number_id, created_at);

CREATE TABLE quality_events (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    phone_number_id     TEXT NOT NULL REFERENCES phone_numbers (id),
    old_rating          TEXT,
    new_rating          TEXT NOT NULL,
    source              TEXT NOT NULL,
    event               TEXT,
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX quality_events_number ON quality_events (phone_number_id, created_at);

-- Who changed what and when. No foreign keys: the trail outlives the agents it names.
CREATE TABLE audit_events (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    actor               TEXT NOT NULL,
    action              TEXT NOT NULL,
    phone_number_id     TEXT,
    agent_id            TEXT,
    detail              TEXT NOT NULL,
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, created_at, id);

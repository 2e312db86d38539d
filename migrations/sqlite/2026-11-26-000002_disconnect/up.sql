-- Disconnecting an account frees its WABA and its numbers for another workspace, while the rows
-- and their history stay: a WABA id is unique among accounts not disconnected, and Meta's id of a
-- number among numbers not removed. SQLite rebuilds both tables to drop the column constraints.
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE whatsapp_accounts_new (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    waba_id             TEXT NOT NULL,
    name                TEXT,
    access_token_enc    TEXT,
    token_expires_at    TIMESTAMP,
    status              TEXT NOT NULL DEFAULT 'connected',
    last_synced_at      TIMESTAMP,
    last_sync_error     TEXT,
    last_sync_counts    TEXT,
    sync_lease_until    TIMESTAMP,
    sync_lease_owner    TEXT,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);
INSERT INTO whatsapp_accounts_new (id, workspace_id, waba_id, name, access_token_enc,
    token_expires_at, status, last_synced_at, last_sync_error, last_sync_counts, sync_lease_until,
    sync_lease_owner, created_at, updated_at)
SELECT id, workspace_id, waba_id, name, access_token_enc, token_expires_at, status, last_synced_at,
    last_sync_error, last_sync_counts, sync_lease_until, sync_lease_owner, created_at, updated_at
FROM whatsapp_accounts;
DROP TABLE whatsapp_accounts;
ALTER TABLE whatsapp_accounts_new RENAME TO whatsapp_accounts;
CREATE INDEX whatsapp_accounts_workspace ON whatsapp_accounts (workspace_id);
CREATE UNIQUE INDEX whatsapp_accounts_live_waba ON whatsapp_accounts (waba_id)
    WHERE status <> 'disconnected';

CREATE TABLE phone_numbers_new (
    id                              TEXT PRIMARY KEY,
    workspace_id                    TEXT NOT NULL REFERENCES workspaces (id),
    whatsapp_account_id             TEXT NOT NULL REFERENCES whatsapp_accounts (id),
    meta_phone_number_id            TEXT NOT NULL,
    display_phone_number            TEXT NOT NULL,
    display_digits                  TEXT NOT NULL,
    verified_name                   TEXT,
    verified_name_key               TEXT NOT NULL DEFAULT '',
    platform_type                   TEXT NOT NULL,
    quality_rating                  TEXT NOT NULL,
    quality_rank                    TEXT NOT NULL DEFAULT '2',
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
    registration_last_error_code    BIGINT,
    registration_last_attempt_at    TIMESTAMP,
    registration_lease_until        TIMESTAMP,
    registration_lease_owner        TEXT,
    pin_enc                         TEXT,
    last_synced_at                  TIMESTAMP,
    removed_at                      TIMESTAMP,
    created_at                      TIMESTAMP NOT NULL,
    updated_at                      TIMESTAMP NOT NULL
);
INSERT INTO phone_numbers_new (id, workspace_id, whatsapp_account_id, meta_phone_number_id,
    display_phone_number, display_digits, verified_name, verified_name_key, platform_type,
    quality_rating, quality_rank, status, code_verification_status, name_status, messaging_limit,
    throughput_level, account_mode, is_on_biz_app, inbound_agent_id, registration_state,
    registration_last_error, registration_last_error_code, registration_last_attempt_at,
    registration_lease_until, registration_lease_owner, pin_enc, last_synced_at, removed_at,
    created_at, updated_at)
SELECT id, workspace_id, whatsapp_account_id, meta_phone_number_id, display_phone_number,
    display_digits, verified_name, verified_name_key, platform_type, quality_rating, quality_rank,
    status, code_verification_status, name_status, messaging_limit, throughput_level, account_mode,
    is_on_biz_app, inbound_agent_id, registration_state, registration_last_error,
    registration_last_error_code, registration_last_attempt_at, registration_lease_until,
    registration_lease_owner, pin_enc, last_synced_at, removed_at, created_at, updated_at
FROM phone_numbers;
DROP TABLE phone_numbers;
ALTER TABLE phone_numbers_new RENAME TO phone_numbers;
CREATE INDEX phone_numbers_workspace_order ON phone_numbers (workspace_id, display_digits, id);
CREATE INDEX phone_numbers_inbound_agent ON phone_numbers (workspace_id, inbound_agent_id);
CREATE INDEX phone_numbers_account ON phone_numbers (whatsapp_account_id);
CREATE INDEX phone_numbers_by_name ON phone_numbers (workspace_id, verified_name_key, id);
CREATE INDEX phone_numbers_by_platform ON phone_numbers (workspace_id, platform_type, id);
CREATE INDEX phone_numbers_by_meta_id ON phone_numbers (workspace_id, meta_phone_number_id, id);
CREATE INDEX phone_numbers_by_quality ON phone_numbers (workspace_id, quality_rank, id);
CREATE INDEX phone_numbers_meta_id ON phone_numbers (meta_phone_number_id);
CREATE UNIQUE INDEX phone_numbers_live_meta_id ON phone_numbers (meta_phone_number_id)
    WHERE removed_at IS NULL;

COMMIT;
PRAGMA foreign_keys = ON;

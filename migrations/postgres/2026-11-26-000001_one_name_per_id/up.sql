-- One name, one meaning: `phone_number_id` is Meta's id of a number; our own id of a number is
-- `number_id` wherever another table refers to it.
ALTER TABLE phone_numbers RENAME COLUMN phone_number_id TO meta_phone_number_id;
ALTER TABLE registration_attempts RENAME COLUMN phone_number_id TO number_id;
ALTER TABLE quality_events RENAME COLUMN phone_number_id TO number_id;
ALTER TABLE audit_events RENAME COLUMN phone_number_id TO number_id;
ALTER TABLE agents RENAME COLUMN outbound_phone_number_id TO outbound_number_id;

-- The table sorts by quality worst first (RED, YELLOW, UNKNOWN, GREEN) and by its other columns,
-- keyset-paged: each order has an index ending in the id.
ALTER TABLE phone_numbers ADD COLUMN quality_rank TEXT NOT NULL DEFAULT '2';
UPDATE phone_numbers SET quality_rank = CASE quality_rating
    WHEN 'RED' THEN '0' WHEN 'YELLOW' THEN '1' WHEN 'GREEN' THEN '3' ELSE '2' END;
CREATE INDEX phone_numbers_by_name ON phone_numbers (workspace_id, verified_name_key, id);
CREATE INDEX phone_numbers_by_platform ON phone_numbers (workspace_id, platform_type, id);
CREATE INDEX phone_numbers_by_meta_id ON phone_numbers (workspace_id, meta_phone_number_id, id);
CREATE INDEX phone_numbers_by_quality ON phone_numbers (workspace_id, quality_rank, id);

-- Meta's code of the last failed register call, for the Actions column (retry or not).
ALTER TABLE phone_numbers ADD COLUMN registration_last_error_code BIGINT;

-- Leases have owners: only the attempt (or sync) that took one renews or releases it.
ALTER TABLE phone_numbers ADD COLUMN registration_lease_owner TEXT;
ALTER TABLE whatsapp_accounts ADD COLUMN sync_lease_owner TEXT;

-- What the last successful sync changed, so a manual sync moments later answers it again
-- instead of calling Meta (JSON: {"added", "updated", "removed"}).
ALTER TABLE whatsapp_accounts ADD COLUMN last_sync_counts TEXT;

-- Every call to a WABA's management endpoints, for the service's own budget below Meta's
-- (200 an hour per WABA; 5,000 once it has a registered number).
CREATE TABLE graph_calls (
    id          TEXT PRIMARY KEY,
    waba_id     TEXT NOT NULL,
    called_at   TIMESTAMP NOT NULL
);
CREATE INDEX graph_calls_by_waba ON graph_calls (waba_id, called_at);

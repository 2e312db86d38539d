-- Disconnecting an account frees its WABA and its numbers for another workspace, while the rows
-- and their history stay: a WABA id is unique among accounts not disconnected, and Meta's id of a
-- number among numbers not removed.
ALTER TABLE whatsapp_accounts DROP CONSTRAINT whatsapp_accounts_waba_id_key;
CREATE UNIQUE INDEX whatsapp_accounts_live_waba ON whatsapp_accounts (waba_id)
    WHERE status <> 'disconnected';

ALTER TABLE phone_numbers DROP CONSTRAINT phone_numbers_phone_number_id_key;
CREATE INDEX phone_numbers_meta_id ON phone_numbers (meta_phone_number_id);
CREATE UNIQUE INDEX phone_numbers_live_meta_id ON phone_numbers (meta_phone_number_id)
    WHERE removed_at IS NULL;

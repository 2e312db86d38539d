-- Back to column constraints; fails (and changes nothing) when a WABA or a number is held twice.
PRAGMA foreign_keys = OFF;
BEGIN;
DROP INDEX phone_numbers_live_meta_id;
DROP INDEX phone_numbers_meta_id;
CREATE UNIQUE INDEX phone_numbers_meta_id_unique ON phone_numbers (meta_phone_number_id);
DROP INDEX whatsapp_accounts_live_waba;
CREATE UNIQUE INDEX whatsapp_accounts_waba_unique ON whatsapp_accounts (waba_id);
COMMIT;
PRAGMA foreign_keys = ON;

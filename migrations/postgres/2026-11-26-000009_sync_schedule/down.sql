DROP INDEX whatsapp_accounts_next_sync;
ALTER TABLE whatsapp_accounts DROP COLUMN next_sync_at;

ALTER TABLE whatsapp_accounts DROP COLUMN last_sync_failure;
ALTER TABLE whatsapp_accounts DROP COLUMN last_sync_failed_at;

-- A sync that Meta failed moments ago is answered again instead of calling Meta (its error, as JSON).
ALTER TABLE whatsapp_accounts ADD COLUMN last_sync_failed_at TIMESTAMP;
ALTER TABLE whatsapp_accounts ADD COLUMN last_sync_failure TEXT;

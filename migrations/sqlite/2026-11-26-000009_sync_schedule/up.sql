-- When the background sync next takes the account (set after each background sync from the
-- account's call budget): instances take due accounts in small batches, soonest first, instead
-- of every instance scanning every account every minute.
ALTER TABLE whatsapp_accounts ADD COLUMN next_sync_at TIMESTAMP;
CREATE INDEX whatsapp_accounts_next_sync ON whatsapp_accounts (status, next_sync_at);

DROP INDEX phone_numbers_live_meta_id;
DROP INDEX phone_numbers_meta_id;
ALTER TABLE phone_numbers ADD CONSTRAINT phone_numbers_phone_number_id_key UNIQUE (meta_phone_number_id);
DROP INDEX whatsapp_accounts_live_waba;
ALTER TABLE whatsapp_accounts ADD CONSTRAINT whatsapp_accounts_waba_id_key UNIQUE (waba_id);

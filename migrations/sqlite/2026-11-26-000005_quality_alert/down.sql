ALTER TABLE phone_numbers DROP COLUMN quality_alert;

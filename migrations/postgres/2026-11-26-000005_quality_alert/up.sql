-- Set while a number's quality is bad: its rating dropped, or Meta's status of it turned flagged,
-- restricted, banned or disconnected (JSON: since, reason, previous_rating). Cleared on recovery.
ALTER TABLE phone_numbers ADD COLUMN quality_alert TEXT;

DROP TABLE send_pacing;
ALTER TABLE messages DROP COLUMN template;

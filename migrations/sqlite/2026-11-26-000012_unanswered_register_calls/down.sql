ALTER TABLE registration_attempts DROP COLUMN meta_unavailable;

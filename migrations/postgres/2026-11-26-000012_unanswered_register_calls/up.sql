-- Register calls Meta did not answer usefully (down, timing out, a transient error): while the latest
-- ones are, tries pause and make one call each, so an outage does not spend the 10 calls in 72 hours.
ALTER TABLE registration_attempts ADD COLUMN meta_unavailable BOOLEAN NOT NULL DEFAULT FALSE;

DROP TABLE audit_events;
DROP TABLE quality_events;
DROP TABLE registration_attempts;
ALTER TABLE agents DROP CONSTRAINT agents_outbound_fk;
DROP TABLE phone_numbers;
DROP TABLE agents;
DROP TABLE whatsapp_accounts;
DROP TABLE workspaces;

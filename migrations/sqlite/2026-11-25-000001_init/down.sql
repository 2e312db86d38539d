DROP TABLE audit_events;
DROP TABLE quality_events;
DROP TABLE registration_attempts;
DROP TABLE agents;
DROP TABLE phone_numbers;
DROP TABLE whatsapp_accounts;
DROP TABLE workspaces;

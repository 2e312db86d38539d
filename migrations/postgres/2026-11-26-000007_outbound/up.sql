-- Messages an agent sends first: a template's name, language and components (JSON), beside the
-- text of text messages.
ALTER TABLE messages ADD COLUMN template TEXT;
-- Meta's rate limits as cell-rate algorithms (domain::outbound::Pace), shared by every instance:
-- per number (`number:<id>`) and per number and recipient (`pair:<number id>:<customer id>`), the
-- theoretical arrival time of the next message in microseconds since the Unix epoch.
CREATE TABLE send_pacing (
    pace_key    TEXT PRIMARY KEY,
    tat         BIGINT NOT NULL
);

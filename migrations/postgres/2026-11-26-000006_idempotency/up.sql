-- Idempotency-Key: the first answer to a request, kept so that the same key and request get the
-- same answer and nothing is done twice, on any instance.
CREATE TABLE idempotency_keys (
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    operation           TEXT NOT NULL,
    idempotency_key     TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    response_status     BIGINT,
    response_body       TEXT,
    created_at          TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, operation, idempotency_key)
);

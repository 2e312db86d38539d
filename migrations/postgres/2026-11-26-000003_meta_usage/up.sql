-- What Meta last said about each WABA's use of its call limit (its usage headers, or a rate-limit
-- error), shared by every replica: the service's budget follows Meta's count as well as its own.
CREATE TABLE waba_usage (
    waba_id         TEXT PRIMARY KEY,
    used_percent    BIGINT NOT NULL,
    regain_at       TIMESTAMP,
    reported_at     TIMESTAMP NOT NULL
);

-- Workers walk the queue in arrival order and stop at the first few they may take, instead of
-- gathering every due job and sorting them on every claim.
CREATE INDEX webhook_jobs_queue ON webhook_jobs (state, id);

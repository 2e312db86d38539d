CREATE INDEX graph_calls_by_time ON graph_calls (called_at);

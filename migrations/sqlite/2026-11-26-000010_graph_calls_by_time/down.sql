DROP INDEX graph_calls_by_time;

DROP INDEX webhook_jobs_queue;

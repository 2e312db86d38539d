DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE customers;
DROP TABLE webhook_jobs;

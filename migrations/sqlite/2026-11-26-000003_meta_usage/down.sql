DROP TABLE waba_usage;

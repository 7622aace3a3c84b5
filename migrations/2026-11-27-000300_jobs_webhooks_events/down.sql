DROP TABLE connection_events;
DROP TABLE webhook_events;
DROP TABLE jobs;

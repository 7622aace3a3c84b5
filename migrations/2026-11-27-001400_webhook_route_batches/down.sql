DROP INDEX IF EXISTS webhook_events_pending_idx;

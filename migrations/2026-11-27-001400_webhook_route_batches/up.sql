-- Routing runs one job per intake batch that routes every pending delivery, oldest first, in
-- chunks claimed with FOR UPDATE SKIP LOCKED: this partial index is how it finds them (it holds
-- only the deliveries not routed yet, so it stays small).
CREATE INDEX webhook_events_pending_idx ON webhook_events (id) WHERE status = 'pending';

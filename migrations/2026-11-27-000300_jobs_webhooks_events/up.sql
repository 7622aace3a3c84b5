-- The job queue any role uses, provider webhook deliveries, and the per-connection event feed
-- web clients read.

CREATE TABLE jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- A finished job is deleted; `dead` ones stay, with their last error, until retried.
    state text NOT NULL DEFAULT 'queued'
        CONSTRAINT jobs_state_check CHECK (state IN ('queued', 'running', 'dead')),
    -- Higher runs first, within a kind.
    priority integer NOT NULL DEFAULT 0,
    -- Claims so far (the running one included); with `locked_by` it fences a stale worker.
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    run_at timestamptz NOT NULL,
    -- While running: the claim is the worker's until then, and anyone's after.
    lease_until timestamptz,
    locked_by text,
    -- At most one queued or running job per (kind, dedupe_key).
    dedupe_key text,
    last_error text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE INDEX jobs_ready_idx ON jobs (kind, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_dead_idx ON jobs (id) WHERE state = 'dead';
CREATE UNIQUE INDEX jobs_dedupe_key ON jobs (kind, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running');

-- One row per verified delivery, kept whether or not it matched a connection.
CREATE TABLE webhook_events (
    id bigserial PRIMARY KEY,
    provider text NOT NULL,
    -- `Linear-Delivery` / `X-GitHub-Delivery`: a redelivery finds it and stores nothing.
    delivery_id text NOT NULL,
    -- Linear: the body's `type` (`Issue`, `OAuthApp` …); GitHub: `X-GitHub-Event`.
    event_type text NOT NULL,
    action text,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    -- pending until the routing job ran; then routed (>= 1 connection) or unmatched.
    status text NOT NULL DEFAULT 'pending'
        CONSTRAINT webhook_events_status_check CHECK (status IN ('pending', 'routed', 'unmatched')),
    matched integer NOT NULL DEFAULT 0,
    routed_at timestamptz,
    CONSTRAINT webhook_events_provider_delivery_key UNIQUE (provider, delivery_id)
);

CREATE INDEX webhook_events_unmatched_idx ON webhook_events (received_at) WHERE status = 'unmatched';
CREATE INDEX webhook_events_received_at_idx ON webhook_events (received_at);

-- The feed: one row per (event, matching connection). `cursor` is handed out under one advisory
-- lock at the end of the routing transaction, so cursors become visible in order: a reader
-- that has seen cursor N has seen every cursor below it (no gaps for `Last-Event-ID`).
CREATE TABLE connection_events (
    cursor bigserial PRIMARY KEY,
    event_id bigint NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    owner_id text NOT NULL,
    provider text NOT NULL,
    event_type text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT connection_events_event_connection_key UNIQUE (event_id, connection_id)
);

CREATE INDEX connection_events_owner_idx ON connection_events (owner_id, cursor);
CREATE INDEX connection_events_connection_idx ON connection_events (connection_id, cursor);

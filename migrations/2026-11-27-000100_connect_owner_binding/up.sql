-- Connect flows bound to their owner (issue 10, findings 7 and 8) and token refresh by lease
-- (fragile spot 2).

-- A flow belongs to a user: deleting the user deletes the flows they started, and a flow can
-- no longer be started for a user who does not exist (the insert fails with a clear error
-- instead of the callback failing later). "user" is created by the first migration, which every
-- role runs, so the constraint holds for a connectors-only deployment too; connectors code
-- still never reads the table. Orphans from before the constraint cannot finish anyway.
DELETE FROM oauth_flows f WHERE NOT EXISTS (SELECT 1 FROM "user" u WHERE u.id = f.owner_id);
ALTER TABLE oauth_flows
    ADD CONSTRAINT oauth_flows_owner_id_fkey
    FOREIGN KEY (owner_id) REFERENCES "user" (id) ON DELETE CASCADE;
CREATE INDEX oauth_flows_owner_id_idx ON oauth_flows (owner_id);

-- The result of a finished authorization, waiting for its owner to redeem it with their own
-- bearer token (POST /api/connections/complete). A browser that reaches the callback carries a
-- one-time code for it; only the SHA-256 of that code is stored. Generic over what is pending
-- (`kind`: `connection` now, MCP authorizations later).
CREATE TABLE pending_grants (
    -- SHA-256 (hex) of the one-time code.
    code_hash text PRIMARY KEY,
    owner_id text NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    kind text NOT NULL,
    -- What the grant is for: the provider id of a connection, later an MCP server id.
    subject text NOT NULL,
    -- Sealed (AES-256-GCM envelope, bound to code_hash): tokens and the account they name.
    payload text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX pending_grants_owner_id_idx ON pending_grants (owner_id);
CREATE INDEX pending_grants_expires_at_idx ON pending_grants (expires_at);

-- Single-flight refresh without holding a connection: a refresher claims the connection (a
-- random claim id and a lease end) in one short transaction, calls the provider with nothing
-- held, and writes back only while its claim is still there. A crashed claimer's lease runs out.
-- A table of its own rather than two columns: `connections` is at diesel's 16-column limit.
CREATE TABLE refresh_claims (
    connection_id text PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    claim text NOT NULL,
    expires_at timestamptz NOT NULL
);

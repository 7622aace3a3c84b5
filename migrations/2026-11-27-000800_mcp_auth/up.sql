-- MCP authorization (spec §5.5): client registrations per authorization server, the state of
-- flows in progress, and what a credential needs to be refreshed.

-- How we are registered at an authorization server, keyed by its issuer (never reused with
-- another one) and the redirect URI the registration names. Dynamic registrations only:
-- pre-registered clients live in config, and a Client ID Metadata Document needs no row.
CREATE TABLE mcp_oauth_clients (
    issuer text NOT NULL,
    redirect_uri text NOT NULL,
    client_id text NOT NULL,
    -- Sealed (AES-256-GCM envelope `v<N>:…`, bound to issuer and column); NULL for a public client.
    client_secret text,
    token_endpoint_auth_method text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, redirect_uri)
);

-- One authorization in progress: single use (consumed_at), short-lived, the PKCE verifier
-- sealed, and everything the callback needs to exchange the code with the right server.
CREATE TABLE mcp_auth_flows (
    state_hash text PRIMARY KEY,
    owner_id text NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    server_id text NOT NULL REFERENCES mcp_servers (id) ON DELETE CASCADE,
    issuer text NOT NULL,
    token_endpoint text NOT NULL,
    client_id text NOT NULL,
    resource text NOT NULL,
    scopes text[] NOT NULL DEFAULT '{}',
    code_verifier text NOT NULL,
    redirect_to text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    consumed_at timestamptz
);

CREATE INDEX mcp_auth_flows_expires_idx ON mcp_auth_flows (expires_at);

-- A credential from the flow remembers where and as whom to refresh it, the scopes a server
-- asked for on a 403 insufficient_scope (step-up), and a refresh lease (single flight across
-- processes, as connections do).
ALTER TABLE mcp_credentials
    ADD COLUMN token_endpoint text,
    ADD COLUMN client_id text,
    ADD COLUMN resource text,
    ADD COLUMN wanted_scopes text[] NOT NULL DEFAULT '{}',
    ADD COLUMN refresh_claim text,
    ADD COLUMN refresh_claim_expires_at timestamptz;

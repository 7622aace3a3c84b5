-- MCP servers a user can use, the credentials they are reached with (sealed), and a record of
-- every tool call.

CREATE TABLE mcp_servers (
    id text PRIMARY KEY,
    owner_id text NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    name text NOT NULL,
    -- The canonical MCP endpoint (lowercase scheme and host, no trailing slash).
    url text NOT NULL,
    -- A built-in catalog entry tied to a provider ('linear', 'github'), or NULL for a user's own.
    provider text,
    -- The provider connection whose token the server accepts (catalog entries only).
    connection_id text REFERENCES connections (id) ON DELETE SET NULL,
    -- 'modern' (2026-07-28, stateless) or 'legacy' (session-based); NULL until detected.
    era text CONSTRAINT mcp_servers_era_check CHECK (era IN ('modern', 'legacy')),
    protocol_version text,
    needs_authorization boolean NOT NULL DEFAULT false,
    server_info jsonb,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT mcp_servers_owner_url_key UNIQUE (owner_id, url)
);

CREATE INDEX mcp_servers_owner_id_idx ON mcp_servers (owner_id, created_at);

-- Tokens for a server (MCP authorization, §5.5): sealed (AES-256-GCM envelope `v<N>:…`,
-- bound to the row and column), never plaintext. Keyed by server and issuer.
CREATE TABLE mcp_credentials (
    server_id text PRIMARY KEY REFERENCES mcp_servers (id) ON DELETE CASCADE,
    issuer text,
    access_token text NOT NULL,
    refresh_token text,
    expires_at timestamptz,
    scopes text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Every tool call: who, which server and tool, when, how long, ok or error. Arguments and
-- results only when connectors.mcp.record_payloads is on. Kept after the server is deleted.
CREATE TABLE mcp_tool_calls (
    id bigserial PRIMARY KEY,
    owner_id text NOT NULL,
    server_id text NOT NULL,
    tool text NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    ok boolean NOT NULL,
    -- A short error code (ours or the server's), never a payload.
    error text,
    arguments jsonb,
    result jsonb
);

CREATE INDEX mcp_tool_calls_owner_idx ON mcp_tool_calls (owner_id, started_at);

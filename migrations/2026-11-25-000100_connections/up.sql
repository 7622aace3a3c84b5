-- Connectors: third-party accounts a user connected, and OAuth flows waiting for their callback.
-- Tokens and PKCE verifiers are stored sealed (AES-256-GCM envelope `v<N>:…`), never in plaintext.

CREATE TABLE connections (
    id text PRIMARY KEY,
    -- The JWT `sub`. The one constraint into the auth role's tables: deleting a user removes
    -- their connections. Connectors code never reads "user" itself.
    owner_id text NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    provider text NOT NULL,
    -- Which account at the provider (Linear: the viewer, which is per workspace and per actor;
    -- GitHub: the numeric user id). Reconnecting the same account updates the row.
    external_account_id text NOT NULL,
    -- Linear: the organization id every webhook carries.
    external_org_id text,
    display_name text NOT NULL,
    -- Display fields as the provider named them (viewer, organization, login, actor).
    account jsonb NOT NULL DEFAULT '{}'::jsonb,
    scopes text[] NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'active'
        CONSTRAINT connections_status_check CHECK (status IN ('active', 'needs_reauth', 'revoked')),
    access_token text NOT NULL,
    refresh_token text,
    expires_at timestamptz,
    refresh_failures integer NOT NULL DEFAULT 0,
    -- After a transient refresh failure: not before this.
    next_refresh_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT connections_owner_provider_account_key UNIQUE (owner_id, provider, external_account_id)
);

CREATE INDEX connections_owner_id_idx ON connections (owner_id, created_at);
CREATE INDEX connections_refresh_due_idx ON connections (expires_at)
    WHERE status = 'active' AND refresh_token IS NOT NULL;
CREATE INDEX connections_provider_org_idx ON connections (provider, external_org_id);

CREATE TABLE oauth_flows (
    -- SHA-256 (hex) of the `state` handed to the provider: the state itself is never stored.
    state_hash text PRIMARY KEY,
    owner_id text NOT NULL,
    provider text NOT NULL,
    code_verifier text NOT NULL,
    redirect_to text,
    scopes text[] NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    -- Set by the one callback that claims the flow; a replay finds it set.
    consumed_at timestamptz
);

CREATE INDEX oauth_flows_expires_at_idx ON oauth_flows (expires_at);

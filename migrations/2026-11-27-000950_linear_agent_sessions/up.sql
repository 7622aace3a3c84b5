-- Linear agent sessions (spec §2.3): a session Linear opened with our app user, the agent runs
-- that answered it, and every activity we posted to it (by the idempotency id sent to Linear,
-- so a retried job never posts one twice).

CREATE TABLE linear_agent_sessions (
    -- Linear's agentSession.id.
    id text PRIMARY KEY,
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    owner_id text NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    issue_id text,
    -- The session's latest run (a `prompted` follow-up starts a new one; `stop` cancels it).
    run_id text REFERENCES agent_runs (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX linear_agent_sessions_connection ON linear_agent_sessions (connection_id);
CREATE INDEX linear_agent_sessions_owner ON linear_agent_sessions (owner_id);
CREATE INDEX linear_agent_sessions_run ON linear_agent_sessions (run_id);

-- Every run started for a session, keyed by the delivery that asked for it: a retried job finds
-- the run it already made.
CREATE TABLE linear_agent_session_runs (
    run_id text PRIMARY KEY REFERENCES agent_runs (id) ON DELETE CASCADE,
    session_id text NOT NULL REFERENCES linear_agent_sessions (id) ON DELETE CASCADE,
    event_id bigint NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT linear_agent_session_runs_event UNIQUE (session_id, event_id)
);

-- Activities posted, by the id sent as `agentActivityCreate(input: {id})`.
CREATE TABLE linear_agent_activities (
    id text PRIMARY KEY,
    session_id text NOT NULL REFERENCES linear_agent_sessions (id) ON DELETE CASCADE,
    -- thought, action, response, error.
    kind text NOT NULL,
    posted_at timestamptz NOT NULL
);
CREATE INDEX linear_agent_activities_session ON linear_agent_activities (session_id, posted_at);

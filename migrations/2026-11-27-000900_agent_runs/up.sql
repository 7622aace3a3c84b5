-- Agent runs: a prompt, the tools a user can reach, and a loop of model calls and tool calls run
-- as a job. Every step is written as it happens so a re-claimed job resumes where it stopped;
-- events are what the run's SSE stream replays (any process can serve it).

CREATE TABLE agent_runs (
    id text PRIMARY KEY,
    owner_id text NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    -- queued → running → completed (the model ended) | stopped (max_turns, token budget)
    -- | cancelled | failed.
    status text NOT NULL CONSTRAINT agent_runs_status_check
        CHECK (status IN ('queued', 'running', 'completed', 'stopped', 'cancelled', 'failed')),
    prompt text NOT NULL,
    model text NOT NULL,
    -- What the caller asked for besides the prompt: {system, tools, max_turns, max_tokens_budget}
    -- (kept as one document so the row stays within diesel's 16 columns).
    options jsonb NOT NULL,
    -- The tools offered to the model, fixed when the run first starts (so a resumed run offers
    -- the same ones): [{name, server_id, tool, description, input_schema}].
    tool_table jsonb,
    -- Model calls made.
    turns integer NOT NULL DEFAULT 0,
    -- Summed over the calls: {input_tokens, output_tokens, cache_creation_input_tokens,
    -- cache_read_input_tokens}.
    usage jsonb NOT NULL DEFAULT '{}',
    -- end_turn, max_tokens, refusal … (the model's), or max_turns, token_budget, cancelled, error.
    stop_reason text,
    final_text text,
    error text,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz
);

CREATE INDEX agent_runs_owner_created_idx ON agent_runs (owner_id, created_at);
CREATE INDEX agent_runs_owner_active_idx ON agent_runs (owner_id) WHERE status IN ('queued', 'running');

-- One model call (kind 'model': the assistant message as received, usage, request id) or one
-- tool call (kind 'tool': recorded as 'started' before it runs, then 'ok' / 'error' with the
-- tool_result content). A tool step left 'started' by a crash is never run again.
CREATE TABLE agent_steps (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL REFERENCES agent_runs (id) ON DELETE CASCADE,
    turn integer NOT NULL,
    kind text NOT NULL CONSTRAINT agent_steps_kind_check CHECK (kind IN ('model', 'tool')),
    status text NOT NULL CONSTRAINT agent_steps_status_check
        CHECK (status IN ('started', 'ok', 'error', 'interrupted', 'cancelled')),
    -- model: the assistant content blocks; tool: the tool_result content blocks.
    content jsonb,
    stop_reason text,
    usage jsonb,
    request_id text,
    tool_use_id text,
    tool_name text,
    input jsonb,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    duration_ms integer
);

CREATE UNIQUE INDEX agent_steps_model_turn_key ON agent_steps (run_id, turn) WHERE kind = 'model';
CREATE UNIQUE INDEX agent_steps_tool_use_key ON agent_steps (run_id, tool_use_id) WHERE kind = 'tool';
CREATE INDEX agent_steps_run_idx ON agent_steps (run_id, id);

-- What the run's SSE stream sends: `id` is the cursor (`Last-Event-ID`).
CREATE TABLE agent_events (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL REFERENCES agent_runs (id) ON DELETE CASCADE,
    event_type text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE INDEX agent_events_run_idx ON agent_events (run_id, id);

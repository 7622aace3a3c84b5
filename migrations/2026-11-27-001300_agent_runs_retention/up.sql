-- Finished agent runs past connectors.agents.retention_days are pruned (with their steps and
-- events, by cascade) by the events_prune job: this finds them without reading every run.
CREATE INDEX agent_runs_finished_idx ON agent_runs (finished_at) WHERE finished_at IS NOT NULL;

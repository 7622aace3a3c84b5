DROP INDEX agent_runs_finished_idx;

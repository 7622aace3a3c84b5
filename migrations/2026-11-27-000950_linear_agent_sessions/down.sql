DROP TABLE linear_agent_activities;
DROP TABLE linear_agent_session_runs;
DROP TABLE linear_agent_sessions;

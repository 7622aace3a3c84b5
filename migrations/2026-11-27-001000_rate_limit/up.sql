-- Better Auth's `rateLimit` model (spec §7, §9.3) for `auth.rate_limit.storage = "database"`, in
-- the snake_case layout of the other Better Auth tables: one row per client-and-path bucket,
-- `last_request` in Unix milliseconds. Every auth process counts here, so limits hold across them.
-- UNLOGGED: a checked request's write needs no WAL flush at commit (on this project's 2-core VM
-- that flush was 6.5 ms of the 6.7 ms a check took); the price is that a crash of PostgreSQL
-- empties the table, and a standby has no copy: every client starts a fresh window, as after a
-- restart with memory storage. A lower fillfactor leaves room on each page for the updated row
-- version, so the update each check makes stays a HOT update (only `key` is indexed).
CREATE UNLOGGED TABLE rate_limit (
    id text PRIMARY KEY,
    key text NOT NULL,
    count integer NOT NULL,
    last_request bigint NOT NULL,
    CONSTRAINT rate_limit_key_key UNIQUE (key)
) WITH (fillfactor = 70);

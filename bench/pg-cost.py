#!/usr/bin/env python3
"""PostgreSQL CPU per webhook delivery, old design vs new, measured inside the backend
(/proc/self/stat of the session's backend, read with pg_read_file: CPU time, not wall time, so a
busy machine changes it little). Drives psql; needs a migrated scratch database.

  intake: batches of BATCH deliveries through the intake statement, prepared (PREPARE/EXECUTE),
          old = one jobs row per delivery (and no pending index), new = one jobs row per batch.
  route:  old = the former per-delivery routing job, statement by statement as the server sent
          them (claim, BEGIN, event FOR UPDATE, connections, advisory lock, feed insert, event
          update, job delete, COMMIT); new = one job per batch, the first routing everything in
          chunks of 500 (claim, connections, advisory lock, one feed insert and one update from
          arrays) after deleting the other waiting routing jobs. Every delivery matches one connection.

  bench/pg-cost.py DATABASE_URL [DELIVERIES=20000] [BATCH=32] [all|intake|route]
"""
import json, subprocess, sys, uuid

url = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 32
body = json.load(open("/work/shared/baseline/bench/linear-issue.json"))
body["organizationId"] = "bench-org"
raw = json.dumps(body, separators=(",", ":"))

CPU = "SELECT 'cpu', (string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' '))[12]::bigint + (string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' '))[13]::bigint;"

def run(script):
    out = subprocess.run(["psql", url, "-Atq", "-v", "ON_ERROR_STOP=1", "-F", " "],
                         input=script, capture_output=True, text=True, check=True).stdout
    ticks = [int(l.split()[1]) for l in out.splitlines() if l.startswith("cpu ")]
    return ticks[1] - ticks[0]

def lit(s):
    return "'" + s.replace("'", "''") + "'"

HEAD = ("WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) "
        "WITH ORDINALITY AS t(provider, delivery_id, event_type, action, payload, ord)), "
        "e AS (INSERT INTO webhook_events (provider, delivery_id, event_type, action, payload, received_at) "
        "SELECT DISTINCT ON (provider, delivery_id) provider, delivery_id, event_type, action, payload, $6 "
        "FROM input ORDER BY provider, delivery_id, ord "
        "ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id, provider, delivery_id), "
        "j AS (INSERT INTO jobs (kind, payload, priority, max_attempts, run_at, created_at, updated_at) ")
OLD_J = "SELECT $7, jsonb_build_object('event_id', e.id), 0, $8, $6, $6, $6 FROM e) SELECT provider, delivery_id FROM e"
NEW_J = ("SELECT $7, jsonb_build_object('deliveries', (SELECT count(*) FROM e)), 0, $8, $6, $6, $6 "
         "WHERE EXISTS (SELECT 1 FROM e)) SELECT provider, delivery_id FROM e")

def intake(variant):
    sql = HEAD + (OLD_J if variant == "old" else NEW_J)
    lines = [f"PREPARE ins(text[], text[], text[], text[], jsonb[], timestamptz, text, int) AS {sql};",
             CPU, "\\o /dev/null"]
    arr_p = "ARRAY[" + ",".join(["'linear'"] * batch) + "]"
    arr_t = "ARRAY[" + ",".join(["'Issue'"] * batch) + "]"
    arr_a = "ARRAY[" + ",".join(["'update'"] * batch) + "]"
    arr_b = "ARRAY[" + ",".join([lit(raw)] * batch) + "]::jsonb[]"
    for _ in range(n // batch):
        ids = "ARRAY[" + ",".join(lit(str(uuid.uuid4())) for _ in range(batch)) + "]"
        lines.append(f"EXECUTE ins({arr_p}, {ids}, {arr_t}, {arr_a}, {arr_b}, now(), 'webhook_route', 5);")
    lines += ["\\o", CPU]
    return run("\n".join(lines) + "\n")

CLAIM1 = ("UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = now() + interval '60 s', "
          "locked_by = 'w_bench', updated_at = now() WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' "
          "AND kind = 'webhook_route' AND run_at <= now() ORDER BY priority DESC, run_at, id LIMIT 1 "
          "FOR UPDATE SKIP LOCKED) RETURNING id AS jid, coalesce((payload->>'event_id')::bigint, 0) AS eid \\gset")
FINISH = "DELETE FROM jobs WHERE id = :jid AND state = 'running' AND locked_by = 'w_bench' AND attempts = 1;"

def route_old(jobs):
    lines = [CPU, "\\o /dev/null"]
    for _ in range(jobs):
        lines += [
            "\\o", CLAIM1, "\\o /dev/null",
            "BEGIN;",
            "SELECT provider, event_type, action, CASE WHEN provider = 'linear' AND event_type <> 'AgentSessionEvent' "
            "THEN jsonb_build_object('organizationId', payload->'organizationId') ELSE payload END AS payload, status, received_at "
            "FROM webhook_events WHERE id = :eid FOR UPDATE;",
            "SELECT id, owner_id FROM connections WHERE provider = 'linear' AND external_org_id = ANY(ARRAY['bench-org']) "
            "AND status <> 'revoked' ORDER BY created_at, id;",
            "SELECT pg_advisory_xact_lock(91625139217732);",
            "INSERT INTO connection_events (event_id, connection_id, owner_id, provider, event_type, created_at) "
            "VALUES (:eid, 'conn_bench', 'u1', 'linear', 'Issue', now()) ON CONFLICT DO NOTHING;",
            "UPDATE webhook_events SET status = 'routed', matched = 1, routed_at = now() WHERE id = :eid;",
            FINISH,
            "COMMIT;",
        ]
    lines += ["\\o", CPU]
    return run("\n".join(lines) + "\n")

NEW_CLAIM = ("SELECT id, provider, event_type, action, received_at, "
    "CASE WHEN provider = 'linear' AND event_type = 'AgentSessionEvent' THEN payload "
    "WHEN provider = 'linear' THEN jsonb_build_object('organizationId', payload->'organizationId') ELSE '{}'::jsonb END AS payload "
    "FROM webhook_events WHERE status = 'pending' ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED")

def route_new(jobs, events):
    """The new run as statements: the first job routes everything in chunks of 500, the others
    find nothing pending; one feed insert and one update per chunk, from arrays."""
    lines = [CPU, "\\o /dev/null"]
    chunks = events // 500 + 1
    for j in range(jobs):
        lines += ["\\o", CLAIM1, "\\o /dev/null"]
        for c in range(chunks if j == 0 else 1):
            lines += [
                "BEGIN;",
                # The first transaction of a run deletes the routing jobs waiting behind it.
                ("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE kind = 'webhook_route' AND state = 'queued' "
                 "AND id <> :jid FOR UPDATE SKIP LOCKED);") if c == 0 else "",
                "\\o",
                f"WITH c AS ({NEW_CLAIM}) SELECT coalesce(array_agg(id ORDER BY id), '{{}}')::text AS ids, count(*) AS k, "
                "coalesce(array_agg(payload), '{}')::text AS p FROM c \\gset",
                "\\o /dev/null",
                "SELECT id, owner_id, provider, external_account_id, external_org_id FROM connections "
                "WHERE status <> 'revoked' AND ((provider = 'linear' AND external_org_id = ANY(ARRAY['bench-org'])) "
                "OR (provider = 'github' AND external_account_id = ANY(ARRAY[]::text[]))) ORDER BY created_at, id;",
                "SELECT pg_advisory_xact_lock(91625139217732);",
                "INSERT INTO connection_events (event_id, connection_id, owner_id, provider, event_type, created_at) "
                "SELECT event_id, connection_id, owner_id, provider, event_type, created_at FROM unnest(:'ids'::bigint[], "
                "array_fill('conn_bench'::text, ARRAY[:k]), array_fill('u1'::text, ARRAY[:k]), array_fill('linear'::text, ARRAY[:k]), "
                "array_fill('Issue'::text, ARRAY[:k]), array_fill(now(), ARRAY[:k])) WITH ORDINALITY "
                "AS f(event_id, connection_id, owner_id, provider, event_type, created_at, ord) ORDER BY ord ON CONFLICT DO NOTHING;",
                "UPDATE webhook_events w SET status = m.status, matched = m.matched, routed_at = now() FROM "
                "unnest(:'ids'::bigint[], array_fill('routed'::text, ARRAY[:k]), array_fill(1, ARRAY[:k])) AS m(id, status, matched) WHERE w.id = m.id;",
            ]
            lines += ["COMMIT;"]
        lines += [FINISH]
    lines += ["\\o", CPU]
    return run("\n".join(lines) + "\n")

def reset(pending_index):
    index = ("CREATE INDEX IF NOT EXISTS webhook_events_pending_idx ON webhook_events (id) WHERE status = 'pending'"
             if pending_index else "DROP INDEX IF EXISTS webhook_events_pending_idx")
    for stmt in ["TRUNCATE webhook_events, jobs, connection_events", index, "VACUUM ANALYZE webhook_events",
                 "VACUUM ANALYZE jobs", "CHECKPOINT"]:
        subprocess.run(["psql", url, "-qc", stmt], check=True, capture_output=True)

what = sys.argv[4] if len(sys.argv) > 4 else "all"
hz = 100
if what in ("all", "intake"):
    for variant in ("old", "new", "old", "new"):
        reset(variant == "new")
        t = intake(variant)
        print(f"intake {variant}: {t / hz / n * 1e6:.1f} us PostgreSQL CPU per delivery ({n} in batches of {batch})", flush=True)
if what in ("all", "route"):
    for variant in ("old", "new"):
        reset(variant == "new")
        intake(variant)
        jobs = n if variant == "old" else 1  # the first run absorbs the other batches' jobs
        t = route_old(jobs) if variant == "old" else route_new(jobs, n)
        left = subprocess.run(["psql", url, "-Atc", "SELECT count(*) FROM webhook_events WHERE status = 'pending'"],
                              capture_output=True, text=True).stdout.strip()
        print(f"route {variant} ({jobs} jobs): {t / hz / n * 1e6:.1f} us PostgreSQL CPU per delivery, {left} left pending", flush=True)

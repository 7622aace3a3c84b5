//! The PostgreSQL job queue: enqueue inside a transaction, claims, leases (injected clock),
//! retries with backoff, dead jobs, priorities, dedupe, shutdown, the operator views.

use crate::common::{TestApp, TestDb, test_config};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::db::build_pool;
use switchboard::jobs::{self, EnqueueOpts, JobError, Registry, Runner, store};
use switchboard::platform::clock::{Clock, ManualClock, SharedClock};
use switchboard::platform::config::JobsConfig;
use switchboard::platform::role::Role;

type Runs = Arc<Mutex<HashMap<i64, usize>>>;

fn config(db: &TestDb) -> (switchboard::platform::config::Config, JobsConfig) {
    let config = test_config(&[("DATABASE_URL", db.url())]);
    let jobs = config.jobs.clone();
    (config, jobs)
}

/// A registry with `count` (records each run) and `fail` (always fails).
fn registry(runs: &Runs, order: &Arc<Mutex<Vec<i64>>>) -> Registry {
    let mut registry = Registry::new();
    let r = runs.clone();
    let o = order.clone();
    registry.register("count", move |job| {
        let r = r.clone();
        let o = o.clone();
        async move {
            *r.lock().unwrap().entry(job.id).or_default() += 1;
            o.lock().unwrap().push(job.id);
            Ok(())
        }
    });
    registry.register("fail", |_job| async {
        Err(JobError::retry("boom: upstream said no"))
    });
    registry
}

fn runner(
    db: &TestDb,
    clock: SharedClock,
    registry: Registry,
    tweak: impl FnOnce(&mut JobsConfig),
) -> Runner {
    let (config, mut jobs) = config(db);
    tweak(&mut jobs);
    Runner::new(build_pool(&config.database), clock, jobs, registry)
}

fn enqueue(
    db: &TestDb,
    now: chrono::DateTime<chrono::Utc>,
    kind: &str,
    opts: EnqueueOpts,
) -> Option<i64> {
    let mut conn = db.conn();
    jobs::enqueue(&mut conn, now, kind, &json!({ "n": 1 }), &opts).unwrap()
}

#[derive(QueryableByName, Debug)]
struct JobState {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
}

/// Registers `kind` with a handler that never ends; returns how many of its jobs have started.
fn never_ending(registry: &mut Registry, kind: &str) -> Arc<std::sync::atomic::AtomicUsize> {
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = started.clone();
    registry.register(kind, move |_job| {
        let s = s.clone();
        async move {
            s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    started
}

/// Waits (up to 30 s) until `n` jobs have started; returns how many have.
async fn started_at_least(started: &std::sync::atomic::AtomicUsize, n: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while started.load(std::sync::atomic::Ordering::SeqCst) < n
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.load(std::sync::atomic::Ordering::SeqCst)
}

fn state_of(db: &TestDb, id: i64) -> Option<JobState> {
    diesel::sql_query("SELECT state, attempts, last_error FROM jobs WHERE id = $1")
        .bind::<BigInt, _>(id)
        .get_result(&mut db.conn())
        .optional()
        .unwrap()
}

fn count_jobs(db: &TestDb) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT count(*) AS n FROM jobs")
        .get_result::<N>(&mut db.conn())
        .unwrap()
        .n
}

#[actix_web::test]
async fn enqueue_commits_or_rolls_back_with_the_callers_transaction() {
    let db = TestDb::new();
    let clock = ManualClock::starting_now();
    let mut conn = db.conn();
    let _ = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        jobs::enqueue(
            conn,
            clock.now(),
            "count",
            &json!({}),
            &EnqueueOpts::default(),
        )
        .unwrap();
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert_eq!(count_jobs(&db), 0, "a rolled-back enqueue leaves no job");
    conn.transaction::<(), diesel::result::Error, _>(|conn| {
        jobs::enqueue(
            conn,
            clock.now(),
            "count",
            &json!({}),
            &EnqueueOpts::default(),
        )
        .unwrap();
        Ok(())
    })
    .unwrap();
    assert_eq!(count_jobs(&db), 1);
}

#[actix_web::test]
async fn a_dedupe_key_keeps_one_waiting_job_per_kind() {
    let db = TestDb::new();
    let now = ManualClock::starting_now().now();
    let opts = EnqueueOpts {
        dedupe_key: Some("sweep".into()),
        ..Default::default()
    };
    assert!(enqueue(&db, now, "count", opts.clone()).is_some());
    assert!(
        enqueue(&db, now, "count", opts.clone()).is_none(),
        "second enqueue dropped"
    );
    assert!(
        enqueue(&db, now, "fail", opts.clone()).is_some(),
        "another kind is another key"
    );
    assert_eq!(count_jobs(&db), 2);
}

#[actix_web::test]
async fn two_workers_never_run_one_job() {
    let db = TestDb::new();
    let clock: SharedClock = Arc::new(ManualClock::starting_now());
    let now = clock.now();
    let ids: Vec<i64> = (0..300)
        .map(|_| enqueue(&db, now, "count", EnqueueOpts::default()).unwrap())
        .collect();
    let runs: Runs = Arc::default();
    let order = Arc::default();
    let a = runner(&db, clock.clone(), registry(&runs, &order), |c| {
        c.default_concurrency = 4
    })
    .start();
    let b = runner(&db, clock.clone(), registry(&runs, &order), |c| {
        c.default_concurrency = 4
    })
    .start();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count_jobs(&db) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(count_jobs(&db), 0, "all jobs finished");
    let runs = runs.lock().unwrap();
    for id in ids {
        assert_eq!(
            runs.get(&id),
            Some(&1),
            "job {id} ran {:?} times",
            runs.get(&id)
        );
    }
}

#[actix_web::test]
async fn a_job_whose_worker_died_is_reclaimed_after_its_lease_and_completed_once() {
    let db = TestDb::new();
    let clock = Arc::new(ManualClock::starting_now());
    let id = enqueue(&db, clock.now(), "count", EnqueueOpts::default()).unwrap();
    // A worker claims it and dies mid-run: its claim stays, nothing finishes it.
    let lease = chrono::Duration::seconds(60);
    let dead = store::claim(
        &mut db.conn(),
        clock.now(),
        "count",
        10,
        "w_crashed",
        clock.now() + lease,
    )
    .unwrap();
    assert_eq!(dead.len(), 1);

    let runs: Runs = Arc::default();
    let order = Arc::default();
    let live = runner(&db, clock.clone(), registry(&runs, &order), |c| {
        c.lease_secs = 60
    });
    assert_eq!(
        live.run_until_idle().await.unwrap(),
        0,
        "the lease still holds"
    );
    assert_eq!(state_of(&db, id).unwrap().state, "running");

    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(live.run_until_idle().await.unwrap(), 1);
    assert_eq!(runs.lock().unwrap().get(&id), Some(&1), "completed once");
    assert!(state_of(&db, id).is_none(), "finished jobs are deleted");
    // The crashed worker cannot finish it afterwards (fenced on its claim).
    assert!(!store::complete(&mut db.conn(), &dead[0]).unwrap());
    assert_eq!(live.run_until_idle().await.unwrap(), 0);
}

#[actix_web::test]
async fn a_poison_job_ends_dead_with_its_error_after_backoff_and_can_be_retried() {
    let db = TestDb::new();
    let clock = Arc::new(ManualClock::starting_now());
    let id = enqueue(
        &db,
        clock.now(),
        "fail",
        EnqueueOpts {
            max_attempts: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    let runs: Runs = Arc::default();
    let order = Arc::default();
    let w = runner(&db, clock.clone(), registry(&runs, &order), |c| {
        c.backoff_base_ms = 10_000;
        c.backoff_max_secs = 3600;
    });
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    let s = state_of(&db, id).unwrap();
    assert_eq!((s.state.as_str(), s.attempts), ("queued", 1));
    // Backoff: not ready 7 s later (10 s − 20 % jitter is the earliest), ready after 12 s.
    clock.advance(chrono::Duration::seconds(7));
    assert_eq!(w.run_until_idle().await.unwrap(), 0);
    clock.advance(chrono::Duration::seconds(5));
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    assert_eq!(state_of(&db, id).unwrap().attempts, 2);
    clock.advance(chrono::Duration::seconds(25));
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    let s = state_of(&db, id).unwrap();
    assert_eq!(s.state, "dead");
    assert_eq!(s.attempts, 3);
    assert_eq!(s.last_error.as_deref(), Some("boom: upstream said no"));
    clock.advance(chrono::Duration::hours(10));
    assert_eq!(w.run_until_idle().await.unwrap(), 0, "dead jobs stay dead");

    assert!(store::retry(&mut db.conn(), clock.now(), id).unwrap());
    let s = state_of(&db, id).unwrap();
    assert_eq!((s.state.as_str(), s.attempts), ("queued", 0));
}

#[actix_web::test]
async fn a_panicking_handler_counts_as_a_failure() {
    let db = TestDb::new();
    let clock = Arc::new(ManualClock::starting_now());
    let mut registry = Registry::new();
    registry.register("panics", |job| async move {
        if job.attempt > 0 {
            panic!("handler bug");
        }
        Ok(())
    });
    let id = enqueue(
        &db,
        clock.now(),
        "panics",
        EnqueueOpts {
            max_attempts: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let w = runner(&db, clock.clone(), registry, |_| {});
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    let s = state_of(&db, id).unwrap();
    assert_eq!(s.state, "dead");
    assert_eq!(s.last_error.as_deref(), Some("the handler panicked"));
}

#[actix_web::test]
async fn higher_priority_and_earlier_jobs_run_first_and_future_ones_wait() {
    let db = TestDb::new();
    let clock = Arc::new(ManualClock::starting_now());
    let now = clock.now();
    let low = enqueue(&db, now, "count", EnqueueOpts::default()).unwrap();
    let high = enqueue(
        &db,
        now,
        "count",
        EnqueueOpts {
            priority: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let later = enqueue(
        &db,
        now,
        "count",
        EnqueueOpts {
            priority: 100,
            run_at: Some(now + chrono::Duration::minutes(5)),
            ..Default::default()
        },
    )
    .unwrap();
    let runs: Runs = Arc::default();
    let order: Arc<Mutex<Vec<i64>>> = Arc::default();
    let w = runner(&db, clock.clone(), registry(&runs, &order), |_| {});
    assert_eq!(w.run_until_idle().await.unwrap(), 2);
    assert_eq!(*order.lock().unwrap(), vec![high, low]);
    clock.advance(chrono::Duration::minutes(5));
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    assert_eq!(order.lock().unwrap().last(), Some(&later));
}

#[actix_web::test]
async fn shutdown_releases_claims_it_could_not_finish() {
    let db = TestDb::new();
    let clock = Arc::new(ManualClock::starting_now());
    let mut registry = Registry::new();
    let started = Arc::new(tokio::sync::Notify::new());
    let s = started.clone();
    registry.register("slow", move |_job| {
        let s = s.clone();
        async move {
            s.notify_one();
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let id = enqueue(&db, clock.now(), "slow", EnqueueOpts::default()).unwrap();
    let handle = runner(&db, clock.clone(), registry, |c| {
        c.shutdown_grace_secs = 0;
        c.poll_interval_ms = 10;
    })
    .start();
    tokio::time::timeout(Duration::from_secs(30), started.notified())
        .await
        .unwrap();
    assert_eq!(state_of(&db, id).unwrap().state, "running");
    handle.shutdown().await;
    let s = state_of(&db, id).unwrap();
    assert_eq!(
        (s.state.as_str(), s.attempts),
        ("queued", 0),
        "released, the attempt not counted"
    );
}

/// Long jobs (agent runs) may hold most of a kind's slots for minutes: a job queued behind them
/// takes a free slot within a poll interval, not once a quarter of the slots are free again.
#[actix_web::test]
async fn a_free_slot_is_used_while_long_jobs_hold_the_others() {
    let db = TestDb::new();
    let clock = Arc::new(ManualClock::starting_now());
    let mut registry = Registry::new();
    let started = never_ending(&mut registry, "slow");
    for _ in 0..7 {
        enqueue(&db, clock.now(), "slow", EnqueueOpts::default()).unwrap();
    }
    let handle = runner(&db, clock.clone(), registry, |c| {
        c.default_concurrency = 8;
        c.shutdown_grace_secs = 0;
        c.poll_interval_ms = 10;
    })
    .start();
    let wait_for = |n: usize| started_at_least(&started, n);
    assert_eq!(
        wait_for(7).await,
        7,
        "seven long jobs hold seven of eight slots"
    );
    let late = enqueue(&db, clock.now(), "slow", EnqueueOpts::default()).unwrap();
    assert_eq!(wait_for(8).await, 8, "the eighth job took the free slot");
    assert_eq!(state_of(&db, late).unwrap().state, "running");
    handle.shutdown().await;
}

/// A claim that got fewer jobs than the worker had room for found the queue empty: the worker
/// waits for a wake-up (or its poll) instead of asking again at once, which cost a transaction
/// per job. Claims are counted by a statement trigger on `jobs` in this test's database.
#[actix_web::test]
async fn a_claim_that_empties_the_queue_is_not_repeated_at_once() {
    let db = TestDb::new();
    let clock = Arc::new(ManualClock::starting_now());
    diesel::sql_query("CREATE SEQUENCE claims_seen")
        .execute(&mut db.conn())
        .unwrap();
    diesel::sql_query(
        "CREATE FUNCTION count_claims() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF current_query() LIKE '%SET state = ''running'', attempts%' THEN \
             PERFORM nextval('claims_seen'); \
           END IF; \
           RETURN NULL; \
         END $$",
    )
    .execute(&mut db.conn())
    .unwrap();
    diesel::sql_query(
        "CREATE TRIGGER count_claims AFTER UPDATE ON jobs \
         FOR EACH STATEMENT EXECUTE FUNCTION count_claims()",
    )
    .execute(&mut db.conn())
    .unwrap();
    let claims = || {
        #[derive(QueryableByName)]
        struct Seen {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        diesel::sql_query(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM claims_seen",
        )
        .get_result::<Seen>(&mut db.conn())
        .unwrap()
        .n
    };
    let mut registry = Registry::new();
    let started = never_ending(&mut registry, "held");
    let wait_for = |n: usize| started_at_least(&started, n);
    enqueue(&db, clock.now(), "held", EnqueueOpts::default()).unwrap();
    let wake = Arc::new(tokio::sync::Notify::new());
    let handle = runner(&db, clock.clone(), registry, |c| {
        c.default_concurrency = 8;
        c.shutdown_grace_secs = 0;
        // No poll during the test: only the wake-up below makes the worker claim.
        c.poll_interval_ms = 600_000;
    })
    .with_wake(wake.clone())
    .start();
    assert_eq!(wait_for(1).await, 1);
    // A job queued in this process wakes the worker, which claims it.
    enqueue(&db, clock.now(), "held", EnqueueOpts::default()).unwrap();
    wake.notify_one();
    assert_eq!(wait_for(2).await, 2);
    // Stopped first (a shutdown claims nothing), so no claim can still be in flight.
    handle.shutdown().await;
    assert_eq!(claims(), 2, "one claim per job: none asked again at once");
}

#[actix_web::test]
async fn metrics_show_depth_oldest_age_and_dead_jobs() {
    let mut app = TestApp::new();
    let now = app.clock_now();
    for _ in 0..3 {
        enqueue(&app.db, now, "count", EnqueueOpts::default()).unwrap();
    }
    let dead = enqueue(&app.db, now, "fail", EnqueueOpts::default()).unwrap();
    diesel::sql_query(
        "UPDATE jobs SET state = 'dead', last_error = 'secret-ish detail' WHERE id = $1",
    )
    .bind::<BigInt, _>(dead)
    .execute(&mut app.db.conn())
    .unwrap();
    app.clock.advance(chrono::Duration::seconds(90));
    for role in [Role::Auth, Role::Connectors] {
        if !role.compiled_in() {
            continue;
        }
        let res = app.get(role, "/metrics").await;
        assert_eq!(res.status, 200);
        assert!(
            res.header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        let body = String::from_utf8(res.body.clone()).unwrap();
        assert!(
            body.contains("switchboard_jobs{kind=\"count\",state=\"queued\"} 3"),
            "{body}"
        );
        assert!(body.contains("switchboard_jobs_queued_total 3"), "{body}");
        assert!(body.contains("switchboard_jobs_dead_total 1"), "{body}");
        assert!(
            body.contains("switchboard_jobs_oldest_queued_seconds{kind=\"count\"} 90.000"),
            "{body}"
        );
        assert!(
            !body.contains("secret-ish"),
            "no error text leaves through metrics"
        );
    }
}

#[test]
fn the_jobs_commands_list_and_retry() {
    let db = TestDb::new();
    let now = chrono::Utc::now();
    let id = enqueue(&db, now, "fail", EnqueueOpts::default()).unwrap();
    diesel::sql_query(
        "UPDATE jobs SET state = 'dead', attempts = 5, last_error = 'gave up' WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .execute(&mut db.conn())
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .env_clear()
            .env("APP_ENV", "test")
            .env("DATABASE_URL", db.url())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = run(&["jobs", "list", "--state", "dead"]);
    assert!(ok, "{out}");
    assert!(out.contains("gave up") && out.contains("1 job(s)"), "{out}");
    let (ok, out) = run(&["jobs", "retry", "--dead"]);
    assert!(ok && out.contains("1 dead job(s) queued again"), "{out}");
    let (ok, out) = run(&["jobs", "list", "--state", "dead"]);
    assert!(ok && out.contains("0 job(s)"), "{out}");
    let (ok, out) = run(&["jobs", "retry", &id.to_string()]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["jobs", "retry", "999999"]);
    assert!(!ok && out.contains("no job 999999"), "{out}");
}

#[actix_web::test]
async fn a_worker_that_lost_its_claim_can_neither_finish_nor_fail_the_job() {
    let db = TestDb::new();
    let clock = ManualClock::starting_now();
    let id = enqueue(&db, clock.now(), "count", EnqueueOpts::default()).unwrap();
    let lease = chrono::Duration::seconds(60);
    let mut conn = db.conn();
    let stale = store::claim(
        &mut conn,
        clock.now(),
        "count",
        1,
        "w_slow",
        clock.now() + lease,
    )
    .unwrap();
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(store::reap_expired(&mut conn, clock.now()).unwrap(), 1);
    let fresh = store::claim(
        &mut conn,
        clock.now(),
        "count",
        1,
        "w_next",
        clock.now() + lease,
    )
    .unwrap();
    assert_eq!(fresh[0].id, id);
    assert_eq!(fresh[0].attempt, 2);

    assert!(
        !store::complete(&mut conn, &stale[0]).unwrap(),
        "the slow worker is fenced off"
    );
    assert!(!store::fail(&mut conn, clock.now(), &stale[0], "late", clock.now(), true).unwrap());
    assert!(!store::extend(&mut conn, clock.now(), &stale[0], clock.now() + lease).unwrap());
    let s = state_of(&db, id).unwrap();
    assert_eq!((s.state.as_str(), s.attempts), ("running", 2));
    assert!(store::complete(&mut conn, &fresh[0]).unwrap());
    assert!(state_of(&db, id).is_none());
}

#[actix_web::test]
async fn one_claim_takes_up_to_each_kinds_limit_and_the_next_claim_gets_the_rest() {
    let db = TestDb::new();
    let clock = ManualClock::starting_now();
    let mut ids: HashMap<&str, Vec<i64>> = HashMap::new();
    for kind in ["a", "b", "a", "c", "b", "a"] {
        let id = enqueue(&db, clock.now(), kind, EnqueueOpts::default()).unwrap();
        ids.entry(kind).or_default().push(id);
    }
    let until = clock.now() + chrono::Duration::seconds(60);
    let mut conn = db.conn();
    let first =
        store::claim_kinds(&mut conn, clock.now(), &[("a", 2), ("b", 5)], "w_1", until).unwrap();
    let got: Vec<(String, i64)> = first.iter().map(|j| (j.kind.clone(), j.id)).collect();
    let mut want = vec![
        ("a".to_owned(), ids["a"][0]),
        ("a".to_owned(), ids["a"][1]),
        ("b".to_owned(), ids["b"][0]),
        ("b".to_owned(), ids["b"][1]),
    ];
    want.sort_by_key(|(_, id)| *id);
    assert_eq!(got, want, "two of a, both of b, none of c, in id order");
    // Another worker gets what is left of a, and c.
    let second = store::claim_kinds(
        &mut conn,
        clock.now(),
        &[("a", 5), ("c", 1), ("b", 1)],
        "w_2",
        until,
    )
    .unwrap();
    let got: Vec<i64> = second.iter().map(|j| j.id).collect();
    let mut want = vec![ids["a"][2], ids["c"][0]];
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(second.iter().all(|j| j.worker == "w_2" && j.attempt == 1));
}

//! Token refresh holds no pooled connection while the provider thinks (issue 10, fragile spot
//! 2): a claim with a lease in one short transaction, the provider call with nothing held, a
//! conditional write-back; still one provider call per connection across processes.

use super::{APP_ORIGIN, World, query};
use crate::common::stand_in::Provider;
use actix_web::test::TestRequest;
use actix_web::{HttpResponse, HttpServer, web};
use chrono::Duration;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use switchboard::connectors::{ConnectionId, ConnectorsState};
use switchboard::db::build_pool;
use switchboard::platform::clock::Clock;
use switchboard::platform::state::Platform;
use tokio::sync::watch;

/// 23 h 50 min: less than the 15-minute margin left of a 24 h token.
fn nearly_a_day() -> Duration {
    Duration::hours(23) + Duration::minutes(50)
}

/// A Linear token endpoint that answers codes at once and holds every refresh until the test
/// opens the gate. It records the refresh calls; the n-th rotates to `<refresh token>_n<n>`.
struct Gate {
    refreshes: Mutex<Vec<String>>,
    arrived: watch::Sender<usize>,
    /// Released calls: all of them, or these (1-based) call numbers.
    open: watch::Sender<(bool, Vec<usize>)>,
}

async fn token(gate: web::Data<Gate>, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    if field("grant_type") == "authorization_code" {
        let code = field("code");
        return HttpResponse::Ok().json(json!({
            "access_token": format!("acc_{code}"), "refresh_token": format!("ref_{code}"),
            "expires_in": 86399, "token_type": "Bearer", "scope": "read write",
        }));
    }
    let refresh = field("refresh_token");
    let count = {
        let mut seen = gate.refreshes.lock().unwrap();
        seen.push(refresh.clone());
        seen.len()
    };
    gate.arrived.send_replace(count);
    let mut open = gate.open.subscribe();
    let _ = open
        .wait_for(|(all, some)| *all || some.contains(&count))
        .await;
    HttpResponse::Ok().json(json!({
        "access_token": format!("new_{refresh}"), "refresh_token": format!("{refresh}_n{count}"),
        "expires_in": 86399, "token_type": "Bearer",
    }))
}

struct GateServer {
    gate: web::Data<Gate>,
    url: String,
}

impl GateServer {
    fn start() -> Self {
        let gate = web::Data::new(Gate {
            refreshes: Mutex::new(Vec::new()),
            arrived: watch::channel(0).0,
            open: watch::channel((false, Vec::new())).0,
        });
        let data = gate.clone();
        let server = HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .route("/oauth/token", web::post().to(token))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let url = format!("http://{}/oauth/token", server.addrs()[0]);
        actix_web::rt::spawn(server.run());
        Self { gate, url }
    }

    /// Waits (bounded) until `n` refresh calls are parked at the gate.
    async fn wait_for_calls(&self, n: usize) {
        let mut arrived = self.gate.arrived.subscribe();
        let waited = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            arrived.wait_for(|c| *c >= n),
        )
        .await
        .is_ok();
        assert!(
            waited,
            "only {} of {n} refreshes reached the provider",
            *arrived.borrow()
        );
    }

    fn release(&self) {
        self.gate.open.send_modify(|(all, _)| *all = true);
    }

    /// Lets only the `n`-th refresh call (1-based) answer.
    fn release_call(&self, n: usize) {
        self.gate.open.send_modify(|(_, some)| some.push(n));
    }

    fn calls(&self) -> Vec<String> {
        self.gate.refreshes.lock().unwrap().clone()
    }
}

/// A world whose Linear token endpoint is the gate, with `n` connections of Ada's.
async fn world_with_connections(gate: &GateServer, n: usize) -> (World, Vec<ConnectionId>) {
    let mut w = World::with_env(&[(
        "SWITCHBOARD__CONNECTORS__PROVIDERS__LINEAR__TOKEN_URL",
        gate.url.as_str(),
    )])
    .await;
    let ada = w.user("ada");
    let mut ids = Vec::new();
    for i in 0..n {
        let code = format!("c{i}");
        w.linear
            .linear_viewer(
                &format!("acc_{code}"),
                &format!("v{i}"),
                &format!("o{i}"),
                "Acme",
            )
            .await;
        let url = w
            .authorize(
                &ada,
                "linear",
                json!({ "redirect_to": format!("{APP_ORIGIN}/done") }),
            )
            .await;
        let state = query(&url, "state").unwrap();
        let res = w
            .callback("linear", &format!("code={code}&state={state}"))
            .await;
        let grant = w.authorized_code(&res);
        let done = w.complete(&ada, &grant).await;
        assert_eq!(done.status, 200);
        ids.push(ConnectionId(
            done.json()["connection"]["id"].as_str().unwrap().to_owned(),
        ));
    }
    (w, ids)
}

/// Another process: its own connectors state and its own pool, on the same database and clock.
fn separate_process(w: &World) -> ConnectorsState {
    let config = w.app.platform.config.clone();
    let pool = build_pool(&config.database);
    let platform = Platform::new(config, pool, w.app.clock.clone());
    ConnectorsState::new(&platform).unwrap()
}

#[actix_web::test]
async fn twenty_refreshes_waiting_on_the_provider_leave_the_pool_to_other_requests() {
    let gate = GateServer::start();
    let (mut w, ids) = world_with_connections(&gate, 20).await;
    let bob = w.user("bob");
    w.app.clock.advance(nearly_a_day());

    let state = Arc::new(w.another_process());
    let tasks: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let state = state.clone();
            actix_web::rt::spawn(async move { state.access_token(&id).await })
        })
        .collect();
    // All twenty are at the provider at once (the pool has 8 connections)...
    gate.wait_for_calls(20).await;
    // ...and another user's request still gets a connection right away.
    let started = std::time::Instant::now();
    let listed = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        w.send(&bob, TestRequest::get().uri("/api/connections")),
    )
    .await
    .expect("GET /api/connections waited for the refreshes");
    eprintln!(
        "GET /api/connections with 20 refreshes parked at the provider: {:?}",
        started.elapsed()
    );
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["connections"], json!([]));
    // While parked, the claims are visible and no transaction is open on them.
    let claims = w.sql_texts("SELECT count(*)::text AS t FROM refresh_claims");
    assert_eq!(claims, vec!["20"]);

    gate.release();
    for (i, task) in tasks.into_iter().enumerate() {
        let token = task.await.unwrap().unwrap();
        assert_eq!(token.expose(), format!("new_ref_c{i}"));
    }
    assert_eq!(gate.calls().len(), 20);
    let claims = w.sql_texts("SELECT count(*)::text AS t FROM refresh_claims");
    assert_eq!(claims, vec!["0"], "every claim released");
}

#[actix_web::test]
async fn two_processes_make_one_provider_call_per_connection() {
    let gate = GateServer::start();
    let (w, ids) = world_with_connections(&gate, 20).await;
    w.app.clock.advance(nearly_a_day());

    let (p1, p2) = (
        Arc::new(separate_process(&w)),
        Arc::new(separate_process(&w)),
    );
    let mut tasks = Vec::new();
    for id in &ids {
        for p in [&p1, &p2] {
            let (p, id) = (p.clone(), id.clone());
            tasks.push(actix_web::rt::spawn(
                async move { p.access_token(&id).await },
            ));
        }
    }
    gate.wait_for_calls(20).await;
    gate.release();
    for (i, task) in tasks.into_iter().enumerate() {
        let token = task.await.unwrap().unwrap();
        assert_eq!(token.expose(), format!("new_ref_c{}", i / 2));
    }
    let mut calls = gate.calls();
    calls.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("ref_c{i}")).collect();
    expected.sort();
    assert_eq!(calls, expected, "exactly one provider call per connection");
    // Both processes now serve the stored result without calling again.
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            p2.access_token(id).await.unwrap().expose(),
            format!("new_ref_c{i}")
        );
    }
    assert_eq!(gate.calls().len(), 20);
}

#[actix_web::test]
async fn a_crashed_claimers_lease_runs_out_and_a_reconnect_drops_a_claim_in_flight() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = w
        .connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    w.app.clock.advance(nearly_a_day());
    w.linear
        .linear_refresh("lin_r1", Provider::rotated("lin_a2", "lin_r2"))
        .await;
    // A process claimed the refresh and died.
    let until = (w.app.clock.now() + Duration::minutes(1)).to_rfc3339();
    w.exec(&format!(
        "INSERT INTO refresh_claims VALUES ('{id}', 'crashed', '{until}')"
    ));
    let state = w.another_process();
    // While its lease runs, the sweep leaves the connection alone.
    assert_eq!(state.sweep_once().await.unwrap().due, 0);
    assert!(
        w.linear
            .received("/oauth/token", "grant_type=refresh_token")
            .await
            .is_empty()
    );

    // After it, the next caller takes over: one provider call, the claim is gone.
    w.app.clock.advance(Duration::minutes(2));
    let cid = ConnectionId(id.clone());
    assert_eq!(state.access_token(&cid).await.unwrap().expose(), "lin_a2");
    assert_eq!(
        w.linear
            .received("/oauth/token", "grant_type=refresh_token")
            .await
            .len(),
        1
    );
    assert_eq!(
        w.sql_texts("SELECT count(*)::text AS t FROM refresh_claims"),
        vec!["0"]
    );

    // A reconnect while a refresh is in flight wins: the claim is dropped with the old grant.
    w.exec(&format!(
        "INSERT INTO refresh_claims VALUES ('{id}', 'slow', '{until}')"
    ));
    let again = w
        .connect_linear(&ada, "c2", "lin_a9", "lin_r9", "v1", "o1")
        .await;
    assert_eq!(again, id);
    assert_eq!(
        w.sql_texts("SELECT count(*)::text AS t FROM refresh_claims"),
        vec!["0"]
    );
    assert_eq!(state.access_token(&cid).await.unwrap().expose(), "lin_a9");
}

#[actix_web::test]
async fn a_claimer_that_outlived_its_lease_does_not_overwrite_the_takeover() {
    let gate = GateServer::start();
    let (w, ids) = world_with_connections(&gate, 1).await;
    w.app.clock.advance(nearly_a_day());
    let (p1, p2) = (
        Arc::new(separate_process(&w)),
        Arc::new(separate_process(&w)),
    );
    let id = ids[0].clone();

    // p1 claims and hangs at the provider past its lease...
    let slow = {
        let (p1, id) = (p1.clone(), id.clone());
        actix_web::rt::spawn(async move { p1.access_token(&id).await })
    };
    gate.wait_for_calls(1).await;
    w.app.clock.advance(Duration::minutes(2));
    // ...so p2 takes over and refreshes with the same refresh token.
    let takeover = {
        let (p2, id) = (p2.clone(), id.clone());
        actix_web::rt::spawn(async move { p2.access_token(&id).await })
    };
    gate.wait_for_calls(2).await;
    // The takeover answers and is stored first; then the late claimer's answer arrives.
    gate.release_call(2);
    assert_eq!(takeover.await.unwrap().unwrap().expose(), "new_ref_c0");
    gate.release_call(1);
    // Its token is still usable for its caller, but not stored over the takeover's.
    assert_eq!(slow.await.unwrap().unwrap().expose(), "new_ref_c0");
    gate.release();

    // The stored refresh token is the takeover's (the 2nd call's rotation).
    w.app.clock.advance(nearly_a_day());
    p1.access_token(&id).await.unwrap();
    assert_eq!(
        gate.calls(),
        vec!["ref_c0", "ref_c0", "ref_c0_n2"],
        "the next refresh used the takeover's rotated token"
    );
}

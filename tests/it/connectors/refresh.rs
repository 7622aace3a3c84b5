//! Keeping tokens fresh: proactive refresh with rotation, single flight, invalid_grant,
//! transient failures with backoff, the sweep.

use super::World;
use crate::common::stand_in::Provider;
use actix_web::test::TestRequest;
use chrono::Duration;
use serde_json::json;
use switchboard::connectors::{ConnectionId, ConnectorsError};
use switchboard::platform::clock::Clock;
use switchboard::platform::role::Role;
use wiremock::ResponseTemplate;

/// 23 h 50 min: less than the 15-minute margin left of Linear's 24 h token.
fn nearly_a_day() -> Duration {
    Duration::hours(23) + Duration::minutes(50)
}

#[actix_web::test]
async fn access_token_refreshes_near_expiry_and_persists_the_rotated_refresh_token() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = w
        .connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    let id = ConnectionId(id);
    let state = w.another_process();

    // Fresh: served from the vault, no provider call.
    assert_eq!(state.access_token(&id).await.unwrap().expose(), "lin_a1");
    assert!(
        w.linear
            .received("/oauth/token", "grant_type=refresh_token")
            .await
            .is_empty()
    );

    w.app.clock.advance(nearly_a_day());
    w.linear
        .linear_refresh("lin_r1", Provider::rotated("lin_a2", "lin_r2"))
        .await;
    assert_eq!(state.access_token(&id).await.unwrap().expose(), "lin_a2");
    assert_eq!(state.access_token(&id).await.unwrap().expose(), "lin_a2");
    assert_eq!(
        w.linear
            .received("/oauth/token", "refresh_token=lin_r1")
            .await
            .len(),
        1
    );

    // The next refresh uses the rotated token; a response without one keeps it.
    w.app.clock.advance(nearly_a_day());
    w.linear
        .linear_refresh(
            "lin_r2",
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "lin_a3", "token_type": "Bearer", "expires_in": 86399
            })),
        )
        .await;
    assert_eq!(state.access_token(&id).await.unwrap().expose(), "lin_a3");
    w.app.clock.advance(nearly_a_day());
    let before = w
        .linear
        .received("/oauth/token", "refresh_token=lin_r2")
        .await
        .len();
    assert_eq!(state.access_token(&id).await.unwrap().expose(), "lin_a3");
    assert_eq!(
        w.linear
            .received("/oauth/token", "refresh_token=lin_r2")
            .await
            .len(),
        before + 1,
        "the kept refresh token was used again"
    );

    // The owner sees the new expiry.
    let seen = w
        .send(
            &ada,
            TestRequest::get().uri(&format!("/api/connections/{id}")),
        )
        .await
        .json();
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(seen["expires_at"].clone()).unwrap();
    assert!(expires > w.app.clock.now() + Duration::hours(23));
}

#[actix_web::test]
async fn concurrent_refreshes_make_one_provider_call() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = w
        .connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    w.app.clock.advance(nearly_a_day());
    w.linear
        .linear_refresh(
            "lin_r1",
            Provider::rotated("lin_a2", "lin_r2").set_delay(std::time::Duration::from_millis(300)),
        )
        .await;

    // Two processes (own states, own pools' connections), one database.
    let (p1, p2) = (w.another_process(), w.another_process());
    let cid = ConnectionId(id.clone());
    let (a, b) = futures_util::future::join(p1.access_token(&cid), p2.access_token(&cid)).await;
    assert_eq!(a.unwrap().expose(), "lin_a2");
    assert_eq!(b.unwrap().expose(), "lin_a2");
    assert_eq!(
        w.linear
            .received("/oauth/token", "grant_type=refresh_token")
            .await
            .len(),
        1
    );

    // Two forced refreshes at once through the API: one call too.
    w.linear
        .linear_refresh(
            "lin_r2",
            Provider::rotated("lin_a3", "lin_r3").set_delay(std::time::Duration::from_millis(300)),
        )
        .await;
    let uri = format!("/api/connections/{id}/refresh");
    let reqs = (0..2)
        .map(|_| TestRequest::post().uri(&uri).insert_header(w.bearer(&ada)))
        .collect();
    let seen = w.app.call_concurrently(Role::Connectors, reqs).await;
    for res in &seen {
        assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    }
    assert_eq!(
        w.linear
            .received("/oauth/token", "refresh_token=lin_r2")
            .await
            .len(),
        1
    );
    assert_eq!(p1.access_token(&cid).await.unwrap().expose(), "lin_a3");
}

#[actix_web::test]
async fn invalid_grant_marks_the_connection_needs_reauth_without_retrying() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = w
        .connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    w.linear
        .linear_refresh(
            "lin_r1",
            ResponseTemplate::new(400)
                .set_body_json(json!({ "error": "invalid_grant", "error_description": "revoked" })),
        )
        .await;
    let uri = format!("/api/connections/{id}/refresh");
    let res = w.send(&ada, TestRequest::post().uri(&uri)).await;
    assert_eq!(res.status, 409);
    assert_eq!(res.json()["code"], "CONNECTION_NEEDS_REAUTH");
    let seen = w
        .send(
            &ada,
            TestRequest::get().uri(&format!("/api/connections/{id}")),
        )
        .await
        .json();
    assert_eq!(seen["status"], "needs_reauth");

    let res = w.send(&ada, TestRequest::post().uri(&uri)).await;
    assert_eq!(res.status, 409);
    let state = w.another_process();
    assert!(matches!(
        state.access_token(&ConnectionId(id.clone())).await,
        Err(ConnectorsError::NeedsReauth)
    ));
    assert_eq!(
        w.linear
            .received("/oauth/token", "grant_type=refresh_token")
            .await
            .len(),
        1,
        "no retry loop"
    );

    // Reconnecting the account makes it active again.
    let again = w
        .connect_linear(&ada, "c2", "lin_a9", "lin_r9", "v1", "o1")
        .await;
    assert_eq!(again, id);
    let seen = w
        .send(
            &ada,
            TestRequest::get().uri(&format!("/api/connections/{id}")),
        )
        .await;
    assert_eq!(seen.json()["status"], "active");
}

#[actix_web::test]
async fn transient_failures_retry_then_back_off_and_serve_the_still_valid_token() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = ConnectionId(
        w.connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
            .await,
    );
    w.linear
        .linear_refresh("lin_r1", ResponseTemplate::new(503).set_body_string("down"))
        .await;
    w.app.clock.advance(nearly_a_day());
    let state = w.another_process();

    // Ten minutes of validity left: the old token is served while the refresh backs off.
    assert_eq!(state.access_token(&id).await.unwrap().expose(), "lin_a1");
    assert_eq!(
        w.linear
            .received("/oauth/token", "refresh_token=lin_r1")
            .await
            .len(),
        3
    );
    let failures = w.sql_texts(
        "SELECT refresh_failures::text || ' ' || (next_refresh_at IS NOT NULL)::text AS t FROM connections",
    );
    assert_eq!(failures, vec!["1 true"]);
    assert_eq!(state.access_token(&id).await.unwrap().expose(), "lin_a1");
    assert_eq!(
        w.linear
            .received("/oauth/token", "refresh_token=lin_r1")
            .await
            .len(),
        3,
        "backing off"
    );

    // Expired and the provider still down: an error, never the expired token.
    w.app.clock.advance(Duration::minutes(11));
    assert!(matches!(
        state.access_token(&id).await,
        Err(ConnectorsError::ProviderUnavailable)
    ));
    let res = w
        .send(
            &ada,
            TestRequest::post().uri(&format!("/api/connections/{id}/refresh")),
        )
        .await;
    assert_eq!(res.status, 502);
    assert_eq!(res.json()["code"], "PROVIDER_UNAVAILABLE");
}

#[actix_web::test]
async fn the_sweep_refreshes_connections_nearing_expiry() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    w.connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    w.connect_linear(&ada, "c2", "lin_b1", "lin_s1", "v2", "o2")
        .await;
    let state = w.another_process();
    let report = state.sweep_once().await.unwrap();
    assert_eq!(report.due, 0);

    w.app.clock.advance(nearly_a_day());
    w.linear
        .linear_refresh("lin_r1", Provider::rotated("lin_a2", "lin_r2"))
        .await;
    w.linear
        .linear_refresh("lin_s1", Provider::rotated("lin_b2", "lin_s2"))
        .await;
    let report = state.sweep_once().await.unwrap();
    assert_eq!((report.due, report.refreshed, report.failed), (2, 2, 0));
    assert_eq!(state.sweep_once().await.unwrap().due, 0);
}

//! Connect flows bound to their owner (issue 10, finding 8), the end of a flow whose user was
//! deleted and logged internal errors on the redirecting callback (finding 7), and token
//! lifetimes from providers that would overflow a date (finding 14).

use super::{APP_ORIGIN, World, query};
use crate::common::logs;
use actix_web::test::TestRequest;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use switchboard::connectors::ConnectionId;
use switchboard::platform::clock::Clock;
use switchboard::platform::role::Role;
use url::Url;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

/// Mallory starts a flow and sends the authorize URL to a victim, whose browser approves it
/// and lands on the callback.
async fn victim_approves_mallorys_flow(w: &mut World, mallory: &str) -> String {
    w.linear
        .linear_code("victim-code", "lin_victim", "lin_victim_r")
        .await;
    w.linear
        .linear_viewer("lin_victim", "victim-viewer", "victim-org", "Victim Inc")
        .await;
    let url = w
        .authorize(
            mallory,
            "linear",
            json!({ "redirect_to": format!("{APP_ORIGIN}/connected") }),
        )
        .await;
    let state = query(&url, "state").unwrap();
    // The victim's browser: no cookie, no bearer token.
    let res = w
        .callback("linear", &format!("code=victim-code&state={state}"))
        .await;
    w.authorized_code(&res)
}

#[actix_web::test]
async fn a_victims_browser_finishing_someone_elses_flow_attaches_nothing() {
    let mut w = World::new().await;
    let mallory = w.user("mallory");
    let victim = w.user("victim");
    w.linear.linear_revoke(200).await;
    let code = victim_approves_mallorys_flow(&mut w, &mallory).await;

    // The callback alone connected nobody.
    let none = w.sql_texts("SELECT count(*)::text AS t FROM connections");
    assert_eq!(none, vec!["0"]);

    // The web app, signed in as the victim, redeems the code it was handed: refused, with the
    // same answer as an unknown code, and the grant is gone.
    let res = w.complete(&victim, &code).await;
    assert_eq!(res.status, 404, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["code"], "GRANT_NOT_FOUND");
    let left = w.sql_texts("SELECT count(*)::text AS t FROM pending_grants");
    assert_eq!(left, vec!["0"]);
    // Burnt for the flow's owner too, and the victim's tokens withdrawn at the provider.
    let res = w.complete(&mallory, &code).await;
    assert_eq!(res.status, 404);
    let revoked: Vec<String> = w
        .linear
        .received("/oauth/revoke", "token=")
        .await
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        revoked.iter().any(|b| b.contains("token=lin_victim_r&"))
            && revoked.iter().any(|b| b.contains("token=lin_victim&")),
        "{revoked:?}"
    );
    for user in [&mallory, &victim] {
        let list = w
            .send(user, TestRequest::get().uri("/api/connections"))
            .await
            .json();
        assert_eq!(list["connections"], json!([]), "{user}");
    }
}

#[actix_web::test]
async fn a_grant_code_is_single_use_short_lived_and_needs_a_bearer_token() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let code = victim_approves_mallorys_flow(&mut w, &ada).await;

    // No token: 401, and the code survives (nobody was refused).
    let res = w
        .app
        .call(
            Role::Connectors,
            TestRequest::post()
                .uri("/api/connections/complete")
                .set_json(json!({ "code": code })),
        )
        .await;
    assert_eq!(res.status, 401);
    // Bad bodies: 400, never 500.
    for body in [
        json!({}),
        json!({ "code": 7 }),
        json!({ "code": "x", "extra": 1 }),
    ] {
        let res = w
            .send(
                &ada,
                TestRequest::post()
                    .uri("/api/connections/complete")
                    .set_json(body),
            )
            .await;
        assert_eq!(res.status, 400);
        assert_eq!(res.json()["code"], "VALIDATION_ERROR");
    }
    for unknown in ["", "never-issued", &"x".repeat(5000), "\u{0}"] {
        let res = w.complete(&ada, unknown).await;
        assert_eq!(res.status, 404, "{unknown:?}");
    }

    // Five minutes later the owner's own code has expired (and is gone).
    w.app
        .clock
        .advance(Duration::minutes(5) + Duration::seconds(1));
    let res = w.complete(&ada, &code).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "GRANT_EXPIRED");
    assert_eq!(w.complete(&ada, &code).await.status, 404);
    let none = w.sql_texts("SELECT count(*)::text AS t FROM connections");
    assert_eq!(none, vec!["0"]);

    // The sweep removes grants nobody redeemed.
    let _ = victim_approves_mallorys_flow(&mut w, &ada).await;
    w.app.clock.advance(Duration::minutes(6));
    let report = w.another_process().sweep_once().await.unwrap();
    assert_eq!(report.grants_deleted, 1);
}

#[actix_web::test]
async fn a_deleted_users_flows_end_in_clear_errors() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let redirect = json!({ "redirect_to": format!("{APP_ORIGIN}/done") });

    // A flow in progress when the user is deleted goes with them.
    let url = w.authorize(&ada, "linear", redirect.clone()).await;
    let state = query(&url, "state").unwrap();
    // And so does a finished one waiting for its code.
    let code = victim_approves_mallorys_flow(&mut w, &ada).await;
    assert_eq!(w.exec("DELETE FROM \"user\" WHERE id = 'ada'"), 1);
    let left = w.sql_texts(
        "SELECT ((SELECT count(*) FROM oauth_flows) + (SELECT count(*) FROM pending_grants))::text AS t",
    );
    assert_eq!(left, vec!["0"]);
    let res = w.callback("linear", &format!("code=x&state={state}")).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["code"], "INVALID_STATE");
    let res = w.complete(&ada, &code).await;
    assert_eq!(res.status, 404);

    // The still-valid token cannot start a new one: a clear 403, not a 500 later.
    let res = w
        .send(
            &ada,
            TestRequest::post()
                .uri("/api/connections/linear/authorize")
                .set_json(redirect),
        )
        .await;
    assert_eq!(res.status, 403, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["code"], "USER_NOT_FOUND");
}

#[actix_web::test]
async fn an_internal_error_on_the_callback_redirect_is_logged_with_the_request_id() {
    let logs = logs::capture();
    let mut w = World::new().await;
    let ada = w.user("ada");
    let url = w
        .authorize(
            &ada,
            "linear",
            json!({ "redirect_to": format!("{APP_ORIGIN}/done") }),
        )
        .await;
    let state = query(&url, "state").unwrap();
    // A verifier that no key opens: our failure, not the client's or the provider's.
    w.exec("UPDATE oauth_flows SET code_verifier = 'v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'");
    let res = w.callback("linear", &format!("code=c&state={state}")).await;
    assert_eq!(res.status, 302);
    let back = Url::parse(res.header("location").unwrap()).unwrap();
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("internal_server_error")
    );
    let request_id = res.header("x-request-id").expect("x-request-id").to_owned();
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains(&request_id) && l.contains("connectors request failed"))
        .unwrap_or_else(|| panic!("no error logged for request {request_id}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("vault"), "{line}");
}

/// `expires_at` of the only connection.
fn expires_at(w: &World) -> DateTime<Utc> {
    let text = w.sql_texts(
        "SELECT to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS t \
         FROM connections",
    );
    DateTime::parse_from_rfc3339(&text[0]).unwrap().into()
}

#[actix_web::test]
async fn absurd_lifetimes_from_a_token_endpoint_are_clamped_never_a_panic() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    // `now + 10^15 s` is past chrono's last date: this used to panic the worker thread.
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("code=huge&"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "lin_huge", "token_type": "Bearer",
            "expires_in": 1_000_000_000_000_000i64, "refresh_token": "lin_huge_r",
        })))
        .mount(&w.linear.server)
        .await;
    w.linear.linear_viewer("lin_huge", "v1", "o1", "Acme").await;
    let url = w
        .authorize(
            &ada,
            "linear",
            json!({ "redirect_to": format!("{APP_ORIGIN}/done") }),
        )
        .await;
    let state = query(&url, "state").unwrap();
    let res = w
        .callback("linear", &format!("code=huge&state={state}"))
        .await;
    let code = w.authorized_code(&res);
    let res = w.complete(&ada, &code).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let id = ConnectionId(res.json()["connection"]["id"].as_str().unwrap().to_owned());
    let ten_years = Duration::days(3650);
    let now = w.app.clock.now();
    assert!((expires_at(&w) - (now + ten_years)).num_seconds().abs() <= 1);

    // A refresh answering i64::MAX seconds: clamped the same way.
    w.linear
        .linear_refresh(
            "lin_huge_r",
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "lin_huge_2", "expires_in": i64::MAX, "refresh_token": "lin_huge_r2",
            })),
        )
        .await;
    let res = w
        .send(
            &ada,
            TestRequest::post().uri(&format!("/api/connections/{id}/refresh")),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert!((expires_at(&w) - (now + ten_years)).num_seconds().abs() <= 1);
    let state = w.another_process();
    assert_eq!(
        state.access_token(&id).await.unwrap().expose(),
        "lin_huge_2"
    );

    // A lifetime that is not a whole number of seconds the provider could mean: refused
    // clearly, never a panic.
    w.linear
        .linear_refresh(
            "lin_huge_r2",
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "lin_huge_3", "expires_in": 1e300, "refresh_token": "lin_huge_r3",
            })),
        )
        .await;
    let res = w
        .send(
            &ada,
            TestRequest::post().uri(&format!("/api/connections/{id}/refresh")),
        )
        .await;
    assert_eq!(res.status, 502);
    assert_eq!(res.json()["code"], "PROVIDER_BAD_RESPONSE");
}

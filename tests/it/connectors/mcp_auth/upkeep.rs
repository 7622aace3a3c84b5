//! Keeping stored authorizations sound: re-sealing under a new key, and the sweep that deletes
//! expired authorization flows.

use super::*;
use crate::common::jobs::drain;

#[actix_web::test]
async fn key_rotation_reseals_mcp_secrets_and_the_old_key_can_go() {
    use switchboard::platform::secret::Secret;
    const NEW_KEY: &str = "another-32-byte-key-for-tests!!!";
    let standin = OAuthStandIn::start(Behaviour::default()).await;
    let (mut w, ada, id) = ada_with_server(&standin.url()).await;
    // Authorized before the rotation (dynamic registration: a sealed client secret) ...
    let code = grant_code(&mut w, &ada, &id).await;
    complete_ok(&mut w, &ada, &code).await;
    // ... and a second authorization started, not finished: its verifier is sealed too.
    let _pending = authorize_url(&mut w, &ada, &id).await;
    assert!(dump(&w).contains("\"client_secret\":\"v1:"));

    let old = (*w.app.platform.config).clone();
    let old_key = old.connectors.encryption_key.expose().to_owned();
    let mut rotated = old.clone();
    rotated.connectors.encryption_key = Secret::new(NEW_KEY);
    rotated.connectors.encryption_key_version = 2;
    rotated.connectors.previous_encryption_keys = vec![Secret::new(format!("1:{old_key}"))];
    let report = switchboard::connectors::admin::run(&rotated, 1).unwrap();
    let counts = |table: &str, column: &str| {
        let c = report.column(table, column).unwrap();
        (c.scanned, c.resealed)
    };
    assert_eq!(counts("mcp_credentials", "access_token"), (1, 1));
    assert_eq!(counts("mcp_credentials", "refresh_token"), (1, 1));
    // The finished flow and the open one.
    assert_eq!(counts("mcp_auth_flows", "code_verifier"), (2, 2));
    assert_eq!(counts("mcp_oauth_clients", "client_secret"), (1, 1));
    assert_eq!(report.failed, 0);
    let printed = report.to_string();
    assert!(
        printed.contains("mcp_oauth_clients.client_secret: scanned 1, re-sealed 1"),
        "{printed}"
    );
    // No value anywhere is still under the old key, and none is in plaintext.
    let rows = dump(&w);
    assert!(!rows.contains("\"v1:"), "a value is left under key 1");
    assert!(rows.contains("\"refresh_token\":\"v2:"));
    for secret in ["mcpat_", "mcprt_", "mcpsecret_1"] {
        assert!(
            !rows.contains(secret),
            "{secret} is in a table in plaintext"
        );
    }
    assert_eq!(
        switchboard::connectors::admin::run(&rotated, 10)
            .unwrap()
            .resealed(),
        0,
        "a second rotation has nothing to do"
    );

    // A process that holds only the new key: the server still calls tools ...
    let mut only_new = rotated.clone();
    only_new.connectors.previous_encryption_keys = Vec::new();
    w.app.restart_with(only_new);
    let res = call_ok(&mut w, &ada, &id, "whoami", json!({})).await;
    assert_eq!(res.json()["content"][0]["text"], "whoami with read");
    // ... and an hour later its refresh token refreshes (sent with the client secret, which
    // the stand-in checks: both opened under the new key).
    let (grants, before) = {
        let seen = standin.seen.lock().unwrap();
        (
            seen.token_grants.len(),
            seen.bearers.last().cloned().unwrap(),
        )
    };
    w.app.clock.advance(chrono::Duration::seconds(3600));
    call_ok(&mut w, &ada, &id, "whoami", json!({})).await;
    {
        let seen = standin.seen.lock().unwrap();
        assert_eq!(seen.token_grants.len(), grants + 1);
        let g = seen.token_grants.last().unwrap();
        assert_eq!(g["grant_type"], "refresh_token");
        assert_eq!(g["client_secret"], "mcpsecret_1");
        assert_ne!(
            seen.bearers.last().unwrap(),
            &before,
            "the refreshed token was used"
        );
    }
    let rows = dump(&w);
    assert!(!rows.contains("\"v1:"), "the refresh wrote under key 2");
    assert!(!rows.contains("mcpat_") && !rows.contains("mcprt_"));
}

#[actix_web::test]
async fn the_refresh_sweep_job_deletes_expired_mcp_authorization_flows() {
    let standin = OAuthStandIn::start(Behaviour::default()).await;
    let (mut w, ada, id) = ada_with_server(&standin.url()).await;
    let flows = |w: &World| w.sql_texts("SELECT state_hash AS t FROM mcp_auth_flows ORDER BY t");
    // One flow finished, one abandoned.
    let code = grant_code(&mut w, &ada, &id).await;
    assert_eq!(complete(&mut w, &ada, &code).await.status, 200);
    let abandoned = authorize_url(&mut w, &ada, &id).await;
    assert_eq!(flows(&w).len(), 2);

    // Expired, but kept for a day so a late or replayed callback gets a clear answer.
    let ttl = i64::try_from(w.app.platform.config.connectors.oauth_flow_ttl_secs).unwrap();
    w.app.clock.advance(chrono::Duration::seconds(ttl + 60));
    assert!(w.another_process().schedule_sweep().await.unwrap());
    assert_eq!(drain(&w).await, 1);
    assert_eq!(flows(&w).len(), 2);
    let state = query(&abandoned, "state").unwrap();
    let late = callback(
        &mut w,
        &Url::parse(&format!("{CALLBACK}?code=x&state={state}")).unwrap(),
    )
    .await;
    let location = Url::parse(late.header("location").unwrap()).unwrap();
    assert_eq!(query(&location, "error").as_deref(), Some("state_expired"));

    // A day later the queued sweep deletes both; a flow started since stays.
    w.app.clock.advance(chrono::Duration::days(1));
    let _fresh = authorize_url(&mut w, &ada, &id).await;
    assert_eq!(flows(&w).len(), 3);
    assert_eq!(drain(&w).await, 1, "the sweep chain ran again");
    let left = flows(&w);
    assert_eq!(left.len(), 1, "only the fresh flow is left");
}

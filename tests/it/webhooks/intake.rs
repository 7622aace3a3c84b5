//! Intake: a signed delivery is stored with its routing job; bad signatures, stale or missing
//! timestamps, malformed or oversize bodies store nothing; dedupe; secret rotation; GitHub.

use super::*;

#[actix_web::test]
async fn a_signed_linear_delivery_is_stored_with_its_routing_job() {
    let mut w = world(&[]).await;
    let body = linear_body(&w, "Issue", "create", "org-1");
    let res = post_linear(&mut w, &body, "d0b6f1d2-0000-4000-8000-000000000001").await;
    assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json(), json!({ "ok": true, "duplicate": false }));
    let rows = w.sql_texts(
        "SELECT provider || '|' || delivery_id || '|' || event_type || '|' || action || '|' || status || '|' || (payload->>'organizationId') AS t FROM webhook_events",
    );
    assert_eq!(
        rows,
        vec!["linear|d0b6f1d2-0000-4000-8000-000000000001|Issue|create|pending|org-1"]
    );
    // The batch's routing job (this delivery was a batch of one).
    let jobs = w
        .sql_texts("SELECT kind || '|' || state || '|' || (payload->>'deliveries') AS t FROM jobs");
    assert_eq!(jobs, vec!["webhook_route|queued|1"]);
}

#[actix_web::test]
async fn refused_linear_deliveries_store_nothing() {
    let mut w = world(&[("SWITCHBOARD__WEBHOOKS__BODY_LIMIT_BYTES", "4096")]).await;
    let body = linear_body(&w, "Issue", "create", "org-1");
    let good = hmac_hex(LINEAR_SECRET, &body);
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'F').unwrap();
    tampered[pos] = b'G';

    let now = w.app.clock.now().timestamp_millis();
    let stamped = |ms: i64| {
        serde_json::to_vec(
            &json!({ "type": "Issue", "organizationId": "o", "webhookTimestamp": ms }),
        )
        .unwrap()
    };
    let stale = stamped(now - 61_000);
    let future = stamped(now + 61_000);
    let no_ts = serde_json::to_vec(&json!({ "type": "Issue", "organizationId": "o" })).unwrap();
    let malformed = b"{\"type\": \"Issue\", ".to_vec();
    // Valid JSON that PostgreSQL's jsonb cannot hold: a NUL escape, in a value and in a key.
    let nul_value = serde_json::to_vec(
        &json!({ "type": "Issue", "organizationId": "o", "webhookTimestamp": now, "data": { "title": "a\u{0}b" } }),
    )
    .unwrap();
    let nul_key = serde_json::to_vec(
        &json!({ "type": "Issue", "organizationId": "o", "webhookTimestamp": now, "da\u{0}ta": 1 }),
    )
    .unwrap();
    let mut big = json!({ "type": "Issue", "webhookTimestamp": now, "pad": "" });
    big["pad"] = json!("x".repeat(5000));
    let big = serde_json::to_vec(&big).unwrap();

    type Case<'a> = (&'a str, Vec<u8>, Option<String>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "tampered body",
            tampered,
            Some(good.clone()),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "wrong secret",
            body.clone(),
            Some(hmac_hex("not-the-secret", &body)),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "missing signature",
            body.clone(),
            None,
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "not hex",
            body.clone(),
            Some("zz".repeat(32)),
            401,
            "INVALID_SIGNATURE",
        ),
        (
            "stale",
            stale.clone(),
            Some(hmac_hex(LINEAR_SECRET, &stale)),
            401,
            "STALE_WEBHOOK",
        ),
        (
            "future",
            future.clone(),
            Some(hmac_hex(LINEAR_SECRET, &future)),
            401,
            "STALE_WEBHOOK",
        ),
        (
            "no timestamp",
            no_ts.clone(),
            Some(hmac_hex(LINEAR_SECRET, &no_ts)),
            401,
            "STALE_WEBHOOK",
        ),
        (
            "malformed json",
            malformed.clone(),
            Some(hmac_hex(LINEAR_SECRET, &malformed)),
            400,
            "BAD_REQUEST",
        ),
        (
            "NUL in a value",
            nul_value.clone(),
            Some(hmac_hex(LINEAR_SECRET, &nul_value)),
            400,
            "BAD_REQUEST",
        ),
        (
            "NUL in a key",
            nul_key.clone(),
            Some(hmac_hex(LINEAR_SECRET, &nul_key)),
            400,
            "BAD_REQUEST",
        ),
        (
            "oversize",
            big.clone(),
            Some(hmac_hex(LINEAR_SECRET, &big)),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (name, body, sig, status, code) in cases {
        let res = w
            .app
            .call(
                Role::Connectors,
                linear_request(&body, sig.as_deref(), &format!("d-{name}")),
            )
            .await;
        assert_eq!(
            res.status,
            status,
            "{name}: {:?}",
            String::from_utf8_lossy(&res.body)
        );
        assert_eq!(res.json()["code"], code, "{name}");
        assert!(!String::from_utf8_lossy(&res.body).contains(LINEAR_SECRET));
    }
    // No delivery id after a valid signature: 400 too.
    let res = w
        .app
        .call(
            Role::Connectors,
            TestRequest::post()
                .uri("/webhooks/linear")
                .insert_header(("linear-signature", good.as_str()))
                .set_payload(body.clone()),
        )
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(stored(&w), (0, 0), "nothing stored for any refusal");
    // The window is inclusive at 60 s.
    let edge = stamped(now - 60_000);
    let res = post_linear(&mut w, &edge, "d-edge").await;
    assert_eq!(res.status, 200);
}

#[actix_web::test]
async fn the_same_delivery_twice_stores_one_row() {
    let mut w = world(&[]).await;
    let body = linear_body(&w, "Issue", "update", "org-1");
    assert_eq!(
        post_linear(&mut w, &body, "dup-1").await.json()["duplicate"],
        false
    );
    let again = post_linear(&mut w, &body, "dup-1").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["duplicate"], true);
    assert_eq!(stored(&w), (1, 1));
}

#[actix_web::test]
async fn during_a_rotation_old_and_new_secrets_are_accepted() {
    let mut w = World::with_env(&[
        ("LINEAR_WEBHOOK_SECRET", "lin-new-secret"),
        (
            "SWITCHBOARD__WEBHOOKS__LINEAR_PREVIOUS_SECRETS",
            "lin-old-secret,lin-older-secret",
        ),
    ])
    .await;
    let body = linear_body(&w, "Issue", "create", "org-1");
    for (i, secret) in ["lin-new-secret", "lin-old-secret", "lin-older-secret"]
        .iter()
        .enumerate()
    {
        let sig = hmac_hex(secret, &body);
        let res = w
            .app
            .call(
                Role::Connectors,
                linear_request(&body, Some(&sig), &format!("rot-{i}")),
            )
            .await;
        assert_eq!(res.status, 200, "{secret}");
    }
    let sig = hmac_hex("lin-retired-secret", &body);
    let res = w
        .app
        .call(Role::Connectors, linear_request(&body, Some(&sig), "rot-x"))
        .await;
    assert_eq!(res.status, 401);
    assert_eq!(stored(&w).0, 3);
}

#[actix_web::test]
async fn without_a_configured_secret_every_delivery_is_refused() {
    let mut w = World::new().await;
    let body = linear_body(&w, "Issue", "create", "org-1");
    let sig = hmac_hex("", &body);
    let res = w
        .app
        .call(
            Role::Connectors,
            linear_request(&body, Some(&sig), "nosecret"),
        )
        .await;
    assert_eq!(res.status, 401);
    assert_eq!(stored(&w), (0, 0));
}

#[actix_web::test]
async fn github_deliveries_are_verified_the_same_way() {
    let mut w = world(&[]).await;
    let payload = json!({ "action": "opened", "sender": { "id": 42 } });
    let res = post_github(&mut w, &payload, "gh-1", "issues").await;
    assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
    assert_eq!(
        post_github(&mut w, &payload, "gh-1", "issues").await.json()["duplicate"],
        true
    );

    let body = serde_json::to_vec(&payload).unwrap();
    let bare = hmac_hex(GITHUB_SECRET, &body);
    type Case<'a> = (&'a str, Option<String>, Option<&'a str>, &'a [u8], u16);
    let cases: Vec<Case> = vec![
        (
            "no sha256= prefix",
            Some(bare.clone()),
            Some("issues"),
            &body,
            401,
        ),
        (
            "wrong secret",
            Some(format!("sha256={}", hmac_hex("nope", &body))),
            Some("issues"),
            &body,
            401,
        ),
        ("missing signature", None, Some("issues"), &body, 401),
        (
            "missing event",
            Some(format!("sha256={bare}")),
            None,
            &body,
            400,
        ),
        (
            "malformed",
            Some(format!("sha256={}", hmac_hex(GITHUB_SECRET, b"[1,"))),
            Some("issues"),
            b"[1,",
            400,
        ),
    ];
    for (name, sig, event, body, status) in cases {
        let res = w
            .app
            .call(
                Role::Connectors,
                github_request(body, sig, &format!("gh-{name}"), event),
            )
            .await;
        assert_eq!(res.status, status, "{name}");
    }
    assert_eq!(stored(&w), (1, 1));
}

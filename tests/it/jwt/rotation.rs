//! Key rotation and revocation: by command and by interval, seen by other processes, the
//! activation delay counted from first publication.

use super::*;

#[actix_web::test]
async fn rotation_publishes_first_then_signs_and_keeps_retired_keys_for_the_grace_period() {
    let mut app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    let t0 = app.clock.now();
    let first = store.sign_for_user(&alice(), t0).await.unwrap();
    let old_kid = decode_part(&first, 0)["kid"].as_str().unwrap().to_owned();

    // In-process rotation: published at once, but the new key waits out the activation delay
    // (360 s) counted from then.
    app.clock.advance(Duration::seconds(10));
    let rotated = store.rotate(false).await.unwrap();
    assert_ne!(rotated.kid, old_kid);
    assert_eq!(rotated.published_at, Some(t0 + Duration::seconds(10)));
    assert_eq!(rotated.signs_from, t0 + Duration::seconds(370));
    let jwks = app.get(Role::Auth, "/api/auth/jwks").await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&rotated.kid.as_str()),
        "{kids:?}"
    );
    let during = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(decode_part(&during, 0)["kid"], old_kid.as_str());

    app.clock.advance(Duration::seconds(361));
    let after = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(decode_part(&after, 0)["kid"], rotated.kid.as_str());

    // The retired key stays published for 30 days after it stopped signing, then goes.
    app.clock.advance(Duration::days(29));
    store.reload(app.clock.now()).await.unwrap();
    assert_eq!(store_kids(&store).await.len(), 2);
    app.clock.advance(Duration::days(2));
    store.reload(app.clock.now()).await.unwrap();
    assert_eq!(store_kids(&store).await, vec![rotated.kid.clone()]);
    assert_eq!(
        rows(&app).len(),
        2,
        "rows are kept; only the JWKS drops them"
    );
}

#[actix_web::test]
async fn another_process_rotation_is_seen_after_the_refresh_interval_without_a_restart() {
    let app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    let first = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    let old_kid = decode_part(&first, 0)["kid"].as_str().unwrap().to_owned();

    // What `switchboard keys rotate --now` does, from "another process".
    app.clock.advance(Duration::seconds(10));
    let config = &app.platform.config;
    let sealer = KeySealer::new(&config.auth.jwt_secret, &config.auth.secret).unwrap();
    let policy = KeyPolicy::from_config(&config.auth.jwt);
    let rotated_at = app.clock.now();
    let rotated = keys::rotate(&mut app.db.conn(), &sealer, &policy, rotated_at, true).unwrap();

    // Until its next refresh the store signs with the key it has (still in the JWKS)…
    let before = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(decode_part(&before, 0)["kid"], old_kid.as_str());
    // …and from the refresh on, with the new one.
    app.clock.advance(Duration::seconds(31));
    let next = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(decode_part(&next, 0)["kid"], rotated.kid.as_str());
    assert_ne!(rotated.kid, old_kid);

    // `--now` keeps the old key in the JWKS only while a token it signed can still verify
    // (reload 30 s + lifetime 900 s + leeway 30 s), not for the 30-day grace period.
    let withdrawn = rotated_at + Duration::seconds(30 + 900 + 30);
    app.clock.set(withdrawn - Duration::seconds(1));
    store.reload(app.clock.now()).await.unwrap();
    assert!(store_kids(&store).await.contains(&old_kid));
    app.clock.set(withdrawn);
    store.reload(app.clock.now()).await.unwrap();
    assert_eq!(store_kids(&store).await, vec![rotated.kid.clone()]);
}

#[actix_web::test]
async fn the_automatic_interval_rotates_once_however_many_processes_check() {
    let app = TestApp::with_env(&[("SWITCHBOARD__AUTH__JWT__ROTATION_INTERVAL_SECS", "86400")]);
    let a = KeyStore::new(&app.platform).unwrap();
    let b = KeyStore::new(&app.platform).unwrap();
    let first = a.sign_for_user(&alice(), app.clock.now()).await.unwrap();
    let kid = decode_part(&first, 0)["kid"].as_str().unwrap().to_owned();
    let row = &rows(&app)[0];
    assert_eq!(
        row.expires_at,
        Some(row.created_at + Duration::days(1)),
        "Better Auth's expiresAt"
    );

    assert!(a.rotate_if_due().await.unwrap().is_none(), "not due yet");
    // Due early by the reload interval and the activation delay (30 + 360 s), so the successor
    // is published and signs before the key expires.
    app.clock.advance(Duration::seconds(86400 - 391));
    assert!(a.rotate_if_due().await.unwrap().is_none(), "not due yet");
    app.clock.advance(Duration::seconds(1));
    let (ra, rb) = futures_util::join!(a.rotate_if_due(), b.rotate_if_due());
    let made: Vec<_> = [ra.unwrap(), rb.unwrap()].into_iter().flatten().collect();
    assert_eq!(made.len(), 1, "exactly one process rotated");
    assert_eq!(rows(&app).len(), 2);
    let during = a.sign_for_user(&alice(), app.clock.now()).await.unwrap();
    assert_eq!(decode_part(&during, 0)["kid"], kid.as_str());
    app.clock.advance(Duration::seconds(360));
    let after = b.sign_for_user(&alice(), app.clock.now()).await.unwrap();
    assert_eq!(decode_part(&after, 0)["kid"], made[0].kid.as_str());
}

#[actix_web::test]
async fn the_key_list_names_the_signing_key_and_never_a_private_key() {
    let app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    app.clock.advance(Duration::seconds(10));
    let rotated = store.rotate(true).await.unwrap();
    let policy = KeyPolicy::from_config(&app.platform.config.auth.jwt);
    let list = keys::list(
        &mut app.db.conn(),
        &sealer(&app),
        &policy,
        app.clock.now() + Duration::seconds(1),
    )
    .unwrap();
    assert_eq!(list.len(), 2);
    assert!(list[0].signing && list[0].kid == rotated.kid);
    assert!(!list[1].signing && list[1].published);
}

/// Finding 13: the activation delay counts from when a process first served the key in its
/// JWKS, not from the row's creation, and every process switches at that same moment.
#[actix_web::test]
async fn a_rotated_key_signs_the_activation_delay_after_it_was_first_published() {
    let app = TestApp::new();
    let a = KeyStore::new(&app.platform).unwrap();
    let b = KeyStore::new(&app.platform).unwrap();
    let t0 = app.clock.now();
    let old_kid = kid_of(&a.sign_for_user(&alice(), t0).await.unwrap());
    kid_of(&b.sign_for_user(&alice(), t0).await.unwrap());

    // `keys rotate` from another process: nobody serves the new key yet.
    app.clock.advance(Duration::seconds(5));
    let created = app.clock.now();
    let rotated = keys::rotate(
        &mut app.db.conn(),
        &sealer(&app),
        &policy(&app),
        created,
        false,
    )
    .unwrap();
    assert_eq!(rotated.published_at, None);
    assert_eq!(
        rotated.signs_from,
        created + Duration::seconds(30 + 360),
        "the latest it can sign"
    );

    // Process a reloads (its 30 s are up) and serves it from then on: that is publication.
    app.clock.set(t0 + Duration::seconds(30));
    assert_eq!(
        kid_of(&a.sign_for_user(&alice(), app.clock.now()).await.unwrap()),
        old_kid
    );
    let published = app.clock.now();
    assert!(store_kids(&a).await.contains(&rotated.kid), "published");
    let row = rows(&app)
        .into_iter()
        .find(|r| r.id == rotated.kid)
        .unwrap();
    assert_eq!(row.published_at, Some(published));
    let old = rows(&app).into_iter().find(|r| r.id == old_kid).unwrap();
    assert_eq!(
        old.expires_at,
        Some(published + Duration::seconds(360)),
        "the old key retires exactly when the new one signs"
    );

    // 360 s after creation the old key still signs (created_at no longer counts)…
    app.clock.set(created + Duration::seconds(360));
    for store in [&a, &b] {
        let token = store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap();
        assert_eq!(kid_of(&token), old_kid);
    }
    // …and 360 s after publication both processes sign with the new key, none with the old.
    app.clock.set(published + Duration::seconds(359));
    assert_eq!(
        kid_of(&b.sign_for_user(&alice(), app.clock.now()).await.unwrap()),
        old_kid
    );
    app.clock.set(published + Duration::seconds(360));
    for store in [&a, &b] {
        let token = store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap();
        assert_eq!(kid_of(&token), rotated.kid);
    }
}

#[actix_web::test]
async fn a_revoked_key_leaves_the_jwks_and_stops_signing_at_once() {
    let mut app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    let t0 = app.clock.now();
    let old_kid = kid_of(&store.sign_for_user(&alice(), t0).await.unwrap());
    let rotated = store.rotate(false).await.unwrap();

    // The signing key while the new one is pending: the pending one takes over at once.
    let revoked = store.revoke(&old_kid, false).await.unwrap();
    assert_eq!(revoked.replacement, None);
    let token = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(kid_of(&token), rotated.kid);
    let jwks = app.get(Role::Auth, "/api/auth/jwks").await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![rotated.kid.as_str()]);
    let row = rows(&app).into_iter().find(|r| r.id == old_kid).unwrap();
    assert_eq!(row.revoked_at, Some(t0));
    assert_eq!(row.expires_at, Some(t0), "Better Auth's columns say it too");

    // Never published again, however the clock moves.
    app.clock.advance(Duration::days(1));
    store.reload(app.clock.now()).await.unwrap();
    assert_eq!(store_kids(&store).await, vec![rotated.kid.clone()]);

    // Revoked twice, or a kid that does not exist: refused, nothing changes.
    let again = store.revoke(&old_kid, false).await.unwrap_err().to_string();
    assert!(again.contains("already revoked"), "{again}");
    let missing = store
        .revoke("no-such-kid", true)
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("no key no-such-kid"), "{missing}");
}

#[actix_web::test]
async fn the_only_signing_key_is_revoked_only_with_a_replacement() {
    let app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    let only = kid_of(
        &store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap(),
    );

    let refused = store.revoke(&only, false).await.unwrap_err().to_string();
    assert!(
        refused.contains("only key that can sign") && refused.contains("--rotate"),
        "{refused}"
    );
    assert_eq!(store_kids(&store).await, vec![only.clone()]);
    assert!(rows(&app).iter().all(|r| r.revoked_at.is_none()));

    let revoked = store.revoke(&only, true).await.unwrap();
    let new = revoked.replacement.expect("a replacement");
    assert_eq!(store_kids(&store).await, vec![new.clone()]);
    let token = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(kid_of(&token), new, "the replacement signs at once");
}

/// Another process's revocation reaches a running process at its next reload (<= 30 s).
#[actix_web::test]
async fn another_process_revocation_is_seen_at_the_next_reload() {
    let app = TestApp::new();
    let store = KeyStore::new(&app.platform).unwrap();
    let old_kid = kid_of(
        &store
            .sign_for_user(&alice(), app.clock.now())
            .await
            .unwrap(),
    );
    let revoked = keys::revoke(
        &mut app.db.conn(),
        &sealer(&app),
        &policy(&app),
        app.clock.now(),
        &old_kid,
        true,
    )
    .unwrap();
    let new = revoked.replacement.unwrap();
    app.clock.advance(Duration::seconds(30));
    let token = store
        .sign_for_user(&alice(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(kid_of(&token), new);
    assert_eq!(store_kids(&store).await, vec![new]);
}

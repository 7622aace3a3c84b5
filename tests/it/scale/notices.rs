//! What one instance does, the other sees at once through PostgreSQL's notices: a sign-out,
//! a key rotation; and a listener that reconnects clears its cache.

use super::*;

/// An auth app of its own over `platform`, kept for the whole test (its memory is the point).
struct Instance {
    platform: Platform,
    mounted: switchboard::server::Mount,
}

impl Instance {
    fn new(platform: Platform) -> Self {
        let mounted = mount(Role::Auth, &platform).expect("auth mounts");
        Self { platform, mounted }
    }

    async fn call(&self, req: TestRequest) -> Seen {
        let mounted = self.mounted.clone();
        let data = actix_web::web::Data::new(self.platform.clone());
        let app =
            test::init_service(build_app(data, RoleTag("auth"), move |cfg| mounted(cfg))).await;
        Seen::of(test::call_service(&app, req.to_request()).await).await
    }
}

#[actix_web::test]
async fn a_sign_out_through_one_instance_empties_get_session_on_the_other_at_once() {
    use crate::common::auth::{cookie_header, get_with, post_with};
    let mut a = TestApp::new();
    let b = Instance::new(second_instance(&a));
    // A's app is mounted by its first request.
    let cookie = cookie_header(&a.sign_up("ann@example.com").await);
    listeners_ready(&a, 2).await;

    // B reads the session, and so remembers it for the TTL (1 s of the test's clock, which
    // does not move in this test).
    let seen = b.call(get_with("/api/auth/get-session", &cookie)).await;
    assert_eq!(seen.json()["user"]["email"], "ann@example.com");

    let out = a
        .auth(post_with(
            "/api/auth/sign-out",
            &cookie,
            serde_json::json!({}),
        ))
        .await;
    assert_eq!(out.status, 200);
    within_seconds("B sees the sign-out", || async {
        b.call(get_with("/api/auth/get-session", &cookie))
            .await
            .json()
            .is_null()
    })
    .await;

    // A user update through A shows on B too.
    let cookie = cookie_header(
        &a.sign_in("ann@example.com", crate::common::auth::PASSWORD)
            .await,
    );
    let seen = b.call(get_with("/api/auth/get-session", &cookie)).await;
    assert_eq!(seen.json()["user"]["name"], "Alice");
    let updated = a
        .auth(post_with(
            "/api/auth/update-user",
            &cookie,
            serde_json::json!({"name": "Ann B"}),
        ))
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.json());
    within_seconds("B sees the new name", || async {
        b.call(get_with("/api/auth/get-session", &cookie))
            .await
            .json()["user"]["name"]
            == "Ann B"
    })
    .await;
}

#[actix_web::test]
async fn a_key_rotation_elsewhere_is_loaded_by_every_instance_at_once() {
    use switchboard::auth::jwt::keys::{self, KeyPolicy};
    use switchboard::auth::jwt::sealed::KeySealer;
    let app = TestApp::new();
    let (a, b) = (
        Instance::new(app.platform.clone()),
        Instance::new(second_instance(&app)),
    );
    let kids = |seen: Seen| -> Vec<String> {
        seen.json()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    };
    let before = kids(a.call(TestRequest::get().uri("/api/auth/jwks")).await);
    assert_eq!(
        kids(b.call(TestRequest::get().uri("/api/auth/jwks")).await),
        before
    );
    listeners_ready(&app, 2).await;

    // `switchboard keys rotate --now`, from a third process; the clock does not move, so
    // neither instance's reload interval (30 s) runs out.
    let config = &app.platform.config;
    let sealer = KeySealer::new(&config.auth.jwt_secret, &config.auth.secret).unwrap();
    let policy = KeyPolicy::from_config(&config.auth.jwt);
    let rotated =
        keys::rotate(&mut app.db.conn(), &sealer, &policy, app.clock_now(), true).unwrap();
    for (name, instance) in [("A", &a), ("B", &b)] {
        within_seconds(&format!("{name} serves the new key"), || async {
            kids(
                instance
                    .call(TestRequest::get().uri("/api/auth/jwks"))
                    .await,
            )
            .contains(&rotated.kid)
        })
        .await;
    }
}

/// A dropped LISTEN connection: the listener reconnects (with backoff) and clears the cache,
/// since it may have missed notices meanwhile.
#[actix_web::test]
async fn a_listener_that_reconnects_clears_the_session_cache() {
    use crate::common::auth::{cookie_header, get_with};
    use crate::common::rows::exec;
    let mut a = TestApp::new();
    let b = Instance::new(second_instance(&a));
    let cookie = cookie_header(&a.sign_up("ann@example.com").await);
    listeners_ready(&a, 2).await;
    let seen = b.call(get_with("/api/auth/get-session", &cookie)).await;
    assert_eq!(seen.json()["user"]["email"], "ann@example.com");

    // Changed behind every process's back (no notice), then every listener is cut off.
    let mut conn = a.db.conn();
    exec(&mut conn, "DELETE FROM session");
    exec(
        &mut conn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'switchboard-listen'",
    );
    // B's cache alone would keep the session: the test's clock does not move.
    within_seconds("B reconnects and forgets", || async {
        b.call(get_with("/api/auth/get-session", &cookie))
            .await
            .json()
            .is_null()
    })
    .await;
    listeners_ready(&a, 2).await;
}

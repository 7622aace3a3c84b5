//! Rate limits across two instances: the database store lets exactly `max` through and runs
//! Better Auth's algorithm; the memory store counts per instance.

use super::*;

const DATABASE_LIMITS: [(&str, &str); 3] = [
    ("SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED", "true"),
    ("SWITCHBOARD__AUTH__RATE_LIMIT__STORAGE", "database"),
    ("SWITCHBOARD__AUTH__RATE_LIMIT__MAX", "20"),
];

/// Sends every request at once, alternating between the two instances' auth apps.
async fn spread(platforms: [&Platform; 2], reqs: Vec<TestRequest>) -> Vec<Seen> {
    let mut apps = Vec::new();
    for platform in platforms {
        let mounted = mount(Role::Auth, platform).expect("auth mounts");
        let data = actix_web::web::Data::new(platform.clone());
        apps.push(
            test::init_service(build_app(data, RoleTag("auth"), move |cfg| mounted(cfg))).await,
        );
    }
    let calls = reqs.into_iter().enumerate().map(|(i, req)| {
        let app = &apps[i % 2];
        async move { Seen::of(test::call_service(app, req.to_request()).await).await }
    });
    futures_util::future::join_all(calls).await
}

fn from(ip: &str, path: &str) -> TestRequest {
    TestRequest::get()
        .uri(path)
        .peer_addr(SocketAddr::new(ip.parse().unwrap(), 40000))
}

#[actix_web::test]
async fn database_limits_let_exactly_max_through_across_two_instances() {
    let app = TestApp::with_env(&DATABASE_LIMITS);
    let other = second_instance(&app);
    let reqs = (0..60)
        .map(|_| from("203.0.113.7", "/api/auth/ok"))
        .collect();
    let seen = spread([&app.platform, &other], reqs).await;
    let passed = seen.iter().filter(|s| s.status == 200).count();
    let refused: Vec<&Seen> = seen.iter().filter(|s| s.status == 429).collect();
    assert_eq!((passed, refused.len()), (20, 40), "exactly max pass");
    assert!(
        refused
            .iter()
            .all(|s| s.header("x-retry-after") == Some("10"))
    );
    let mut conn = app.db.conn();
    assert_eq!(
        crate::common::rows::text(
            &mut conn,
            "SELECT count FROM rate_limit WHERE key = '203.0.113.7|/ok'"
        )
        .as_deref(),
        Some("20")
    );

    // Sign-in's own rule (3 per 10 s) holds across both as well, and its window slides from the
    // last allowed request whichever instance allowed it.
    let reqs = (0..12)
        .map(|_| from("203.0.113.8", "/api/auth/sign-in/email"))
        .collect();
    let seen = spread([&app.platform, &other], reqs).await;
    assert_eq!(seen.iter().filter(|s| s.status != 429).count(), 3);
    app.clock.advance(chrono::Duration::milliseconds(9_500));
    let seen = spread(
        [&other, &app.platform],
        vec![from("203.0.113.8", "/api/auth/sign-in/email")],
    )
    .await;
    assert_eq!(seen[0].status, 429);
    assert_eq!(seen[0].header("x-retry-after"), Some("1"));
    app.clock.advance(chrono::Duration::milliseconds(500));
    let seen = spread(
        [&app.platform, &other],
        vec![from("203.0.113.8", "/api/auth/sign-in/email")],
    )
    .await;
    assert_ne!(seen[0].status, 429);
}

#[actix_web::test]
async fn the_database_store_runs_better_auths_algorithm() {
    let app = TestApp::new();
    let mut conn = app.db.conn();
    let rule = Rule::new(10, 3);
    let mut at = |key: &str, ms: i64| DatabaseStore::check(&mut conn, key, rule, ms).unwrap();
    for ms in [0, 5_000, 9_000] {
        assert_eq!(at("k", ms), Decision::Allowed);
    }
    let limited = |retry_after_secs| Decision::Limited { retry_after_secs };
    // Full: refused until 10 s after the last allowed request, rounded up; refusals do not
    // move the window.
    assert_eq!(at("k", 9_000), limited(10));
    assert_eq!(at("k", 12_000), limited(7));
    assert_eq!(at("k", 18_999), limited(1));
    for _ in 0..3 {
        assert_eq!(at("k", 19_000), Decision::Allowed);
    }
    assert_eq!(at("k", 19_000), limited(10));
    assert_eq!(at("other", 19_000), Decision::Allowed);

    // Pruning drops only rows idle past the cut-off.
    assert_eq!(DatabaseStore::prune(&mut conn, 19_000).unwrap(), 0);
    assert_eq!(DatabaseStore::prune(&mut conn, 19_001).unwrap(), 2);
}

#[actix_web::test]
async fn memory_limits_count_per_instance() {
    // What database storage fixes: with memory storage each instance counts alone.
    let app = TestApp::with_env(&[DATABASE_LIMITS[0], DATABASE_LIMITS[2]]);
    let other = second_instance(&app);
    let reqs = (0..60)
        .map(|_| from("203.0.113.7", "/api/auth/ok"))
        .collect();
    let seen = spread([&app.platform, &other], reqs).await;
    assert_eq!(seen.iter().filter(|s| s.status == 200).count(), 40);
}

//! The one walk-through of every multi-process guarantee (see the parent module).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_per_role_behind_haproxy_keep_every_guarantee() {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let url = cluster.url("switchboard");
    {
        use diesel::prelude::*;
        let mut admin = PgConnection::establish(&cluster.url("postgres")).unwrap();
        diesel::sql_query("CREATE DATABASE switchboard")
            .execute(&mut admin)
            .unwrap();
    }
    run(Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("migrate")
        .env_clear()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("APP_ENV", "test")
        .env("DATABASE_URL", &url));

    // The proxy needs the servers' ports, and the connectors processes the proxy's.
    let common: Vec<(String, String)> = [
        ("APP_ENV", "test"),
        ("RUST_LOG", "warn"),
        ("DATABASE_URL", url.as_str()),
        ("SWITCHBOARD__SERVER__WORKERS", "1"),
        ("SWITCHBOARD__SERVER__DRAIN_DELAY_SECS", "2"),
        ("SWITCHBOARD__DATABASE__POOL_MAX_SIZE", "4"),
        ("SWITCHBOARD__DATABASE__CONNECT_TIMEOUT_SECS", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let server = |kind: Kind, n: usize, extra: &[(&str, &str)]| {
        let mut env = common.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Server {
            kind,
            port: free_port(),
            env,
            log: cluster.dir.join(format!("{kind:?}-{n}.log").to_lowercase()),
            child: None,
        }
    };
    let auth_env = [
        ("SWITCHBOARD__AUTH__RATE_LIMIT__ENABLED", "true"),
        ("SWITCHBOARD__AUTH__RATE_LIMIT__STORAGE", "database"),
        // Only the sign-in rule (3 per 10 s) should bite; the load loop shares one client IP.
        ("SWITCHBOARD__AUTH__RATE_LIMIT__MAX", "1000000"),
        ("SWITCHBOARD__AUTH__SESSION__CACHE_TTL_MS", "600000"),
    ];
    let mut a1 = server(Kind::Auth, 1, &auth_env);
    let mut a2 = server(Kind::Auth, 2, &auth_env);
    // Connectors: the JWKS through the proxy's auth frontend, known only once it runs; so the
    // proxy starts first (its servers are down until they come up).
    let mut c1 = server(Kind::Connectors, 1, &[]);
    let mut c2 = server(Kind::Connectors, 2, &[]);
    let proxy = Proxy::start(&cluster.dir, &[&a1, &a2], &[&c1, &c2]);
    let jwks = proxy.auth("/api/auth/jwks");
    for (c, jobs) in [(&mut c1, "false"), (&mut c2, "true")] {
        c.env.extend(
            [
                ("AUTH_JWKS_URL", jwks.as_str()),
                ("LINEAR_WEBHOOK_SECRET", LINEAR_SECRET),
                // c1 accepts webhooks but runs no jobs: whatever runs them is c2.
                ("SWITCHBOARD__JOBS__ENABLED", jobs),
                ("SWITCHBOARD__JOBS__POLL_INTERVAL_MS", "50"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
    }
    for s in [&mut a1, &mut a2, &mut c1, &mut c2] {
        s.spawn();
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(8)
        .build()
        .unwrap();
    until(
        "both roles in rotation",
        Duration::from_secs(90),
        || async {
            proxy.up(&client, "auth").await == 2 && proxy.up(&client, "connectors").await == 2
        },
    )
    .await;
    let post = |base: String, path: &str, cookie: Option<&str>, body: Value| {
        let mut req = client
            .post(format!("{base}/api/auth{path}"))
            .header("origin", ORIGIN)
            .json(&body);
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.send()
    };

    // 1. Sign-in limits across both auth processes: 8 wrong passwords at once, alternating.
    let up = post(
        a1.base(),
        "/sign-up/email",
        None,
        json!({"name": "Alice", "email": "alice@example.com", "password": PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(up.status(), 200);
    let attempts = (0..8).map(|i| {
        let base = if i % 2 == 0 { a1.base() } else { a2.base() };
        let wrong = json!({"email": "alice@example.com", "password": "wrong-password"});
        async move {
            post(base, "/sign-in/email", None, wrong)
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s != 429).count(),
        3,
        "3 per 10 s across both: {statuses:?}"
    );

    // 2. Sign-out through a1, get-session through a2 (which cached the session for 10 min),
    // with a second user: Alice's session serves the rest of the test.
    let session = |base: String, cookie: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("{base}/api/auth/get-session"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let bob = post(
        a2.base(),
        "/sign-up/email",
        None,
        json!({"name": "Bob", "email": "bob@example.com", "password": PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(bob.status(), 200);
    let bob = cookie_of(&bob);
    assert_eq!(
        session(a2.base(), bob.clone()).await["user"]["email"],
        "bob@example.com"
    );
    let out = post(a1.base(), "/sign-out", Some(&bob), json!({}))
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    until("a2 sees a1's sign-out", Duration::from_secs(5), || async {
        session(a2.base(), bob.clone()).await.is_null()
    })
    .await;
    let cookie = cookie_of(&up);

    // 3. Key rotation from another process (`keys rotate --now`): a token minted through a1
    // with the new key verifies on both connectors processes at once; then the old key is
    // revoked and its token stops verifying on both.
    let token = |base: String| {
        let (client, cookie) = (client.clone(), cookie.clone());
        async move {
            let body: Value = client
                .get(format!("{base}/api/auth/token"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["token"].as_str().expect("a token").to_owned()
        }
    };
    let me = |base: String, bearer: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("{base}/api/me"))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let old = token(a1.base()).await;
    for c in [&c1, &c2] {
        assert_eq!(me(c.base(), old.clone()).await, 200, "{}", c.base());
    }
    let keys = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("keys")
            .args(args)
            .env_clear()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("APP_ENV", "test")
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    keys(&["rotate", "--now"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let new = loop {
        let new = token(a1.base()).await;
        if kid(&new) != kid(&old) {
            break new;
        }
        assert!(
            Instant::now() < deadline,
            "a1 signs with the new key: not after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let published = |base: String| {
        let client = client.clone();
        let kid = kid(&new);
        async move {
            let jwks: Value = client
                .get(format!("{base}/api/auth/jwks"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == kid.as_str())
        }
    };
    until(
        "both auth processes publish the new key",
        Duration::from_secs(5),
        || async { published(a1.base()).await && published(a2.base()).await },
    )
    .await;
    for c in [&c1, &c2] {
        // At once, no retry: both fetched the JWKS less than 30 s ago (the refetch cooldown),
        // so without the notice the new kid would be refused.
        assert_eq!(
            me(c.base(), new.clone()).await,
            200,
            "new kid on {}",
            c.base()
        );
    }
    keys(&["revoke", &kid(&old)]);
    for c in [&c1, &c2] {
        until(
            &format!("{} refuses the revoked key", c.base()),
            Duration::from_secs(5),
            || async { me(c.base(), old.clone()).await == 401 },
        )
        .await;
        assert_eq!(me(c.base(), new.clone()).await, 200);
    }

    // 4. A webhook accepted by c1 (no job workers) is routed by c2's workers.
    assert_eq!(
        post_webhook(
            &client,
            &format!("{}/webhooks/linear", c1.base()),
            "one-by-c1"
        )
        .await,
        Some(200)
    );
    let routed = || {
        strings(
            &url,
            "SELECT status AS v FROM webhook_events WHERE delivery_id = 'one-by-c1'",
        )
    };
    until(
        "c2 ran the job c1 enqueued",
        Duration::from_secs(10),
        || async { routed() == ["unmatched"] },
    )
    .await;

    // 5. Rolling restarts under load, one role then the other: zero failed requests.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let loaders = load(&client, &proxy, &cookie, &new, &stop, &tally);
    for (backend, servers) in [
        ("auth", [&mut a1, &mut a2]),
        ("connectors", [&mut c1, &mut c2]),
    ] {
        for s in servers {
            tokio::task::block_in_place(|| s.terminate());
            s.spawn();
            until(
                &format!("{} back in rotation", s.base()),
                Duration::from_secs(60),
                || async { proxy.up(&client, backend).await == 2 },
            )
            .await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in loaders {
        t.await.unwrap();
    }
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    assert!(ok > 100, "the load ran: {ok} requests");
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}",
        tally.sample.lock().unwrap()
    );

    // 6. PostgreSQL restarted under webhook load: /readyz 503 meanwhile on every process, then
    // every process ready again by itself, and every delivery that got a 200 is stored.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for t in 0..2 {
        let (client, stop, accepted) = (client.clone(), stop.clone(), accepted.clone());
        let hook = proxy.connectors("/webhooks/linear");
        senders.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let delivery = format!("pg-restart-{t}-{n}");
                if post_webhook(&client, &hook, &delivery).await == Some(200) {
                    accepted.lock().unwrap().push(delivery);
                }
                // Not a wait for time: the proxy answers 503 at once while every server is
                // out, and this keeps the loop from spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    until(
        "webhooks accepted before the restart",
        Duration::from_secs(10),
        || async { accepted.lock().unwrap().len() >= 10 },
    )
    .await;
    tokio::task::block_in_place(|| cluster.pg_ctl_stop("fast"));
    let servers = [&a1, &a2, &c1, &c2];
    for s in servers {
        until(
            &format!("{} not ready while PostgreSQL is down", s.base()),
            Duration::from_secs(10),
            || async { s.ready(&client).await == Some(503) },
        )
        .await;
    }
    let during = accepted.lock().unwrap().len();
    tokio::task::block_in_place(|| cluster.pg_ctl_start());
    for s in servers {
        until(
            &format!("{} ready again", s.base()),
            Duration::from_secs(30),
            || async { s.ready(&client).await == Some(200) },
        )
        .await;
    }
    until(
        "webhooks accepted after the restart",
        Duration::from_secs(20),
        || async { accepted.lock().unwrap().len() >= during + 10 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in senders {
        t.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let stored: std::collections::HashSet<String> = strings(
        &url,
        "SELECT delivery_id AS v FROM webhook_events WHERE delivery_id LIKE 'pg-restart-%'",
    )
    .into_iter()
    .collect();
    let lost: Vec<&String> = accepted.iter().filter(|d| !stored.contains(*d)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} accepted deliveries lost: {lost:?}",
        lost.len(),
        accepted.len()
    );
    // Recovered without a restart: sessions and tokens work through the proxy again, and the
    // LISTEN connections are back (a sign-out through a1 reaches a2 at once).
    let res = client
        .get(proxy.auth("/api/auth/get-session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(me(proxy.connectors(""), new.clone()).await, 200);
    until("four listeners back", Duration::from_secs(15), || async {
        strings(
            &url,
            "SELECT count(*)::text AS v FROM pg_stat_activity \
             WHERE application_name = 'switchboard-listen'",
        ) == ["4"]
    })
    .await;
    assert!(!session(a2.base(), cookie.clone()).await.is_null());
    let out = post(a1.base(), "/sign-out", Some(&cookie), json!({}))
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    until(
        "a2 sees a1's sign-out after the restart",
        Duration::from_secs(5),
        || async { session(a2.base(), cookie.clone()).await.is_null() },
    )
    .await;
    println!(
        "multi-process harness: {} ok requests under rolling restarts, {} webhooks across a \
         PostgreSQL restart, {:.1} s",
        ok,
        accepted.len(),
        started.elapsed().as_secs_f64()
    );
}

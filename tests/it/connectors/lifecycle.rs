//! Ownership and removal: revoke on delete, other users' connections, cascade from the user.

use super::World;
use actix_web::test::TestRequest;

#[actix_web::test]
async fn delete_revokes_both_tokens_at_the_provider_then_deletes() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = w
        .connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    w.linear.linear_revoke(200).await;
    let res = w
        .send(
            &ada,
            TestRequest::delete().uri(&format!("/api/connections/{id}")),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["revoked"], true);
    let revokes = w.linear.received("/oauth/revoke", "token=").await;
    let bodies: Vec<String> = revokes
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(
        bodies,
        vec![
            "token=lin_r1&token_type_hint=refresh_token",
            "token=lin_a1&token_type_hint=access_token"
        ]
    );
    let res = w
        .send(
            &ada,
            TestRequest::get().uri(&format!("/api/connections/{id}")),
        )
        .await;
    assert_eq!(res.status, 404);
}

#[actix_web::test]
async fn a_provider_that_cannot_revoke_keeps_the_connection_unless_forced() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let id = w
        .connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    w.linear.linear_revoke(500).await;
    let uri = format!("/api/connections/{id}");
    let res = w.send(&ada, TestRequest::delete().uri(&uri)).await;
    assert_eq!(res.status, 502);
    assert_eq!(res.json()["code"], "PROVIDER_UNAVAILABLE");
    assert_eq!(w.send(&ada, TestRequest::get().uri(&uri)).await.status, 200);
    let res = w
        .send(
            &ada,
            TestRequest::delete().uri(&format!("{uri}?force=true")),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["revoked"], false);
    assert_eq!(w.send(&ada, TestRequest::get().uri(&uri)).await.status, 404);
}

#[actix_web::test]
async fn another_users_connection_is_a_404_everywhere() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let bob = w.user("bob");
    let id = w
        .connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    w.linear.linear_revoke(200).await;
    let uri = format!("/api/connections/{id}");
    for req in [
        TestRequest::get().uri(&uri),
        TestRequest::delete().uri(&uri),
        TestRequest::post().uri(&format!("{uri}/refresh")),
    ] {
        let res = w.send(&bob, req).await;
        assert_eq!(res.status, 404);
        assert_eq!(res.json()["code"], "CONNECTION_NOT_FOUND");
    }
    let list = w
        .send(&bob, TestRequest::get().uri("/api/connections"))
        .await
        .json();
    assert_eq!(list["connections"].as_array().unwrap().len(), 0);
    assert!(w.linear.received("/oauth/revoke", "").await.is_empty());
    // Still Ada's.
    assert_eq!(w.send(&ada, TestRequest::get().uri(&uri)).await.status, 200);
    // Without a token: 401.
    let res = w
        .app
        .call(
            switchboard::platform::role::Role::Connectors,
            TestRequest::get().uri("/api/connections"),
        )
        .await;
    assert_eq!(res.status, 401);
}

#[actix_web::test]
async fn deleting_the_user_removes_their_connections() {
    let mut w = World::new().await;
    let ada = w.user("ada");
    let bob = w.user("bob");
    w.connect_linear(&ada, "c1", "lin_a1", "lin_r1", "v1", "o1")
        .await;
    w.connect_linear(&bob, "c2", "lin_b1", "lin_s1", "v2", "o2")
        .await;
    assert_eq!(w.exec("DELETE FROM \"user\" WHERE id = 'ada'"), 1);
    let owners = w.sql_texts("SELECT owner_id AS t FROM connections");
    assert_eq!(owners, vec!["bob"]);
}

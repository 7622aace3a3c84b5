//! Path and query screening in the shared app builder (issue 10, finding 4), seen from the
//! connectors role: NUL and over-long ids are 400s, unknown ids 404s, never a 500.

#[cfg(feature = "connectors")]
mod connectors {
    use crate::connectors::World;
    use actix_web::test::TestRequest;

    #[actix_web::test]
    async fn malformed_connection_ids_are_400_or_404_never_500() {
        let mut w = World::new().await;
        let user = w.user("u-screen");
        let long = "a".repeat(600);
        let nul_cases = [
            TestRequest::get().uri("/api/connections/%00"),
            TestRequest::delete().uri("/api/connections/%00"),
            TestRequest::post().uri("/api/connections/%00/refresh"),
            TestRequest::get().uri("/api/connections/abc%00def"),
            TestRequest::get().uri("/api/connections?x=%00"),
            TestRequest::get().uri(&format!("/api/connections/{long}")),
            TestRequest::delete().uri(&format!("/api/connections/{long}")),
        ];
        for req in nul_cases {
            let res = w.send(&user, req).await;
            assert_eq!(res.status, 400, "{}", String::from_utf8_lossy(&res.body));
            assert_eq!(res.json()["code"], "VALIDATION_ERROR");
        }
        for path in [
            "/api/connections/not-a-uuid",
            "/api/connections/00000000-0000-0000-0000-000000000000",
            "/api/connections/%E2%82%AC",
            "/api/connections/a%2Fb",
            "/api/connections/%25",
        ] {
            let res = w.send(&user, TestRequest::get().uri(path)).await;
            assert_eq!(
                res.status,
                404,
                "{path}: {}",
                String::from_utf8_lossy(&res.body)
            );
            let res = w
                .send(&user, TestRequest::post().uri(&format!("{path}/refresh")))
                .await;
            assert_eq!(res.status, 404, "{path}/refresh");
        }
    }
}

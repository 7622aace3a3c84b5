//! Helpers for driving the auth role like a browser would: JSON posts from a trusted origin, a
//! cookie jar of one, signing up and in.

use super::app::{Seen, TestApp};
use actix_web::http::header;
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use switchboard::platform::role::Role;

/// The origin the test config trusts (the origin of `BETTER_AUTH_URL`).
pub const ORIGIN: &str = "http://localhost:5001";
pub const PASSWORD: &str = "correct-horse-battery";

/// `name=value` pairs of every cookie the response sets to a non-empty value.
pub fn set_cookies(seen: &Seen) -> Vec<String> {
    seen.header_all("set-cookie")
        .into_iter()
        .filter_map(|c| c.split(';').next().map(str::to_owned))
        .filter(|pair| !pair.ends_with('='))
        .collect()
}

/// The `Cookie` header a browser would send back after this response.
pub fn cookie_header(seen: &Seen) -> String {
    set_cookies(seen).join("; ")
}

pub fn post(path: &str, body: Value) -> TestRequest {
    TestRequest::post()
        .uri(path)
        .insert_header((header::ORIGIN, ORIGIN))
        .set_json(body)
}

pub fn post_with(path: &str, cookie: &str, body: Value) -> TestRequest {
    post(path, body).insert_header((header::COOKIE, cookie.to_owned()))
}

pub fn get_with(path: &str, cookie: &str) -> TestRequest {
    TestRequest::get()
        .uri(path)
        .insert_header((header::COOKIE, cookie.to_owned()))
}

impl TestApp {
    pub async fn auth(&mut self, req: TestRequest) -> Seen {
        self.call(Role::Auth, req).await
    }

    /// Signs up `email` with [`PASSWORD`]; returns the response (its cookies sign the user in).
    pub async fn sign_up(&mut self, email: &str) -> Seen {
        let res = self
            .auth(post(
                "/api/auth/sign-up/email",
                json!({"name": "Alice", "email": email, "password": PASSWORD}),
            ))
            .await;
        assert_eq!(
            res.status,
            200,
            "sign-up failed: {:?}",
            String::from_utf8_lossy(&res.body)
        );
        res
    }

    /// Signs up and returns the session cookie header.
    pub async fn signed_in(&mut self, email: &str) -> String {
        cookie_header(&self.sign_up(email).await)
    }

    pub async fn sign_in(&mut self, email: &str, password: &str) -> Seen {
        self.auth(post(
            "/api/auth/sign-in/email",
            json!({"email": email, "password": password}),
        ))
        .await
    }

    pub async fn session_of(&mut self, cookie: &str) -> Value {
        self.auth(get_with("/api/auth/get-session", cookie))
            .await
            .json()
    }
}

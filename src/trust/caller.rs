//! `Caller`: the verified identity behind a request, the only door through which identity enters
//! a handler. `Authorization: Bearer <jwt>` only; cookies are never consulted.

use crate::db::ids::UserId;
use crate::platform::telemetry::record_user_id;
use crate::trust::{TrustError, Verifier};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;

/// Who is calling, from a verified token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `sub`: the user id.
    pub id: UserId,
    pub email: Option<String>,
    pub name: Option<String>,
    pub email_verified: bool,
    pub image: Option<String>,
}

impl FromRequest for Caller {
    type Error = TrustError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(verifier) = req.app_data::<web::Data<Verifier>>() else {
                tracing::error!("Caller used in an app without a trust::Verifier");
                return Err(TrustError::NotConfigured);
            };
            let token = bearer_token(&req).ok_or(TrustError::Missing)?;
            let claims = verifier.verify(token).await?;
            record_user_id(&req, &claims.sub);
            Ok(Caller {
                email: claims.str("email").map(str::to_owned),
                name: claims.str("name").map(str::to_owned),
                email_verified: claims
                    .all
                    .get("emailVerified")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                image: claims.str("image").map(str::to_owned),
                id: UserId::from(claims.sub),
            })
        })
    }
}

/// The token of an `Authorization: Bearer` header (scheme case-insensitive, RFC 7235).
fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

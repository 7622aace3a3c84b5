//! Running behind a proxy: the start-up warning that a load balancer is in front while the auth
//! rate limits are on and no proxy is trusted (every client would share the balancer's bucket).
//!
//! `X-Forwarded-Proto` and `X-Forwarded-Host` are deliberately not used, from anyone: cookies
//! (`Secure`, the `__Secure-` prefix) follow `BETTER_AUTH_URL` as in Better Auth, and every URL
//! we hand out (redirects, OAuth callbacks) is built from `BETTER_AUTH_URL` / `CONNECTORS_URL`.
//! With TLS ending at the proxy, those are the public https URLs and nothing else is needed;
//! a client cannot steer a redirect's host with a header.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

/// Warns once per process when the auth role sees a forwarded request while its rate limits
/// are on and `auth.rate_limit.trusted_proxies` is empty. A build without the auth role has
/// neither, and passes every request on.
pub async fn warn_untrusted_forwarding(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    #[cfg(feature = "auth")]
    warn_once_if_untrusted(&req);
    next.call(req).await
}

#[cfg(feature = "auth")]
fn warn_once_if_untrusted(req: &ServiceRequest) {
    use crate::platform::state::Platform;
    use crate::platform::telemetry::RoleTag;
    use actix_web::web;
    use std::sync::atomic::Ordering;

    let is_auth = req.app_data::<RoleTag>().is_some_and(|r| r.0 == "auth");
    if is_auth
        && (req.headers().contains_key("x-forwarded-for")
            || req.headers().contains_key("forwarded"))
        && let Some(platform) = req.app_data::<web::Data<Platform>>()
    {
        let config = &platform.config;
        let limits = &config.auth.rate_limit;
        if limits.enabled_in(config.app_env)
            && limits.trusted_proxies.is_empty()
            && !platform.proxy_warned.swap(true, Ordering::Relaxed)
        {
            let peer = req
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            tracing::warn!(
                %peer,
                "a request arrived with X-Forwarded-For from {peer}, but auth.rate_limit.trusted_proxies \
                 is empty: the rate limits key on the proxy's address, so every client behind it \
                 shares one limit, and sessions record the proxy's address. Set \
                 auth.rate_limit.trusted_proxies (SWITCHBOARD__AUTH__RATE_LIMIT__TRUSTED_PROXIES) \
                 to the proxy's address or network (README, \"Behind a load balancer\"). Said once."
            );
        }
    }
}

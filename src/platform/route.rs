//! The one reading of a request's path that security decisions may use: the router's own.
//! The router matches the percent-decoded path (all but `%2F`, `%25`, `%2B`), so a guard that
//! tests the raw `req.path()` can be walked around with `/sign-in/%65mail`.

use actix_web::dev::ServiceRequest;

/// The path as the router reads it (decoded), whole, from the first `/`.
pub fn routed_path(req: &ServiceRequest) -> &str {
    req.match_info().as_str()
}

/// The pattern of the resource that serves (or will serve) `req`, with every scope prefix, e.g.
/// `/api/auth/reset-password/{token}`; `None` when no resource matches. Works in a middleware
/// before the router ran: `ServiceRequest::match_pattern` would test the raw path there.
pub fn matched_pattern(req: &ServiceRequest) -> Option<String> {
    req.resource_map().match_pattern(routed_path(req))
}

/// The names of a pattern's dynamic segments, in order (`{id}` → `id`, `{tail:.*}` → `tail`).
pub fn pattern_params(pattern: &str) -> impl Iterator<Item = &str> {
    pattern.split('{').skip(1).filter_map(|rest| {
        let inner = rest.split('}').next()?;
        inner.split(':').next()
    })
}

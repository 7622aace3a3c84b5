//! `/healthz` (the process answers) and `/readyz` (the database answers and the process is not
//! shutting down), on every listener.

use crate::db;
use crate::platform::error::{ErrorBody, render};
use crate::platform::state::Platform;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use diesel::RunQueryDsl;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok` or `ready`.
    pub status: &'static str,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources (not bare routes) so a wrong method is a 405, not a 404.
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}

/// The process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process answers", body = HealthBody)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthBody { status: "ok" })
}

/// The database answers a ping within the pool's connect timeout, and no SIGTERM has come: from
/// SIGTERM on this answers 503 while the listeners keep serving for `server.drain_delay_secs`,
/// so a load balancer stops sending new requests before the process stops accepting them.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = HealthBody),
        (status = 503, description = "The database is unreachable, or the process is shutting down", body = ErrorBody)))]
pub async fn readyz(platform: web::Data<Platform>) -> HttpResponse {
    if platform.draining.load(std::sync::atomic::Ordering::Acquire) {
        return render(
            StatusCode::SERVICE_UNAVAILABLE,
            "SHUTTING_DOWN",
            "The process is shutting down",
        );
    }
    let ping = db::query(&platform.pool, |conn| {
        diesel::sql_query("SELECT 1").execute(conn)
    })
    .await;
    match ping {
        Ok(_) => HttpResponse::Ok().json(HealthBody { status: "ready" }),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            render(
                StatusCode::SERVICE_UNAVAILABLE,
                "DATABASE_UNAVAILABLE",
                "The database is unreachable",
            )
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz), components(schemas(HealthBody, ErrorBody)))]
pub struct HealthApi;

/// `switchboard healthcheck`: GET `path` from the server listening on `listen` (a wildcard
/// address is asked on loopback) with plain HTTP/1.1 over std, so the image needs no curl.
/// `Ok` when it answers 200.
pub fn probe(listen: &str, path: &str, timeout: std::time::Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};

    let mut addr: SocketAddr = listen
        .parse()
        .map_err(|_| format!("{listen:?} is not an address with a port"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: switchboard-healthcheck\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("asking {addr}: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0_u8; 256];
    // The status line is all that is needed.
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("reading from {addr}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if status == "200" {
        Ok(())
    } else if status.is_empty() {
        Err(format!("{addr}{path}: no HTTP answer"))
    } else {
        Err(format!("{addr}{path} answered {status}"))
    }
}

//! The two intake handlers and what they share: read the capped raw body, verify, parse, store
//! the delivery and enqueue its routing job in one transaction, answer 200.

use super::WebhookError;
use super::route::ROUTE_KIND;
use super::verify;
use crate::connectors::{ConnectorsState, Ctx};
use crate::db::{self, DbError};
use actix_web::http::header;
use actix_web::web::{self, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

const MAX_ID_LEN: usize = 200;

#[derive(Serialize, ToSchema)]
pub(crate) struct AcceptedBody {
    /// Always `true`: the delivery is stored (now or before).
    ok: bool,
    /// `true` when this delivery id was stored before and nothing new was written.
    duplicate: bool,
}

/// Linear: `Linear-Signature` (hex HMAC-SHA256 of the raw body), `Linear-Delivery`,
/// `webhookTimestamp` in the body within the window.
#[utoipa::path(post, path = "/webhooks/linear", tag = "webhooks",
    request_body(content = Object, description = "Linear's webhook envelope, signed", content_type = "application/json"),
    params(
        ("Linear-Signature" = String, Header, description = "Lowercase hex HMAC-SHA256 of the raw body"),
        ("Linear-Delivery" = String, Header, description = "Delivery id; a repeat stores nothing"),
    ),
    responses(
        (status = 200, description = "Stored (or already stored)", body = AcceptedBody),
        (status = 400, description = "Malformed JSON or missing delivery id", body = crate::platform::error::ErrorBody),
        (status = 401, description = "Bad or missing signature, or stale timestamp", body = crate::platform::error::ErrorBody),
        (status = 413, description = "Body over the cap", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn linear(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ConnectorsState>,
) -> Result<HttpResponse, WebhookError> {
    let ctx = &state.ctx;
    let hooks = &ctx.config.webhooks;
    let body = read_capped(&req, payload, hooks.body_limit_bytes).await?;
    let signature = header_str(&req, "linear-signature").ok_or(WebhookError::BadSignature)?;
    if !verify::signed_by_any(&hooks.linear_secrets(), &body, signature) {
        return Err(WebhookError::BadSignature);
    }
    let value = parse_object(&body)?;
    if !verify::fresh(&value, ctx.clock.now(), hooks.timestamp_tolerance_secs) {
        return Err(WebhookError::Stale);
    }
    let delivery = delivery_id(&req, "linear-delivery")?;
    let event_type = value
        .get("type")
        .and_then(Value::as_str)
        .or_else(|| header_str(&req, "linear-event"))
        .unwrap_or("unknown")
        .to_owned();
    let action = value
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_owned);
    accept(ctx, "linear", delivery, event_type, action, value).await
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex>`, `X-GitHub-Delivery`, `X-GitHub-Event`.
#[utoipa::path(post, path = "/webhooks/github", tag = "webhooks",
    request_body(content = Object, description = "GitHub's webhook payload, signed", content_type = "application/json"),
    params(
        ("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the raw body>"),
        ("X-GitHub-Delivery" = String, Header, description = "Delivery id; a repeat stores nothing"),
        ("X-GitHub-Event" = String, Header, description = "Event name, e.g. push, issues"),
    ),
    responses(
        (status = 200, description = "Stored (or already stored)", body = AcceptedBody),
        (status = 400, description = "Malformed JSON, missing delivery id or event", body = crate::platform::error::ErrorBody),
        (status = 401, description = "Bad or missing signature", body = crate::platform::error::ErrorBody),
        (status = 413, description = "Body over the cap", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn github(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ConnectorsState>,
) -> Result<HttpResponse, WebhookError> {
    let ctx = &state.ctx;
    let hooks = &ctx.config.webhooks;
    let body = read_capped(&req, payload, hooks.body_limit_bytes).await?;
    let signature = header_str(&req, "x-hub-signature-256")
        .and_then(|s| s.strip_prefix("sha256="))
        .ok_or(WebhookError::BadSignature)?;
    if !verify::signed_by_any(&hooks.github_secrets(), &body, signature) {
        return Err(WebhookError::BadSignature);
    }
    let value = parse_object(&body)?;
    let delivery = delivery_id(&req, "x-github-delivery")?;
    let event_type = header_str(&req, "x-github-event")
        .filter(|e| !e.is_empty() && e.len() <= MAX_ID_LEN)
        .ok_or(WebhookError::BadRequest("X-GitHub-Event is required"))?
        .to_owned();
    let action = value
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_owned);
    accept(ctx, "github", delivery, event_type, action, value).await
}

async fn accept(
    ctx: &Ctx,
    provider: &'static str,
    delivery: String,
    event_type: String,
    action: Option<String>,
    payload: Value,
) -> Result<HttpResponse, WebhookError> {
    let now = ctx.clock.now();
    let max_attempts = ctx.config.jobs.max_attempts;
    let stored = db::run(&ctx.pool, move |conn| {
        // One statement (the delivery and its routing job): atomic on its own, so no
        // BEGIN/COMMIT round trips; a repeated delivery inserts neither.
        let id = IntakeInsert {
            provider,
            delivery: &delivery,
            event_type: &event_type,
            action: action.as_deref(),
            payload: &payload,
            now,
            job_kind: ROUTE_KIND,
            max_attempts: max_attempts.max(1),
        }
        .get_result::<i64>(conn)
        .optional()?;
        Ok::<_, DbError>(id.is_some())
    })
    .await?;
    if stored {
        ctx.jobs_wake.notify_one();
    }
    Ok(HttpResponse::Ok().json(AcceptedBody {
        ok: true,
        duplicate: !stored,
    }))
}

/// The delivery's row and its routing job in one statement (a data-modifying CTE: the job is
/// inserted only when the delivery was new). Returns the event id, or no row for a repeat.
/// Same rows as `jobs::enqueue` with `EnqueueOpts { max_attempts, ..Default::default() }`:
/// priority 0, run now, no dedupe key, payload `{"event_id": id}`. A hand-written query with a
/// static query id, so diesel keeps it as a cached prepared statement (a `sql_query` is not).
struct IntakeInsert<'a> {
    provider: &'a str,
    delivery: &'a str,
    event_type: &'a str,
    action: Option<&'a str>,
    payload: &'a Value,
    now: chrono::DateTime<chrono::Utc>,
    job_kind: &'a str,
    max_attempts: i32,
}

const INTAKE_SQL_HEAD: &str = "WITH e AS (INSERT INTO webhook_events \
     (provider, delivery_id, event_type, action, payload, received_at) VALUES (";
// The binds are numbered in order ($1 … $6 above, $7 the job kind, $8 its attempts); `$6`
// (now) is reused for the job's times.
const INTAKE_SQL_JOB: &str = ") ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id), \
     j AS (INSERT INTO jobs (kind, payload, priority, max_attempts, run_at, created_at, updated_at) \
     SELECT ";
const INTAKE_SQL_END: &str = ", $6, $6, $6 FROM e) SELECT id FROM e";

impl QueryId for IntakeInsert<'_> {
    type QueryId = IntakeInsert<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for IntakeInsert<'_> {
    type SqlType = BigInt;
}

impl RunQueryDsl<PgConnection> for IntakeInsert<'_> {}

impl QueryFragment<Pg> for IntakeInsert<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(INTAKE_SQL_HEAD);
        out.push_bind_param::<Text, _>(self.provider)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.delivery)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.event_type)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&self.action)?;
        out.push_sql(", ");
        out.push_bind_param::<Jsonb, _>(self.payload)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(INTAKE_SQL_JOB);
        out.push_bind_param::<Text, _>(self.job_kind)?;
        out.push_sql(", jsonb_build_object('event_id', e.id), 0, ");
        out.push_bind_param::<Integer, _>(&self.max_attempts)?;
        out.push_sql(INTAKE_SQL_END);
        Ok(())
    }
}

/// The raw body, refused as soon as it passes `cap` (by its Content-Length or while reading).
async fn read_capped(
    req: &HttpRequest,
    mut payload: web::Payload,
    cap: usize,
) -> Result<BytesMut, WebhookError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(WebhookError::TooLarge);
    }
    let mut body = BytesMut::with_capacity(declared.map_or(4096, |n| n as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| WebhookError::BadRequest("The body could not be read"))?;
        if body.len() + chunk.len() > cap {
            return Err(WebhookError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn delivery_id(req: &HttpRequest, name: &'static str) -> Result<String, WebhookError> {
    header_str(req, name)
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_ID_LEN)
        .map(str::to_owned)
        .ok_or(WebhookError::BadRequest(
            "The delivery id header is missing or invalid",
        ))
}

fn parse_object(body: &[u8]) -> Result<Value, WebhookError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if holds_nul(&value) => Err(WebhookError::BadRequest(
            "The body holds a NUL character (\\u0000), which cannot be stored",
        )),
        Ok(value) if value.is_object() => Ok(value),
        _ => Err(WebhookError::BadRequest("The body is not a JSON object")),
    }
}

/// Valid JSON that PostgreSQL's `jsonb` refuses: a NUL in any string or key. Refused here as a
/// 400, so it never reaches the insert as a 500.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

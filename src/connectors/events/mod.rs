//! Events for web clients: `GET /api/events` (cursor pages) and `GET /api/events/stream` (SSE,
//! `id:` = cursor, `Last-Event-ID` resumes). Only the caller's connections' events, ever.

pub(crate) mod hub;
pub(crate) mod store;

use crate::connectors::ConnectorsState;
use crate::connectors::error::ConnectorsError;
use crate::db::ids::UserId;
use crate::db::{self, DbError};
use crate::trust::Caller;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use store::{EventView, FeedRow, Filter};
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

pub(crate) use hub::Hub;

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct ListQuery {
    /// Only this connection's events (another user's connection is a 404).
    connection: Option<String>,
    /// Only this event type (e.g. `Issue`, `push`).
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Events after this cursor, oldest first (catching up).
    after: Option<i64>,
    /// Events before this cursor, newest first (paging back); without `after` or `before`: the newest.
    before: Option<i64>,
    /// 1–200, default 50.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventList {
    events: Vec<EventView>,
    /// The cursor for the next page in the same direction (`after=` or `before=`); null at the end.
    next: Option<String>,
}

/// The caller's events: newest first, or oldest first after a cursor.
#[utoipa::path(get, path = "/api/events", tag = "events", operation_id = "list_events",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the caller's events", body = EventList),
        (status = 400, description = "Bad query", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
        (status = 404, description = "No such connection of the caller's", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn list(
    caller: Caller,
    state: web::Data<ConnectorsState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ConnectorsError> {
    let q = query.into_inner();
    if q.after.is_some() && q.before.is_some() {
        return Err(ConnectorsError::Validation(
            "give after or before, not both".into(),
        ));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ConnectorsError::Validation("limit must be 1 to 200".into()));
    }
    let owner = caller.id;
    let rows = db::run(&state.ctx.pool, move |conn| -> Result<_, ConnectorsError> {
        if let Some(id) = q.connection.as_deref()
            && !store::owns_connection(conn, &owner, id)?
        {
            return Err(ConnectorsError::ConnectionNotFound);
        }
        let filter = Filter {
            owner: &owner,
            connection: q.connection.as_deref(),
            event_type: q.event_type.as_deref(),
        };
        Ok(store::page(conn, &filter, q.after, q.before, limit)?)
    })
    .await?;
    let next = if rows.len() as i64 == limit {
        rows.last().map(|r| r.cursor.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(EventList {
            events: rows.into_iter().map(EventView::from).collect(),
            next,
        }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct StreamQuery {
    /// Resume after this cursor (what `Last-Event-ID` does; the header wins).
    after: Option<i64>,
}

/// Server-Sent Events: one message per delivery to the caller's connections, `id:` = cursor,
/// `data:` = the event as in `GET /api/events`. Without `Last-Event-ID` (or `after`) the stream
/// starts with events arriving from now on.
#[utoipa::path(get, path = "/api/events/stream", tag = "events", operation_id = "stream_events",
    security(("bearer" = [])),
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this cursor, without gaps or duplicates"),
    ),
    responses(
        (status = 200, description = "text/event-stream of the caller's events", content_type = "text/event-stream"),
        (status = 400, description = "Last-Event-ID is not a cursor", body = crate::platform::error::ErrorBody),
        (status = 401, description = "No valid bearer token", body = crate::platform::error::ErrorBody),
    ))]
pub(crate) async fn stream(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<ConnectorsState>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ConnectorsError> {
    let resume = match req.headers().get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ConnectorsError::Validation("Last-Event-ID is not a cursor".into())
                })?,
        ),
        None => query.after,
    };
    let (rx, published) = state.hub.subscribe().await?;
    let start = resume.unwrap_or(published);
    let ctx = state.ctx.clone();
    let keepalive = Duration::from_secs(ctx.config.webhooks.stream_keepalive_secs.max(1));
    let stream = Stream {
        owner: caller.id,
        pool: ctx.pool.clone(),
        rx,
        last_sent: start,
        // Rows up to `published` are not coming through `rx`: read them first.
        backlog_until: Some(published),
        pending: VecDeque::new(),
        keepalive,
        opened: false,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures_util::stream::unfold(stream, Stream::next)))
}

struct Stream {
    owner: UserId,
    pool: crate::db::DbPool,
    rx: broadcast::Receiver<Arc<FeedRow>>,
    last_sent: i64,
    backlog_until: Option<i64>,
    pending: VecDeque<FeedRow>,
    keepalive: Duration,
    opened: bool,
}

impl Stream {
    /// Reads the caller's rows above `last_sent` (up to `until`) from the database.
    async fn refill(&mut self, until: Option<i64>) -> Result<(), DbError> {
        let owner = self.owner.clone();
        let after = self.last_sent;
        let before = until.map(|u| u.saturating_add(1));
        let rows = db::run(&self.pool, move |conn| {
            let filter = Filter {
                owner: &owner,
                connection: None,
                event_type: None,
            };
            store::page(conn, &filter, Some(after), before, 1000)
        })
        .await?;
        self.pending.extend(rows);
        Ok(())
    }

    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Self)> {
        if !self.opened {
            self.opened = true;
            // Sent at once so clients (and proxies) see the stream open.
            return Some((
                Ok(Bytes::from_static(b"retry: 2000\n: connected\n\n")),
                self,
            ));
        }
        loop {
            if let Some(row) = self.pending.pop_front() {
                if row.cursor <= self.last_sent {
                    continue;
                }
                self.last_sent = row.cursor;
                let frame = frame(row);
                return Some((Ok(frame), self));
            }
            if let Some(until) = self.backlog_until.take() {
                if until > self.last_sent {
                    if let Err(err) = self.refill(Some(until)).await {
                        tracing::warn!(error = %err, "event stream backlog failed");
                        return None;
                    }
                    if self.pending.len() == 1000 {
                        // More than one batch: come back for the rest.
                        self.backlog_until = Some(until);
                    }
                }
                continue;
            }
            tokio::select! {
                received = self.rx.recv() => match received {
                    Ok(row) => {
                        if row.owner_id == self.owner && row.cursor > self.last_sent {
                            self.pending.push_back((*row).clone());
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Err(err) = self.refill(None).await {
                            tracing::warn!(error = %err, "event stream catch-up failed");
                            return None;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep(self.keepalive) => {
                    return Some((Ok(Bytes::from_static(b": keepalive\n\n")), self));
                }
            }
        }
    }
}

fn frame(row: FeedRow) -> Bytes {
    let id = row.cursor;
    let data = serde_json::to_string(&EventView::from(row)).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(format!("id: {id}\ndata: {data}\n\n"))
}

//! Authorizing a user's MCP server (spec §5.5), shaped like the connect flow: `start` discovers
//! the authorization server, picks a client (pre-registered in config, then a Client ID
//! Metadata Document, then dynamic registration kept per issuer), stores a single-use state with
//! the sealed PKCE verifier and returns the authorize URL; `finish` claims the state on our
//! callback, checks `iss`, exchanges the code and parks the tokens as a pending grant; `complete`
//! redeems that grant for the flow's owner only. `bearer` hands out a fresh access token,
//! refreshing it under a lease (one refresh at a time across processes). No actix types here.

use super::auth::{self, ClientAuth, Net, ServerMetadata, TokenFailure};
use super::error::McpError;
use super::models::{AuthFlowRow, CredentialRow, OAuthClientRow, ServerRow, ServerView};
use super::{service, store};
use crate::connectors::config::valid_scope;
use crate::connectors::connect::{self, Authorized, CallbackFailure};
use crate::connectors::error::ConnectorsError;
use crate::connectors::pending::{self, Kind, Taken};
use crate::connectors::vault::{Field, Plain};
use crate::connectors::{Ctx, models, oauth};
use crate::crypto::hmac::constant_time_eq;
use crate::db;
use crate::db::ids::UserId;
use crate::platform::clock::expires_after;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

const MAX_SCOPES: usize = 32;

/// `<CONNECTORS_URL>/api/mcp-servers/callback`: where authorization servers send the browser.
pub fn redirect_uri(ctx: &Ctx) -> String {
    format!("{}/api/mcp-servers/callback", public_url(ctx))
}

/// `<CONNECTORS_URL>/mcp/client-metadata.json`: our Client ID Metadata Document (and client id).
pub fn metadata_url(ctx: &Ctx) -> String {
    format!("{}/mcp/client-metadata.json", public_url(ctx))
}

fn public_url(ctx: &Ctx) -> &str {
    ctx.config.connectors.public_url.trim_end_matches('/')
}

/// Our Client ID Metadata Document: its `client_id` is its own URL.
pub fn client_metadata(ctx: &Ctx) -> Value {
    json!({
        "client_id": metadata_url(ctx),
        "client_name": "switchboard",
        "redirect_uris": [redirect_uri(ctx)],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "web",
    })
}

/// A CIMD client id must be an https URL a server can fetch.
fn cimd_usable(ctx: &Ctx) -> bool {
    public_url(ctx).starts_with("https://")
}

pub(crate) fn net(ctx: &Ctx) -> Net<'_> {
    Net {
        http: ctx.mcp.http(),
        policy: service::policy(ctx),
        limits: ctx.mcp.limits(),
    }
}

/// The client configured for this issuer. Its method is the configured one (default: HTTP
/// Basic with a secret), never guessed from metadata: the code exchange and every refresh,
/// which have no metadata at hand, must authenticate the same way the flow started.
fn preregistered(ctx: &Ctx, issuer: &str) -> Option<ClientAuth> {
    let c = ctx
        .config
        .connectors
        .mcp
        .clients
        .iter()
        .find(|c| c.issuer == issuer)?;
    let secret = c
        .client_secret
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| Plain::new(s.expose()));
    let method = match (&secret, c.token_endpoint_auth_method.as_deref()) {
        (None, _) => "none",
        (Some(_), Some("client_secret_post")) => "client_secret_post",
        (Some(_), _) => "client_secret_basic",
    };
    Some(ClientAuth {
        client_id: c.client_id.clone(),
        secret,
        method: method.to_owned(),
    })
}

/// The row a client secret is sealed to (`admin::row_key` builds the same in SQL).
fn secret_row(issuer: &str, redirect_uri: &str) -> String {
    format!("{issuer} {redirect_uri}")
}

fn open_client(ctx: &Ctx, row: &OAuthClientRow) -> Result<ClientAuth, McpError> {
    Ok(ClientAuth {
        client_id: row.client_id.clone(),
        secret: row
            .client_secret
            .as_ref()
            .map(|s| {
                ctx.vault.open(
                    Field::McpClientSecret,
                    &secret_row(&row.issuer, &row.redirect_uri),
                    s,
                )
            })
            .transpose()?,
        method: row.token_endpoint_auth_method.clone(),
    })
}

/// The spec's order: pre-registered, then CIMD (advertised, and our URL is https), then the
/// dynamic registration we hold for this issuer, then a new one.
async fn client_for(ctx: &Arc<Ctx>, server: &ServerMetadata) -> Result<ClientAuth, McpError> {
    if let Some(c) = preregistered(ctx, &server.issuer) {
        return Ok(c);
    }
    if server.cimd_supported && cimd_usable(ctx) {
        return Ok(ClientAuth {
            client_id: metadata_url(ctx),
            secret: None,
            method: "none".to_owned(),
        });
    }
    let (issuer, redirect) = (server.issuer.clone(), redirect_uri(ctx));
    let held = db::query(&ctx.pool, move |c| {
        store::oauth_client(c, &issuer, &redirect)
    })
    .await?;
    if let Some(row) = held {
        return open_client(ctx, &row);
    }
    let redirect = redirect_uri(ctx);
    let reg = auth::register(&net(ctx), server, &redirect, false).await?;
    let row = OAuthClientRow {
        issuer: server.issuer.clone(),
        redirect_uri: redirect.clone(),
        client_id: reg.client_id.clone(),
        client_secret: reg
            .secret
            .as_ref()
            .map(|s| {
                ctx.vault.seal(
                    Field::McpClientSecret,
                    &secret_row(&server.issuer, &redirect),
                    s,
                )
            })
            .transpose()?,
        token_endpoint_auth_method: reg.method.clone(),
        created_at: ctx.clock.now(),
    };
    let kept = db::query(&ctx.pool, move |c| store::save_oauth_client(c, &row)).await?;
    tracing::info!(issuer = %server.issuer, "registered a client at an MCP authorization server");
    open_client(ctx, &kept)
}

/// The client a flow or credential names, for the token endpoint.
async fn client_by_id(
    ctx: &Arc<Ctx>,
    issuer: &str,
    client_id: &str,
) -> Result<ClientAuth, McpError> {
    if let Some(c) = preregistered(ctx, issuer).filter(|c| c.client_id == client_id) {
        return Ok(c);
    }
    if client_id == metadata_url(ctx) {
        return Ok(ClientAuth {
            client_id: client_id.to_owned(),
            secret: None,
            method: "none".to_owned(),
        });
    }
    let (i, redirect) = (issuer.to_owned(), redirect_uri(ctx));
    let held = db::query(&ctx.pool, move |c| store::oauth_client(c, &i, &redirect)).await?;
    match held {
        Some(row) if row.client_id == client_id => open_client(ctx, &row),
        _ => Err(McpError::Authorization(
            "the client registration this authorization used is gone".into(),
        )),
    }
}

fn check_scopes(asked: Option<Vec<String>>) -> Result<Vec<String>, McpError> {
    let asked = asked.unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for s in asked {
        let s = s.trim().to_owned();
        if !valid_scope(&s) {
            return Err(McpError::Validation(
                "scopes must be non-empty scope names without spaces or commas".into(),
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.len() > MAX_SCOPES {
        return Err(McpError::Validation(format!("at most {MAX_SCOPES} scopes")));
    }
    Ok(out)
}

async fn load(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    id: &str,
) -> Result<(ServerRow, Option<CredentialRow>), McpError> {
    let (owner, id) = (owner.to_owned(), id.to_owned());
    let (row, cred) = db::query(&ctx.pool, move |c| {
        let row = store::find_for_owner(c, &id, &owner)?;
        let cred = match &row {
            Some(_) => store::credential(c, &id)?,
            None => None,
        };
        Ok((row, cred))
    })
    .await
    .map_err(McpError::from)?;
    Ok((row.ok_or(McpError::ServerNotFound)?, cred))
}

/// Starts authorizing the caller's server; returns the URL to send their browser to. Scopes:
/// the challenge's (or the server's `scopes_supported`), plus those already held, those a 403
/// asked for (step-up) and those the client names.
pub async fn start(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    server_id: &str,
    scopes: Option<Vec<String>>,
    redirect_to: Option<String>,
) -> Result<String, McpError> {
    let asked = check_scopes(scopes)?;
    let redirect_to = redirect_to
        .filter(|r| !r.trim().is_empty())
        .map(|r| connect::check_redirect(ctx, r.trim()))
        .transpose()?;
    let (row, cred) = load(ctx, owner, server_id).await?;
    let url = service::checked_url(ctx, &row.url)?;
    let net = net(ctx);
    let challenge = auth::challenge(&net, &url).await?;
    let found = auth::discover(&net, &url, challenge.as_ref()).await?;
    let (held, wanted): (Vec<String>, Vec<String>) = cred
        .as_ref()
        .map(|c| {
            (
                c.scope_list(),
                c.wanted_scopes.iter().flatten().cloned().collect(),
            )
        })
        .unwrap_or_default();
    let scopes = auth::union(&[&found.scopes, &held, &wanted, &asked]);
    let client = client_for(ctx, &found.server).await?;

    let state = oauth::new_state();
    let hash = oauth::state_hash(state.expose());
    let verifier = oauth::new_verifier();
    let now = ctx.clock.now();
    let ttl = i64::try_from(ctx.config.connectors.oauth_flow_ttl_secs).unwrap_or(600);
    let flow = AuthFlowRow {
        code_verifier: ctx.vault.seal(Field::McpCodeVerifier, &hash, &verifier)?,
        state_hash: hash,
        owner_id: owner.to_owned(),
        server_id: row.id.clone(),
        issuer: found.server.issuer.clone(),
        token_endpoint: found.server.token_endpoint.to_string(),
        client_id: client.client_id.clone(),
        resource: found.resource.clone(),
        scopes: models::scope_column(&scopes),
        redirect_to,
        created_at: now,
        expires_at: now + Duration::seconds(ttl),
        consumed_at: None,
    };
    db::query(&ctx.pool, move |c| store::insert_flow(c, &flow)).await?;
    tracing::info!(server_id = %row.id, issuer = %found.server.issuer, "MCP authorization started");
    Ok(auth::authorize_url(
        &found.server,
        &client.client_id,
        &redirect_uri(ctx),
        &state,
        &verifier,
        &scopes,
        &found.resource,
    ))
}

/// The authorization server's redirect back to us.
#[derive(Debug, Default)]
pub struct McpCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    /// RFC 9207: when present it must equal the flow's issuer, byte for byte.
    pub iss: Option<String>,
}

/// What a pending MCP grant holds (sealed as one value).
#[derive(Serialize, Deserialize)]
struct McpGrant {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
    issuer: String,
    token_endpoint: String,
    client_id: String,
    resource: String,
}

fn grant_error() -> ConnectorsError {
    ConnectorsError::Vault(crate::connectors::vault::VaultError::Open(
        crate::crypto::aead::AeadError::Invalid,
    ))
}

pub async fn finish(ctx: &Arc<Ctx>, callback: McpCallback) -> Result<Authorized, CallbackFailure> {
    let fail = |redirect_to: Option<String>, error| CallbackFailure { redirect_to, error };
    let state = callback
        .state
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| fail(None, ConnectorsError::InvalidState))?;
    let hash = oauth::state_hash(&state);
    let now = ctx.clock.now();
    let claim_hash = hash.clone();
    let claimed = db::query(&ctx.pool, move |c| -> diesel::QueryResult<_> {
        match store::claim_flow(c, &claim_hash, now)? {
            Some(flow) => Ok(Ok(flow)),
            None => Ok(Err(store::find_flow(c, &claim_hash)?)),
        }
    })
    .await
    .map_err(|e| fail(None, e.into()))?;
    let flow = match claimed {
        Ok(flow) => flow,
        Err(Some(seen)) if seen.consumed_at.is_some() => {
            return Err(fail(seen.redirect_to, ConnectorsError::StateUsed));
        }
        Err(_) => return Err(fail(None, ConnectorsError::InvalidState)),
    };
    let back = flow.redirect_to.clone();
    if flow.expires_at <= now {
        return Err(fail(back, ConnectorsError::StateExpired));
    }
    // Checked before anything else the callback says, error responses included (RFC 9207).
    if let Some(iss) = &callback.iss
        && !constant_time_eq(iss.as_bytes(), flow.issuer.as_bytes())
    {
        return Err(fail(
            back,
            ConnectorsError::Validation(
                "the callback's iss is not the authorization server the flow started with"
                    .to_owned(),
            ),
        ));
    }
    if let Some(error) = callback.error {
        return Err(fail(
            back,
            ConnectorsError::AuthorizationDenied(oauth::sanitize_code(&error)),
        ));
    }
    let Some(code) = callback.code.filter(|c| !c.is_empty()) else {
        return Err(fail(
            back,
            ConnectorsError::Validation("the callback carries no code".to_owned()),
        ));
    };
    let verifier = ctx
        .vault
        .open(
            Field::McpCodeVerifier,
            &flow.state_hash,
            &flow.code_verifier,
        )
        .map_err(|e| fail(back.clone(), e.into()))?;
    let as_mcp = |e: McpError| {
        tracing::warn!(server_id = %flow.server_id, error = %e, "MCP code exchange failed");
        match e {
            McpError::UrlNotAllowed(_) | McpError::Authorization(_) => {
                ConnectorsError::ProviderRejected("authorization_failed".to_owned())
            }
            _ => ConnectorsError::ProviderUnavailable,
        }
    };
    let client = client_by_id(ctx, &flow.issuer, &flow.client_id)
        .await
        .map_err(|e| fail(back.clone(), as_mcp(e)))?;
    let net = net(ctx);
    let endpoint = net
        .checked(&flow.token_endpoint)
        .map_err(|e| fail(back.clone(), as_mcp(e)))?;
    let redirect = redirect_uri(ctx);
    let tokens = auth::token(
        &net,
        &endpoint,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
            ("code_verifier", verifier.expose()),
            ("resource", &flow.resource),
        ],
    )
    .await
    .map_err(|e| match e {
        TokenFailure::InvalidGrant => fail(
            back.clone(),
            ConnectorsError::ProviderRejected("invalid_grant".to_owned()),
        ),
        TokenFailure::Other(e) => fail(back.clone(), as_mcp(e)),
    })?;
    let requested: Vec<String> = flow.scopes.iter().flatten().cloned().collect();
    let grant = McpGrant {
        access_token: tokens.access_token.expose().to_owned(),
        refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose().to_owned()),
        expires_at: tokens.expires_in.map(|s| expires_after(now, s)),
        scopes: tokens
            .scope
            .as_deref()
            .map(auth::split_scopes)
            .unwrap_or(requested),
        issuer: flow.issuer.clone(),
        token_endpoint: flow.token_endpoint.clone(),
        client_id: flow.client_id.clone(),
        resource: flow.resource.clone(),
    };
    let payload = serde_json::to_string(&grant)
        .map(Plain::new)
        .map_err(|_| fail(back.clone(), grant_error()))?;
    let (ctx2, owner, sid) = (ctx.clone(), flow.owner_id.clone(), flow.server_id.clone());
    let issued = db::run(&ctx.pool, move |c| {
        pending::issue(
            c,
            &ctx2.vault,
            &owner,
            Kind::McpServer,
            &sid,
            &payload,
            ctx2.clock.now(),
        )
    })
    .await
    .map_err(|e| fail(back.clone(), e))?;
    tracing::info!(server_id = %flow.server_id, "MCP authorization finished; waiting for its owner");
    Ok(Authorized {
        redirect_to: back,
        code: issued.code,
        expires_at: issued.expires_at,
    })
}

/// Redeems the callback's one-time code for `caller`: the credential is stored only if `caller`
/// started the flow (and still owns the server). Anyone else gets the same 404 as an unknown
/// code and the grant is destroyed, so a link that reached the wrong browser attaches nothing.
pub async fn complete(ctx: &Arc<Ctx>, caller: &UserId, code: &str) -> Result<ServerView, McpError> {
    let (ctx2, caller2, code) = (ctx.clone(), caller.to_owned(), code.to_owned());
    let result = db::run(&ctx.pool, move |c| {
        diesel::Connection::transaction::<_, McpError, _>(c, |c| {
            let now = ctx2.clock.now();
            match pending::take(c, &ctx2.vault, &caller2, Kind::McpServer, &code, now)? {
                Taken::Granted { subject, payload } => {
                    let grant: McpGrant =
                        serde_json::from_str(payload.expose()).map_err(|_| grant_error())?;
                    let Some(row) = store::find_for_owner(c, &subject, &caller2)? else {
                        return Ok(Err(McpError::ServerNotFound));
                    };
                    let seal = |f, v: &str| ctx2.vault.seal(f, &row.id, &Plain::new(v));
                    let cred = CredentialRow {
                        server_id: row.id.clone(),
                        issuer: Some(grant.issuer.clone()),
                        access_token: seal(Field::McpAccessToken, &grant.access_token)?,
                        refresh_token: grant
                            .refresh_token
                            .as_deref()
                            .map(|r| seal(Field::McpRefreshToken, r))
                            .transpose()?,
                        expires_at: grant.expires_at,
                        scopes: models::scope_column(&grant.scopes),
                        created_at: now,
                        updated_at: now,
                        token_endpoint: Some(grant.token_endpoint),
                        client_id: Some(grant.client_id),
                        resource: Some(grant.resource),
                        wanted_scopes: Vec::new(),
                        refresh_claim: None,
                        refresh_claim_expires_at: None,
                    };
                    store::put_credential(c, &cred)?;
                    let mut row = row;
                    row.needs_authorization = false;
                    Ok(Ok(row))
                }
                Taken::NotFound => Ok(Err(ConnectorsError::GrantNotFound.into())),
                Taken::Expired => Ok(Err(ConnectorsError::GrantExpired.into())),
                // Committed: the deletion is what protects the victim.
                Taken::Foreign { subject, .. } => {
                    tracing::warn!(server_id = %subject,
                        "an MCP authorization code was presented by someone other than the \
                         flow's owner; the grant is destroyed");
                    Ok(Err(ConnectorsError::GrantNotFound.into()))
                }
            }
        })
    })
    .await?;
    let row = result?;
    ctx.mcp.forget(&row.id);
    tracing::info!(server_id = %row.id, "MCP server authorized");
    Ok(ServerView::new(row, true))
}

pub(super) fn margin(ctx: &Ctx) -> Duration {
    Duration::seconds(i64::try_from(ctx.config.connectors.refresh.margin_secs).unwrap_or(900))
}

/// A fresh access token from a stored credential: as stored while it has time left, else
/// refreshed (one refresher at a time; the others wait for its result).
pub async fn bearer(ctx: &Arc<Ctx>, cred: CredentialRow) -> Result<Plain, McpError> {
    let now = ctx.clock.now();
    let refreshable = cred.refresh_token.is_some() && cred.token_endpoint.is_some();
    let fresh = cred.expires_at.is_none_or(|at| at - now > margin(ctx));
    if fresh || !refreshable {
        if cred.expires_at.is_some_and(|at| at <= now) {
            return Err(McpError::NeedsAuthorization);
        }
        return Ok(ctx
            .vault
            .open(Field::McpAccessToken, &cred.server_id, &cred.access_token)?);
    }
    refresh(ctx, cred).await
}

const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(100);
const WAIT_ROUNDS: u32 = 100;

async fn refresh(ctx: &Arc<Ctx>, cred: CredentialRow) -> Result<Plain, McpError> {
    let sid = cred.server_id.clone();
    let seen = cred.access_token.clone();
    let claim = crate::crypto::random::id();
    let now = ctx.clock.now();
    let lease = ctx.mcp.limits().timeout * 2 + std::time::Duration::from_secs(10);
    let until = now + Duration::from_std(lease).unwrap_or_else(|_| Duration::seconds(70));
    let (s, k, c2) = (sid.clone(), seen.clone(), claim.clone());
    let claimed = db::query(&ctx.pool, move |c| {
        store::claim_refresh(c, &s, &k, &c2, now, until)
    })
    .await?;
    if !claimed {
        return wait_for_other(ctx, &sid, &seen).await;
    }
    let result = call_refresh(ctx, &cred).await;
    let now = ctx.clock.now();
    match result {
        Ok(tokens) => {
            let access = ctx
                .vault
                .seal(Field::McpAccessToken, &sid, &tokens.access_token)?;
            // No new refresh token: the stored one stays (see `store::finish_refresh`).
            let refresh = match &tokens.refresh_token {
                Some(r) => Some(ctx.vault.seal(Field::McpRefreshToken, &sid, r)?),
                None => None,
            };
            let expires_at = tokens.expires_in.map(|s| expires_after(now, s));
            let (s, c2) = (sid.clone(), claim.clone());
            let written = db::query(&ctx.pool, move |c| {
                store::finish_refresh(c, &s, &c2, &access, refresh.as_deref(), expires_at, now)
            })
            .await?;
            if !written {
                tracing::warn!(server_id = %sid, "an MCP refresh finished after its lease ran out");
            }
            tracing::info!(server_id = %sid, "MCP access token refreshed");
            Ok(tokens.access_token)
        }
        Err(TokenFailure::InvalidGrant) => {
            let s = sid.clone();
            db::query(&ctx.pool, move |c| store::drop_credential(c, &s, now)).await?;
            ctx.mcp.forget(&sid);
            tracing::info!(server_id = %sid, "MCP refresh token refused; authorization needed");
            Err(McpError::NeedsAuthorization)
        }
        Err(TokenFailure::Other(e)) => {
            let (s, c2) = (sid.clone(), claim.clone());
            let _ = db::query(&ctx.pool, move |c| store::release_refresh(c, &s, &c2)).await;
            // Still valid for a while: use it; the next call tries again.
            if cred.expires_at.is_some_and(|at| at > now) {
                return Ok(ctx
                    .vault
                    .open(Field::McpAccessToken, &sid, &cred.access_token)?);
            }
            Err(e)
        }
    }
}

async fn call_refresh(ctx: &Arc<Ctx>, cred: &CredentialRow) -> Result<auth::Tokens, TokenFailure> {
    let (Some(sealed), Some(endpoint), Some(issuer), Some(client_id)) = (
        &cred.refresh_token,
        &cred.token_endpoint,
        &cred.issuer,
        &cred.client_id,
    ) else {
        return Err(TokenFailure::InvalidGrant);
    };
    let refresh = ctx
        .vault
        .open(Field::McpRefreshToken, &cred.server_id, sealed)
        .map_err(McpError::from)?;
    let client = client_by_id(ctx, issuer, client_id).await?;
    let net = net(ctx);
    let endpoint = net.checked(endpoint)?;
    let mut grant = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.expose()),
    ];
    if let Some(resource) = &cred.resource {
        grant.push(("resource", resource));
    }
    auth::token(&net, &endpoint, &client, &grant).await
}

/// Someone else holds the lease: wait for the row to change, then use its token.
async fn wait_for_other(ctx: &Arc<Ctx>, sid: &str, seen: &str) -> Result<Plain, McpError> {
    for _ in 0..WAIT_ROUNDS {
        tokio::time::sleep(WAIT_POLL).await;
        let s = sid.to_owned();
        let row = db::query(&ctx.pool, move |c| store::credential(c, &s)).await?;
        let Some(row) = row else {
            return Err(McpError::NeedsAuthorization);
        };
        if row.access_token != seen {
            return Ok(ctx
                .vault
                .open(Field::McpAccessToken, sid, &row.access_token)?);
        }
        if row.refresh_claim.is_none()
            || row
                .refresh_claim_expires_at
                .is_some_and(|at| at <= ctx.clock.now())
        {
            // The other refresher gave up: try ourselves.
            return Box::pin(refresh(ctx, row)).await;
        }
    }
    Err(McpError::Timeout)
}

/// Remembers scopes a server asked for in a 403 `insufficient_scope`, for the next `start`.
pub async fn note_step_up(ctx: &Arc<Ctx>, server_id: &str, scope: &str) {
    let scopes = auth::split_scopes(scope);
    if scopes.is_empty() {
        return;
    }
    let sid = server_id.to_owned();
    if let Err(e) = db::query(&ctx.pool, move |c| store::want_scopes(c, &sid, &scopes)).await {
        tracing::warn!(error = %e, server_id, "recording step-up scopes failed");
    }
}

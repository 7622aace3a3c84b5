//! The connect flow: `start` stores a single-use state with a sealed PKCE verifier and returns
//! the provider's authorize URL; `finish` claims the state on the provider's callback,
//! exchanges the code, names the account and parks the result as a pending grant; `complete`
//! redeems that grant's one-time code for the flow's owner (their bearer token) and stores (or
//! updates) the connection. Nothing is attached to anyone on the callback alone: the browser
//! that reaches it may not be the owner's (see `pending`).

use crate::connectors::config::valid_scope;
use crate::connectors::error::ConnectorsError;
use crate::connectors::models::{ConnectionForm, ConnectionId, ConnectionRow, FlowRow, Status};
use crate::connectors::oauth;
use crate::connectors::pending::{self, Kind, Taken};
use crate::connectors::providers::{self, Provider};
use crate::connectors::store;
use crate::connectors::vault::{Field, Plain};
use crate::connectors::{Ctx, models};
use crate::db::ids::UserId;
use crate::db::{self, DbError};
use crate::platform::clock::expires_after;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use url::Url;

/// Most scopes one authorize request may name.
const MAX_SCOPES: usize = 32;

/// `<CONNECTORS_URL>/api/connections/<provider>/callback`: must be registered at the provider.
pub fn redirect_uri(ctx: &Ctx, provider: &Provider) -> String {
    format!(
        "{}/api/connections/{}/callback",
        ctx.config.connectors.public_url.trim_end_matches('/'),
        provider.id
    )
}

/// `redirect_to` must be on an origin of `CORS_ORIGINS` (exact origin, any path).
pub fn check_redirect(ctx: &Ctx, value: &str) -> Result<String, ConnectorsError> {
    if value.len() > crate::platform::redirect::MAX_TARGET_LEN {
        return Err(ConnectorsError::InvalidRedirect);
    }
    let url = Url::parse(value).map_err(|_| ConnectorsError::InvalidRedirect)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConnectorsError::InvalidRedirect);
    }
    let origin = url.origin().ascii_serialization();
    let allowed = ctx
        .config
        .server
        .cors_origins
        .iter()
        .any(|o| o.trim_end_matches('/') == origin);
    if allowed {
        Ok(url.into())
    } else {
        Err(ConnectorsError::InvalidRedirect)
    }
}

fn check_scopes(
    provider: &Provider,
    requested: Option<Vec<String>>,
) -> Result<Vec<String>, ConnectorsError> {
    let Some(requested) = requested else {
        return Ok(provider.default_scopes.clone());
    };
    let mut scopes: Vec<String> = Vec::new();
    for scope in requested {
        let scope = scope.trim().to_owned();
        if !valid_scope(&scope) {
            return Err(ConnectorsError::Validation(
                "scopes must be non-empty scope names without spaces or commas".to_owned(),
            ));
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Ok(provider.default_scopes.clone());
    }
    if scopes.len() > MAX_SCOPES {
        return Err(ConnectorsError::Validation(format!(
            "at most {MAX_SCOPES} scopes"
        )));
    }
    if provider.actor == Some("app") && scopes.iter().any(|s| s == "admin") {
        return Err(ConnectorsError::Validation(
            "Linear does not grant the admin scope to actor=app".to_owned(),
        ));
    }
    Ok(scopes)
}

/// Starts connecting `provider` for `owner`; returns the authorize URL.
pub async fn start(
    ctx: &Arc<Ctx>,
    owner: &UserId,
    provider_id: &str,
    scopes: Option<Vec<String>>,
    redirect_to: Option<String>,
) -> Result<String, ConnectorsError> {
    let provider = ctx
        .registry
        .get(provider_id)
        .ok_or(ConnectorsError::ProviderNotFound)?;
    let scopes = check_scopes(&provider, scopes)?;
    let redirect_to = redirect_to
        .filter(|r| !r.trim().is_empty())
        .map(|r| check_redirect(ctx, r.trim()))
        .transpose()?;
    let state = oauth::new_state();
    let hash = oauth::state_hash(state.expose());
    let verifier = oauth::new_verifier();
    let now = ctx.clock.now();
    let ttl = i64::try_from(ctx.config.connectors.oauth_flow_ttl_secs).unwrap_or(600);
    let flow = FlowRow {
        code_verifier: ctx.vault.seal(Field::CodeVerifier, &hash, &verifier)?,
        state_hash: hash,
        owner_id: owner.to_owned(),
        provider: provider.id.to_owned(),
        redirect_to,
        scopes: models::scope_column(&scopes),
        created_at: now,
        expires_at: now + Duration::seconds(ttl),
        consumed_at: None,
    };
    db::query(&ctx.pool, move |c| store::insert_flow(c, &flow)).await?;
    let url = oauth::authorize_url(
        &provider,
        &redirect_uri(ctx, &provider),
        &scopes,
        &state,
        &verifier,
    )
    .map_err(|_| ConnectorsError::ProviderUnavailable)?;
    Ok(url)
}

/// The provider's redirect back to us.
#[derive(Debug, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// A failed callback, and where (if anywhere) its owner asked to be sent back.
#[derive(Debug)]
pub struct CallbackFailure {
    pub redirect_to: Option<String>,
    pub error: ConnectorsError,
}

/// A finished authorization, waiting for its owner: `code` redeems it once, before
/// `expires_at`, with the owner's bearer token.
#[derive(Debug)]
pub struct Authorized {
    pub redirect_to: Option<String>,
    pub code: Plain,
    pub expires_at: DateTime<Utc>,
}

/// What a pending connection grant holds (sealed as one value).
#[derive(Serialize, Deserialize)]
struct ConnectionGrant {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
    account_id: String,
    org_id: Option<String>,
    display_name: String,
    details: serde_json::Value,
}

impl ConnectionGrant {
    fn seal_text(&self) -> Result<Plain, ConnectorsError> {
        serde_json::to_string(self)
            .map(Plain::new)
            .map_err(|e| ConnectorsError::Validation(format!("cannot encode the grant: {e}")))
    }

    fn open_text(text: &Plain) -> Result<Self, ConnectorsError> {
        // Only ever written by `seal_text` under our key: unreadable means a bug or a bad key.
        serde_json::from_str(text.expose()).map_err(|_| {
            ConnectorsError::Vault(crate::connectors::vault::VaultError::Open(
                crate::crypto::aead::AeadError::Invalid,
            ))
        })
    }
}

pub async fn finish(
    ctx: &Arc<Ctx>,
    provider_id: &str,
    callback: Callback,
) -> Result<Authorized, CallbackFailure> {
    let fail = |redirect_to: Option<String>, error| CallbackFailure { redirect_to, error };
    let provider = ctx
        .registry
        .get(provider_id)
        .ok_or_else(|| fail(None, ConnectorsError::ProviderNotFound))?;
    let state = callback
        .state
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| fail(None, ConnectorsError::InvalidState))?;
    let hash = oauth::state_hash(&state);
    let now = ctx.clock.now();

    let (claim_hash, pid) = (hash.clone(), provider.id);
    let claimed = db::run(&ctx.pool, move |c| -> Result<_, DbError> {
        match store::claim_flow(c, &claim_hash, pid, now)? {
            Some(flow) => Ok(Ok(flow)),
            None => Ok(Err(store::find_flow(c, &claim_hash)?)),
        }
    })
    .await
    .map_err(|e| fail(None, e.into()))?;
    let flow = match claimed {
        Ok(flow) => flow,
        Err(Some(seen)) if seen.provider == provider.id && seen.consumed_at.is_some() => {
            return Err(fail(seen.redirect_to, ConnectorsError::StateUsed));
        }
        Err(_) => return Err(fail(None, ConnectorsError::InvalidState)),
    };
    let back = flow.redirect_to.clone();
    if flow.expires_at <= now {
        return Err(fail(back, ConnectorsError::StateExpired));
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
        .open(Field::CodeVerifier, &flow.state_hash, &flow.code_verifier)
        .map_err(|e| fail(back.clone(), e.into()))?;
    let tokens = oauth::exchange_code(
        &ctx.http,
        &provider,
        &code,
        &redirect_uri(ctx, &provider),
        &verifier,
    )
    .await
    .map_err(|e| {
        tracing::warn!(provider = provider.id, error = %e, "code exchange failed");
        fail(back.clone(), ConnectorsError::from(e))
    })?;
    let identity = providers::identity(&ctx.http, &provider, &tokens.access_token)
        .await
        .map_err(|e| {
            tracing::warn!(provider = provider.id, error = %e, "naming the account failed");
            fail(back.clone(), ConnectorsError::from(e))
        })?;

    let requested: Vec<String> = flow.scopes.iter().flatten().cloned().collect();
    let grant = ConnectionGrant {
        access_token: tokens.access_token.expose().to_owned(),
        refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose().to_owned()),
        // Provider input: clamped, never an overflowing `now + delta`.
        expires_at: tokens
            .expires_in
            .map(|s| expires_after(now, u64::try_from(s).unwrap_or(0))),
        scopes: tokens.scopes.clone().unwrap_or(requested),
        account_id: identity.account_id,
        org_id: identity.org_id,
        display_name: identity.display_name,
        details: identity.details,
    };
    let payload = grant.seal_text().map_err(|e| fail(back.clone(), e))?;
    let (ctx2, owner, pid) = (ctx.clone(), flow.owner_id.clone(), provider.id);
    let issued = db::run(&ctx.pool, move |c| {
        pending::issue(
            c,
            &ctx2.vault,
            &owner,
            Kind::Connection,
            pid,
            &payload,
            ctx2.clock.now(),
        )
    })
    .await
    .map_err(|e| fail(back.clone(), e))?;
    tracing::info!(
        provider = provider.id,
        "authorization finished; waiting for its owner"
    );
    Ok(Authorized {
        redirect_to: back,
        code: issued.code,
        expires_at: issued.expires_at,
    })
}

/// Redeems the callback's one-time code for `caller`: the connection is stored only if
/// `caller` started the flow. Anyone else gets `GrantNotFound` (the same answer as an unknown
/// code), the grant is destroyed and its tokens are withdrawn at the provider, so a link that
/// reached the wrong browser attaches nothing to anyone.
pub async fn complete(
    ctx: &Arc<Ctx>,
    caller: &UserId,
    code: &str,
) -> Result<ConnectionRow, ConnectorsError> {
    let (ctx2, caller2, code) = (ctx.clone(), caller.to_owned(), code.to_owned());
    let result = db::run(&ctx.pool, move |c| {
        diesel::Connection::transaction::<_, ConnectorsError, _>(c, |c| {
            let now = ctx2.clock.now();
            match pending::take(c, &ctx2.vault, &caller2, Kind::Connection, &code, now)? {
                Taken::Granted { subject, payload } => {
                    let grant = ConnectionGrant::open_text(&payload)?;
                    let provider = ctx2
                        .registry
                        .get(&subject)
                        .ok_or(ConnectorsError::ProviderNotFound)?;
                    save_in(c, &ctx2, &caller2, &provider, grant).map(Ok)
                }
                Taken::NotFound => Ok(Err((ConnectorsError::GrantNotFound, None))),
                Taken::Expired => Ok(Err((ConnectorsError::GrantExpired, None))),
                // Committed: the deletion is what protects the victim.
                Taken::Foreign { subject, payload } => Ok(Err((
                    ConnectorsError::GrantNotFound,
                    Some((subject, payload)),
                ))),
            }
        })
    })
    .await?;
    match result {
        Ok(connection) => {
            tracing::info!(connection_id = %connection.id, provider = %connection.provider,
                "account connected");
            Ok(connection)
        }
        Err((error, foreign)) => {
            if let Some((subject, payload)) = foreign {
                tracing::warn!(provider = %subject,
                    "a connect code was presented by someone other than the flow's owner; \
                     the grant is destroyed");
                withdraw(ctx, &subject, &payload).await;
            }
            Err(error)
        }
    }
}

/// Best effort: revokes a refused grant's tokens at the provider.
async fn withdraw(ctx: &Arc<Ctx>, subject: &str, payload: &Plain) {
    let (Some(provider), Ok(grant)) = (
        ctx.registry.get(subject),
        ConnectionGrant::open_text(payload),
    ) else {
        return;
    };
    let access = Plain::new(grant.access_token);
    let refresh = grant.refresh_token.map(Plain::new);
    if let Err(err) = providers::revoke(&ctx.http, &provider, &access, refresh.as_ref()).await {
        tracing::warn!(provider = provider.id, error = %err,
            "could not revoke a refused grant at the provider");
    }
}

/// Inserts the connection, or updates the owner's existing connection to the same account, on
/// the caller's connection (inside its transaction). Two racing first connects of one account:
/// the loser's insert hits the unique key and it retries as an update (each try in a savepoint).
fn save_in(
    c: &mut diesel::PgConnection,
    ctx: &Ctx,
    owner: &UserId,
    provider: &Provider,
    grant: ConnectionGrant,
) -> Result<ConnectionRow, ConnectorsError> {
    let access = Plain::new(grant.access_token.clone());
    let refresh = grant.refresh_token.clone().map(Plain::new);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = diesel::Connection::transaction::<_, ConnectorsError, _>(c, |c| {
            let now = ctx.clock.now();
            let existing = store::lock_by_account(c, owner, provider.id, &grant.account_id)?;
            let id = existing
                .as_ref()
                .map(|r| r.id.clone())
                .unwrap_or_else(ConnectionId::generate);
            let form = ConnectionForm {
                access_token: ctx.vault.seal(Field::AccessToken, id.as_str(), &access)?,
                refresh_token: refresh
                    .as_ref()
                    .map(|r| ctx.vault.seal(Field::RefreshToken, id.as_str(), r))
                    .transpose()?,
                id: id.clone(),
                owner_id: owner.to_owned(),
                provider: provider.id.to_owned(),
                external_account_id: grant.account_id.clone(),
                external_org_id: grant.org_id.clone(),
                display_name: grant.display_name.clone(),
                account: grant.details.clone(),
                scopes: models::scope_column(&grant.scopes),
                status: Status::Active,
                expires_at: grant.expires_at,
                refresh_failures: 0,
                next_refresh_at: None,
                created_at: now,
                updated_at: now,
            };
            if existing.is_some() {
                store::replace(c, &form)?;
            } else {
                store::insert(c, &form)?;
            }
            store::find(c, &form.id)?.ok_or(ConnectorsError::ConnectionNotFound)
        });
        match result {
            Err(ConnectorsError::Db(DbError::Conflict(_))) if attempt < 2 => continue,
            other => return other,
        }
    }
}

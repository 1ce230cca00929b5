//! Agent console sessions: a random token in the agent's cookie, kept on
//! the server only by its keyed hash, for [`SESSION_HOURS`]; a session is
//! live while unexpired and while its key is an unrevoked agent key, and
//! signing out deletes it on the server.

use vouchsafe_core::api_key::ApiKey;
use vouchsafe_core::ids::{ApiKeyId, TenantId};
use vouchsafe_core::role::Role;
use vouchsafe_core::store::ConsoleSession;

use super::Engine;
use super::error::EngineResult;

/// How long a console session lasts.
pub const SESSION_HOURS: i64 = 8;

/// The keyed hash a session token is stored and found by.
fn session_hash(engine: &Engine, token: &str) -> String {
    engine.code_hasher.hash("console-session", token)
}

/// Starts a session for an agent key; the token for the cookie.
pub async fn start_session(engine: &Engine, key: &ApiKey) -> EngineResult<String> {
    let now = engine.clock.now();
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let stored = ConsoleSession {
        id_hash: session_hash(engine, &token),
        tenant_id: key.tenant_id.clone(),
        key_id: key.id.clone(),
        expires_at: now + time::Duration::hours(SESSION_HOURS),
        created_at: now,
    };
    engine.store.create_console_session(&stored).await?;
    tracing::info!(key_id = %key.id, "agent signed in to the console");
    Ok(token)
}

/// The tenant and key of a live session, if `token` is one.
pub async fn session(engine: &Engine, token: &str) -> Option<(TenantId, ApiKeyId)> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // SECURITY: found by its keyed hash; signing out deletes the row, so an
    // old cookie finds nothing.
    let found = engine.store.console_session(&session_hash(engine, token)).await.ok()??;
    if found.expires_at <= engine.clock.now() {
        return None;
    }
    let key = engine.store.api_key(&found.tenant_id, &found.key_id).await.ok()?;
    (key.revoked_at.is_none() && key.role.grants(Role::Agent)).then_some((found.tenant_id, found.key_id))
}

/// Ends a session on the server, not only in the browser.
pub async fn end_session(engine: &Engine, token: &str, key_id: &ApiKeyId) -> EngineResult<()> {
    engine.store.end_console_session(&session_hash(engine, token)).await?;
    tracing::info!(key_id = %key_id, "agent signed out of the console");
    Ok(())
}

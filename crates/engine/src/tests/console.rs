//! Agent console sessions: live while unexpired and while their key is an
//! unrevoked agent key; signing out ends them on the server.

use vouchsafe_core::role::Role;
use vouchsafe_core::settings::Settings;

use super::super::admin::{create_api_key, revoke_api_key};
use super::super::console::{SESSION_HOURS, end_session, session, start_session};
use super::fixture;

#[tokio::test]
async fn a_session_lives_for_its_hours_while_its_agent_key_does() {
    let f = fixture(Settings::default()).await;
    let (agent, _) = create_api_key(&f.engine, &f.admin(), Role::Agent, "agent").await.unwrap();
    let token = start_session(&f.engine, &agent).await.unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(session(&f.engine, &token).await, Some((f.tenant_id(), agent.id.clone())));
    assert_eq!(session(&f.engine, &token[..63]).await, None, "not a token's shape");
    assert_eq!(session(&f.engine, &format!("{}g", &token[..63])).await, None, "not hex");
    let other = start_session(&f.engine, &agent).await.unwrap();
    assert_ne!(other, token);
    assert_eq!(session(&f.engine, &"0".repeat(64)).await, None, "no such session");

    f.advance(SESSION_HOURS * 3600 - 1);
    assert!(session(&f.engine, &token).await.is_some());
    f.advance(1);
    assert_eq!(session(&f.engine, &token).await, None, "expired at its end");

    let fresh = start_session(&f.engine, &agent).await.unwrap();
    end_session(&f.engine, &fresh, &agent.id).await.unwrap();
    assert_eq!(session(&f.engine, &fresh).await, None, "signed out on the server");

    let revoked = start_session(&f.engine, &agent).await.unwrap();
    revoke_api_key(&f.engine, &f.admin(), &agent.id).await.unwrap();
    assert_eq!(session(&f.engine, &revoked).await, None, "its key was revoked");

    let (hook, _) = create_api_key(&f.engine, &f.admin(), Role::Webhook, "hook").await.unwrap();
    let wrong_role = start_session(&f.engine, &hook).await.unwrap();
    assert_eq!(session(&f.engine, &wrong_role).await, None, "not an agent key");
    let (admin, _) = create_api_key(&f.engine, &f.admin(), Role::Admin, "admin").await.unwrap();
    let admin_session = start_session(&f.engine, &admin).await.unwrap();
    assert!(session(&f.engine, &admin_session).await.is_some(), "an admin key has an agent's rights");
}

//! `vouchsafe audit verify` and the keyed audit chain (issue 16, item 12):
//! the CLI checks a tenant's chain with the master key and prints the head
//! hash; someone who can write to the database but does not hold the key
//! cannot rewrite an event and re-chain the rest, not even as an unkeyed
//! chain; a chain written before chains were keyed is pinned once, right
//! after the upgrade, and keeps verifying.

use serde_json::Value;
use vouchsafe_core::audit::{GENESIS_HASH, unkeyed_hash};
use vouchsafe_core::ids::TenantId;
use vouchsafe_core::store::AuditStore;
use vouchsafe_store::SqlStore;

use crate::helpers::{Workspace, workspace};

/// Runs `audit verify --json`: the exit code and what it printed.
fn verify(ws: &Workspace) -> (i32, Value) {
    let out = ws.run(&["audit", "verify", "--json"]);
    let printed = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {out:?}"));
    (out.status.code().unwrap_or(-1), printed)
}

/// Writes the tenant's whole chain again as bare SHA-256 hashes, as a
/// writer without the key could (and as versions before keying did),
/// optionally changing event `edit`'s actor first.
async fn rewrite_unkeyed(ws: &Workspace, tenant: &str, edit: Option<i64>) {
    let store = SqlStore::connect(&ws.db.url).await.unwrap();
    let tenant_id = TenantId::from_stored(tenant.to_owned());
    let events = store.audit_events(&tenant_id, 0, 1_000).await.unwrap();
    store.close().await;
    let mut prev = GENESIS_HASH.to_owned();
    let mut statements = Vec::new();
    for mut event in events {
        if Some(event.seq) == edit {
            event.entry.actor = "key_innocent".into();
        }
        let hash = unkeyed_hash(&prev, event.seq, &event.entry);
        statements.push(format!(
            "UPDATE audit_events SET actor = '{}', prev_hash = '{prev}', hash = '{hash}' \
             WHERE tenant_id = '{tenant}' AND seq = {}",
            event.entry.actor, event.seq
        ));
        prev = hash;
    }
    statements.push(format!("UPDATE audit_heads SET hash = '{prev}' WHERE tenant_id = '{tenant}'"));
    ws.execute_sql(&statements).await;
}

#[tokio::test]
async fn the_cli_verifies_the_chain_and_names_its_head() {
    let ws = workspace().await;
    let init = ws.run_json(&["init", "--json"]);
    ws.run_json(&["keys", "create", "--tenant", "default", "--role", "agent", "--json"]);
    let (code, check) = verify(&ws);
    assert_eq!(code, 0, "{check}");
    assert_eq!(check["valid"], true);
    assert_eq!(check["count"], 3, "tenant, admin key, agent key: {check}");
    let head = check["head_hash"].as_str().unwrap().to_owned();
    assert!(head.starts_with("hmac-sha256:") && head.len() == 12 + 64, "{head}");

    // An edited event is named, and the command fails.
    let tenant = init["tenant_id"].as_str().unwrap();
    ws.execute_sql(&[format!(
        "UPDATE audit_events SET actor = 'key_innocent' WHERE tenant_id = '{tenant}' AND seq = 2"
    )])
    .await;
    let (code, check) = verify(&ws);
    assert_eq!((code, &check["valid"], &check["first_bad_seq"]), (1, &Value::Bool(false), &Value::from(2)), "{check}");
    let text = ws.run(&["audit", "verify"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("BROKEN at event 2"), "{text:?}");
}

#[tokio::test]
async fn without_the_key_a_rewritten_chain_does_not_verify() {
    let ws = workspace().await;
    let init = ws.run_json(&["init", "--json"]);
    ws.run_json(&["keys", "create", "--tenant", "default", "--role", "agent", "--json"]);
    let tenant = init["tenant_id"].as_str().unwrap();
    // Edit event 2 and chain everything again without the key.
    rewrite_unkeyed(&ws, tenant, Some(2)).await;
    let (code, check) = verify(&ws);
    assert_eq!(code, 1, "{check}");
    assert_eq!(check["valid"], false);
    assert_eq!(check["first_bad_seq"], 4, "the chain lacks the keyed event that must end it: {check}");
    // Opening the key again does not pin the forgery (that happens only
    // once, after the upgrade that keyed the chains), and a keyed event the
    // server appends on the forged head does not vouch for it.
    ws.run_json(&["keys", "create", "--tenant", "default", "--role", "agent", "--json"]);
    let (code, check) = verify(&ws);
    assert_eq!((code, &check["first_bad_seq"]), (1, &Value::from(4)), "{check}");
}

#[tokio::test]
async fn a_chain_from_before_keying_is_pinned_once_and_keeps_verifying() {
    let ws = workspace().await;
    let init = ws.run_json(&["init", "--json"]);
    let tenant = init["tenant_id"].as_str().unwrap();
    // What an older version wrote, and the flag migration 0011 leaves.
    rewrite_unkeyed(&ws, tenant, None).await;
    ws.execute_sql(&["INSERT INTO meta (key, value) VALUES ('audit_pin_due', 'true')".to_owned()]).await;
    let (code, check) = verify(&ws);
    assert_eq!(code, 0, "{check}");
    assert_eq!(check["count"], 3, "the two old events and audit.keyed: {check}");
    let text = ws.run(&["audit", "verify"]);
    assert!(text.status.success(), "the text form succeeds too: {text:?}");
    let store = SqlStore::connect(&ws.db.url).await.unwrap();
    let events = store.audit_events(&TenantId::from_stored(tenant.to_owned()), 0, 10).await.unwrap();
    store.close().await;
    let actions: Vec<_> = events.iter().map(|e| (e.entry.actor.as_str(), e.entry.action.as_str())).collect();
    assert_eq!(actions, [("cli", "tenant.created"), ("cli", "api_key.created"), ("system", "audit.keyed")]);
    assert!(!events[1].hash.starts_with("hmac-sha256:") && events[2].hash.starts_with("hmac-sha256:"));
    // Changing an unkeyed event now breaks the keyed link after it.
    ws.execute_sql(&[format!(
        "UPDATE audit_events SET actor = 'key_innocent' WHERE tenant_id = '{tenant}' AND seq = 1"
    )])
    .await;
    assert_eq!(verify(&ws).1["first_bad_seq"], 1);
}

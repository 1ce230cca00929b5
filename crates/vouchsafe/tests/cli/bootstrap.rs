//! `init`, `tenants create` and `keys create`, as API.md's Bootstrap
//! section gives them, and the master key they share.

use vouchsafe_store::testing::is_postgres;

use crate::helpers::{Server, mode, workspace};

#[tokio::test]
async fn init_creates_the_key_file_tenant_and_an_admin_key_that_works() {
    let ws = workspace().await;
    let out = ws.run_json(&["init", "--json"]);
    for member in ["tenant_id", "account_sid", "key_id", "secret"] {
        assert!(out[member].is_string(), "init --json lacks {member}: {out}");
    }
    assert!(out["secret"].as_str().unwrap().starts_with("vsk_"));
    assert!(out["account_sid"].as_str().unwrap().starts_with("AC"));
    let key_file = ws.path("vouchsafe.key");
    assert_eq!(mode(&key_file), 0o600, "the key file must be readable by its owner only");
    if !is_postgres() {
        assert!(ws.path("vouchsafe.db").exists() || ws.db.url_text.contains("vouchsafe.db"));
    }

    let server = Server::start(&ws, "info");
    let client = reqwest::Client::new();
    let tenant: serde_json::Value = client
        .get(format!("{}/v1/tenant", server.base))
        .bearer_auth(out["secret"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["id"], out["tenant_id"]);
    assert_eq!(tenant["name"], "default");
    assert_eq!(tenant["account_sid"], out["account_sid"]);
    // Issue 16, item 11: the database and its WAL files are the owner's only.
    if !is_postgres() {
        let db = ws.path("vouchsafe.db");
        if db.exists() {
            for suffix in ["", "-wal", "-shm"] {
                let file = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
                if file.exists() {
                    assert_eq!(mode(&file), 0o600, "{} is readable by others", file.display());
                }
            }
            assert!(std::path::PathBuf::from(format!("{}-wal", db.display())).exists(), "a running server has a WAL");
        }
    }
}

#[tokio::test]
async fn tenants_and_keys_are_created_from_the_command_line() {
    let ws = workspace().await;
    ws.run_json(&["init", "--json"]);
    let tenant = ws.run_json(&["tenants", "create", "acme", "--json"]);
    assert!(tenant["tenant_id"].as_str().unwrap().starts_with("ten_"));
    let key = ws.run_json(&["keys", "create", "--tenant", "acme", "--role", "agent", "--name", "crm", "--json"]);
    assert_eq!(key["role"], "agent");
    assert_eq!(key["tenant_id"], tenant["tenant_id"]);
    assert!(key["key_id"].as_str().unwrap().starts_with("key_"));

    let server = Server::start(&ws, "info");
    let reply = reqwest::Client::new()
        .get(format!("{}/v1/tenant", server.base))
        .bearer_auth(key["secret"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["name"], "acme");
}

#[tokio::test]
async fn bad_bootstrap_input_fails_with_one_line() {
    let ws = workspace().await;
    ws.run_json(&["init", "--json"]);
    for args in [
        &["tenants", "create", "Not A Slug", "--json"][..],
        &["tenants", "create", "default", "--json"],
        &["keys", "create", "--tenant", "nobody", "--role", "agent", "--json"],
        &["keys", "create", "--tenant", "default", "--role", "root", "--json"],
    ] {
        let out = ws.run(args);
        assert!(!out.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

#[tokio::test]
async fn a_different_master_key_is_refused() {
    let ws = workspace().await;
    ws.run_json(&["init", "--json"]);
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let out = ws
        .command(&["keys", "create", "--tenant", "default", "--role", "admin"])
        .env("VOUCHSAFE_MASTER_KEY", other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("does not match"));

    // Losing the key file is an error, not a silent new key.
    std::fs::remove_file(ws.path("vouchsafe.key")).unwrap();
    let out = ws.run(&["keys", "create", "--tenant", "default", "--role", "admin"]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("missing"));
    assert!(!ws.path("vouchsafe.key").exists());
}

#[tokio::test]
async fn the_master_key_may_come_from_the_environment() {
    let ws = workspace().await;
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let out = ws.command(&["init", "--json"]).env("VOUCHSAFE_MASTER_KEY", key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!ws.path("vouchsafe.key").exists(), "no key file when the key is given");
    let out = ws
        .command(&["keys", "create", "--tenant", "default", "--role", "agent", "--json"])
        .env("VOUCHSAFE_MASTER_KEY", key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = ws.command(&["init", "--json"]).env("VOUCHSAFE_MASTER_KEY", "c2hvcnQ=").output().unwrap();
    assert!(!out.status.success(), "a key that is not 32 bytes is refused");
}

#[tokio::test]
async fn migrate_is_idempotent() {
    let ws = workspace().await;
    for _ in 0..2 {
        let out = ws.run(&["migrate"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

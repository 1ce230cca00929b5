//! Configuration layering as the binary applies it: file, environment
//! (with `_FILE` variants), flags; unknown keys fail loudly.

use crate::helpers::{Server, workspace};

#[tokio::test]
async fn unknown_config_keys_and_variables_fail_loudly() {
    let ws = workspace().await;
    std::fs::write(ws.path("v.toml"), "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = ws.run(&["migrate", "--config", "v.toml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("lisen"), "{stderr}");

    let out = ws.command(&["migrate"]).env("VOUCHSAFE_DATABSE_URL", "x").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("VOUCHSAFE_DATABSE_URL"));
}

#[tokio::test]
async fn file_env_and_flags_layer_in_order() {
    let ws = workspace().await;
    ws.run_json(&["init", "--json"]);
    // The file asks for a port that is taken; the environment overrides it
    // with port 0, which the flag then overrides again.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    std::fs::write(ws.path("v.toml"), format!("listen = \"{taken_addr}\"\nlog = \"info\"\n")).unwrap();
    let out = ws.command(&["serve", "--config", "v.toml"]).env("VOUCHSAFE_LOG", "info").output().unwrap();
    assert!(!out.status.success(), "the file's address is in use");
    assert!(String::from_utf8(out.stderr).unwrap().contains(&taken_addr.to_string()));

    // VOUCHSAFE_PUBLIC_URL_FILE reads the value from a file.
    std::fs::write(ws.path("public_url"), "https://verify.example.test\n").unwrap();
    std::fs::write(ws.path("v.toml"), "public_url = \"http://from-the-file.test\"\n").unwrap();
    let server = Server::start_with(&ws, &["--config", "v.toml"], &[("VOUCHSAFE_PUBLIC_URL_FILE", "public_url")]);
    assert!(server.log().contains("https://verify.example.test"), "{}", server.log());
}

//! schemathesis (the PyPI package) against the running server's own
//! `/openapi.json`: generated and mutated requests to every operation, with
//! an admin key for `/v1` and the tenant's Basic credentials for `/v2`. No
//! answer may be a 5xx, and every answer must match the document: its
//! status code, content type and body schema.

use std::process::Command;

use crate::helpers::{Server, workspace};

/// Runs `schemathesis run` with `extra` arguments in `dir` (where it keeps
/// its cache); returns its output.
fn schemathesis(server: &Server, dir: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let runner = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())";
    let out = Command::new("python3")
        .args(["-c", runner, "run", &format!("{}/openapi.json", server.base)])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--max-examples",
            "25",
            "--workers",
            "2",
            // A fixed seed: a failure here can be replayed exactly.
            "--seed",
            "20261122",
            // Revoking the key the run authenticates with would leave the
            // rest of the run testing only 401s.
            "--exclude-path",
            "/v1/api-keys/{id}",
        ])
        .args(extra)
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .output()
        .expect("python3 with schemathesis (.ci/run installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let ws = workspace().await;
    let secret = ws.run_json(&["init", "--json"])["secret"].as_str().unwrap().to_owned();
    let server = Server::start(&ws, "info");
    let tenant = server.get_json(&secret, "/v1/tenant").await;
    let account_sid = tenant["account_sid"].as_str().unwrap();

    let bearer = format!("Authorization: Bearer {secret}");
    let (ok, report) =
        schemathesis(&server, ws.dir.path(), &["--include-path-regex", "^/(v1|healthz|readyz)", "-H", &bearer]);
    assert!(ok, "schemathesis found problems in /v1:\n{report}");
    assert!(report.contains("passed"), "schemathesis ran no test:\n{report}");

    let basic = format!("{account_sid}:{secret}");
    let (ok, report) = schemathesis(&server, ws.dir.path(), &["--include-path-regex", "^/v2/", "--auth", &basic]);
    assert!(ok, "schemathesis found problems in /v2:\n{report}");
}

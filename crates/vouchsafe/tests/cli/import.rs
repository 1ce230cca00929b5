//! `vouchsafe authenticators import`: tokens exported from another system
//! as `USER_ID,otpauth://…` lines sign their users in at once; a file with
//! one bad line imports nothing and names the line, never the secret.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use vouchsafe_otp::{Algorithm, Hotp, Secret, Totp};

use crate::helpers::{Server, workspace};

const ADA: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const BOB: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

async fn post(server: &Server, secret: &str, path: &str, body: Value) -> (u16, Value) {
    let reply = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap();
    (reply.status().as_u16(), reply.json().await.unwrap_or(Value::Null))
}

/// Opens a challenge of `factor` for `user` and answers it with `code`.
async fn answer(server: &Server, secret: &str, user: &str, factor: &str, code: &str) -> Value {
    let (status, challenge) =
        post(server, secret, &format!("/v1/users/{user}/challenges"), json!({"factor": factor})).await;
    assert_eq!(status, 201, "{challenge}");
    let path = format!("/v1/challenges/{}/verify", challenge["id"].as_str().unwrap());
    post(server, secret, &path, json!({"code": code})).await.1
}

#[tokio::test]
async fn imported_tokens_sign_their_users_in() {
    let ws = workspace().await;
    let secret = ws.run_json(&["init", "--json"])["secret"].as_str().unwrap().to_owned();
    let file = ws.path("tokens.csv");
    std::fs::write(
        &file,
        format!(
            "# exported from the old OTP server\n\
             ada,otpauth://totp/Acme:ada?secret={ADA}&issuer=Acme\n\n\
             bob,otpauth://hotp/Acme:bob?secret={BOB}&counter=5&digits=6\n"
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let imported = ws.run_json(&["authenticators", "import", "--json", path]);
    assert_eq!(imported["imported"], 2, "{imported}");

    let server = Server::start(&ws, "info");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let totp = Totp::new(&Secret::parse_base32(ADA).unwrap(), 6, 30, Algorithm::Sha1).unwrap();
    let ada = answer(&server, &secret, "ada", "totp", &totp.generate(now)).await;
    assert_eq!(ada["status"], "approved", "{ada}");

    let hotp = Hotp::new(&Secret::parse_base32(BOB).unwrap(), 6, Algorithm::Sha1).unwrap();
    let old = answer(&server, &secret, "bob", "hotp", &hotp.generate(4)).await;
    assert_eq!(old["status"], "pending", "a code before the imported counter is refused: {old}");
    let bob = answer(&server, &secret, "bob", "hotp", &hotp.generate(5)).await;
    assert_eq!(bob["status"], "approved", "{bob}");
    let replay = answer(&server, &secret, "bob", "hotp", &hotp.generate(5)).await;
    assert_eq!(replay["status"], "pending", "the same code twice is refused: {replay}");

    // Issue 16, item 19: importing again does not silently replace an
    // active token; the whole file is refused and nothing changes.
    let before = server.get_json(&secret, "/v1/users/ada/authenticators").await;
    std::fs::write(
        &file,
        format!("carl,otpauth://totp/Acme:carl?secret={BOB}\nada,otpauth://totp/Acme:ada?secret={BOB}&issuer=Acme\n"),
    )
    .unwrap();
    let refused = ws.run(&["authenticators", "import", path]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("line 2") && stderr.contains("--replace"), "{stderr}");
    assert_eq!(server.get_json(&secret, "/v1/users/ada/authenticators").await, before, "ada's token is unchanged");
    let carl =
        reqwest::Client::new().get(format!("{}/v1/users/carl", server.base)).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(carl.status(), 404, "nothing of the refused file was imported");
    let still = answer(&server, &secret, "ada", "totp", &totp.generate(now + 30)).await;
    assert_eq!(still["status"], "approved", "the old seed still signs ada in: {still}");

    // With --replace, each user's token of that type is replaced.
    assert_eq!(ws.run_json(&["authenticators", "import", "--replace", "--json", path])["imported"], 2);
    let listed = server.get_json(&secret, "/v1/users/ada/authenticators").await;
    assert_eq!(listed["authenticators"].as_array().unwrap().len(), 1, "{listed}");
    let bob_seed = Totp::new(&Secret::parse_base32(BOB).unwrap(), 6, 30, Algorithm::Sha1).unwrap();
    let replaced = answer(&server, &secret, "ada", "totp", &bob_seed.generate(now)).await;
    assert_eq!(replaced["status"], "approved", "the file's seed signs ada in now: {replaced}");

    // Only a token of the same type is in the way: bob's active one is HOTP.
    std::fs::write(&file, format!("bob,otpauth://totp/Acme:bob?secret={ADA}\n")).unwrap();
    assert_eq!(ws.run_json(&["authenticators", "import", "--json", path])["imported"], 1);
    let both = server.get_json(&secret, "/v1/users/bob/authenticators").await;
    assert_eq!(both["authenticators"].as_array().unwrap().len(), 2, "{both}");
}

/// Issue 16, item 19: a user named twice for one token type, or a field
/// over the API's limits, refuses the whole file.
#[tokio::test]
async fn duplicate_users_and_oversized_fields_import_nothing() {
    let ws = workspace().await;
    ws.run_json(&["init", "--json"]);
    let file = ws.path("tokens.csv");
    let path = file.to_str().unwrap();
    let huge_label = "x".repeat(1_000_000);
    for (contents, expected) in [
        (
            format!("dan,otpauth://totp/A:d?secret={ADA}\ndan,otpauth://totp/A:d?secret={BOB}\n"),
            "line 2: user \"dan\" already has a totp token on line 1",
        ),
        (
            format!("dan,otpauth://totp/A:{huge_label}?secret={ADA}\n"),
            "line 1: the account label must be 1 to 100 bytes",
        ),
        (format!("{},otpauth://totp/A:d?secret={ADA}\n", "d".repeat(201)), "line 1: the user id must be"),
    ] {
        std::fs::write(&file, contents).unwrap();
        let out = ws.run(&["authenticators", "import", path]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    // A user may hold one TOTP and one HOTP token: not a duplicate.
    std::fs::write(
        &file,
        format!("dan,otpauth://totp/A:d?secret={ADA}\ndan,otpauth://hotp/A:d?secret={BOB}&counter=1\n"),
    )
    .unwrap();
    assert_eq!(ws.run_json(&["authenticators", "import", "--json", path])["imported"], 2);
}

#[tokio::test]
async fn one_bad_line_imports_nothing_and_names_the_line_not_the_secret() {
    let ws = workspace().await;
    ws.run_json(&["init", "--json"]);
    let file = ws.path("tokens.csv");
    std::fs::write(
        &file,
        format!("carol,otpauth://totp/A:c?secret={ADA}\ndave,otpauth://totp/A:d?secret={ADA}\nerin,otpauth://totp/A:e?secret=MFRGGZDF\n"),
    )
    .unwrap();
    let out = ws.run(&["authenticators", "import", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(!stderr.contains("MFRGGZDF") && !stderr.contains(ADA), "the error shows no secret: {stderr}");

    let server = Server::start(&ws, "info");
    let secret = ws.run_json(&["keys", "create", "--tenant", "default", "--role", "admin", "--json"])["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let carol = reqwest::Client::new()
        .get(format!("{}/v1/users/carol", server.base))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(carol.status(), 404, "nothing of the file was imported");
}

//! Bad input, generated: bodies of random bytes, of random form pairs with
//! percent escapes, and of JSON cut short or with junk values, posted to
//! every parser that reads a request body (the JSON API, the Twilio forms,
//! Twilio's delivery callback, the hosted page and the console sign-in).
//! Every answer is a 4xx or a success, never a 5xx, and the server stays up.

use reqwest::StatusCode;
use serde_json::json;

use crate::dice::Dice;
use crate::helpers::spawn_app;

fn text(dice: &mut Dice, max: usize) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "0",
        "9",
        "+",
        "%",
        "%2",
        "%zz",
        "%00",
        "%FF",
        "&",
        "=",
        "==",
        "\u{e9}",
        "\u{1F600}",
        " ",
        "\"",
        "\\",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\n",
        "\u{0}",
        "null",
        "true",
        "-1",
        "1e999",
        "+4915112345678",
        "a@b.c",
        "To",
        "Code",
        "Channel",
        "sms",
        "code",
        "to",
        "csrf",
        "action",
        "approve",
    ];
    (0..dice.below(max + 1)).map(|_| PIECES[dice.below(PIECES.len())]).collect()
}

fn bytes(dice: &mut Dice, max: usize) -> Vec<u8> {
    (0..dice.below(max + 1)).map(|_| dice.next() as u8).collect()
}

fn form(dice: &mut Dice) -> String {
    (0..dice.below(6)).map(|_| format!("{}={}", text(dice, 3), text(dice, 6))).collect::<Vec<_>>().join("&")
}

fn json_doc(dice: &mut Dice) -> String {
    let keys = ["to", "channel", "code", "verification_id", "service_id", "locale", "message", "credential"];
    let values = [
        json!(null),
        json!(-1),
        json!(1e300),
        json!("\u{0}"),
        json!([]),
        json!({}),
        json!(true),
        json!("+4915112345678"),
    ];
    let mut doc = serde_json::Map::new();
    for _ in 0..dice.below(5) {
        let value = if dice.below(2) == 0 { values[dice.below(values.len())].clone() } else { json!(text(dice, 8)) };
        doc.insert(keys[dice.below(keys.len())].to_owned(), value);
    }
    let text = serde_json::Value::Object(doc).to_string();
    // Sometimes cut short.
    if dice.below(4) == 0 { text.chars().take(dice.below(text.len() + 1)).collect() } else { text }
}

#[tokio::test]
async fn generated_bodies_never_get_a_server_error() {
    let app = spawn_app().await;
    let user = app.put("/v1/users/fuzz", &app.admin, json!({"phone": "+4915112345678"})).await;
    assert!(user.status.is_success(), "{}", user.text);
    let challenge = app.post("/v1/users/fuzz/challenges", &app.admin, json!({})).await;
    assert_eq!(challenge.status, StatusCode::CREATED, "{}", challenge.text);
    let page = format!("/challenge/{}", challenge.body["id"].as_str().unwrap());
    let sid = app.tenant.default_service_id.as_str().to_owned();
    let targets: Vec<(String, &str, bool)> = vec![
        ("/v1/verifications".into(), "application/json", true),
        ("/v1/verifications/check".into(), "application/json", true),
        ("/v1/deliveries".into(), "application/json", true),
        ("/v1/users/fuzz/authenticators".into(), "application/json", true),
        (format!("/v2/Services/{sid}/Verifications"), "application/x-www-form-urlencoded", false),
        (format!("/v2/Services/{sid}/VerificationCheck"), "application/x-www-form-urlencoded", false),
        ("/v2/Services".into(), "application/x-www-form-urlencoded", false),
        ("/v1/provider-callbacks/twilio".into(), "application/x-www-form-urlencoded", false),
        (page, "application/x-www-form-urlencoded", false),
        ("/console/login".into(), "application/x-www-form-urlencoded", false),
    ];
    let seed = Dice::from_clock().next();
    eprintln!("fuzz seed {seed}");
    let mut dice = Dice::seeded(seed);
    let mut answered = 0;
    for round in 0..60 {
        for (path, content_type, json_api) in &targets {
            let body: Vec<u8> = match dice.below(3) {
                0 => bytes(&mut dice, 200),
                1 if *json_api => json_doc(&mut dice).into_bytes(),
                _ => form(&mut dice).into_bytes(),
            };
            let mut req = app.client.post(app.url(path)).header("content-type", *content_type).body(body.clone());
            req = if path.starts_with("/v2/") {
                req.basic_auth(app.tenant.account_sid.as_str(), Some(&app.admin))
            } else {
                req.bearer_auth(&app.admin)
            };
            let status = req.send().await.unwrap().status();
            assert!(
                !status.is_server_error(),
                "{path} answered {status} (seed {seed}, round {round}) to {:?}",
                String::from_utf8_lossy(&body)
            );
            answered += 1;
        }
    }
    assert_eq!(answered, 60 * targets.len());
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the server is still up");
}

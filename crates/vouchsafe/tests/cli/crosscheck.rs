//! `vouchsafe totp code` and the `otp` crate against implementations
//! nobody here wrote: pyotp (PyPI) and oathtool (Debian), over random
//! secrets, times, digits and algorithms. `.ci/run` installs both; a
//! missing one fails the test rather than skipping it.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use vouchsafe_otp::{Algorithm, Hotp, Secret};

use crate::helpers::BIN;

struct Case {
    secret: String,
    time: u64,
    digits: u32,
    period: u64,
    algorithm: &'static str,
}

/// Random cases from the OS CSPRNG (through `Secret::generate`): secret
/// lengths 15–60 bytes (pyotp refuses fewer than 14), any time up to 2100.
fn random_cases(n: usize) -> Vec<Case> {
    (0..n)
        .map(|i| {
            let mut bytes = Vec::new();
            while bytes.len() < 60 {
                bytes.extend_from_slice(Secret::generate().unwrap().as_bytes());
            }
            let seed = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            let len = 15 + (seed % 46) as usize;
            Case {
                secret: Secret::from_bytes(bytes[..len].to_vec()).to_base32(),
                time: (seed >> 8) % 4_102_444_800,
                digits: 6 + (i % 3) as u32,
                period: [30, 60, 15][(i / 9) % 3],
                algorithm: ["SHA1", "SHA256", "SHA512"][(i / 3) % 3],
            }
        })
        .collect()
}

/// Runs a Python snippet that reads JSON cases on stdin and prints JSON codes.
fn python(script: &str, input: &Value) -> Vec<String> {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed (.ci/run installs it with pyotp)");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "pyotp failed (is it installed?): {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn oathtool(args: &[String]) -> String {
    let out = Command::new("oathtool").args(args).output().expect("oathtool must be installed (.ci/run installs it)");
    assert!(out.status.success(), "oathtool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn ours(case: &Case) -> String {
    let out = Command::new(BIN)
        .args(["totp", "code", "--secret", &case.secret])
        .args(["--time", &case.time.to_string(), "--digits", &case.digits.to_string()])
        .args(["--period", &case.period.to_string(), "--algorithm", case.algorithm])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const PYOTP_TOTP: &str = r#"
import hashlib, json, sys, pyotp
cases = json.load(sys.stdin)
print(json.dumps([pyotp.TOTP(c["secret"], digits=c["digits"], interval=c["period"],
                             digest=getattr(hashlib, c["algorithm"].lower())).at(c["time"]) for c in cases]))
"#;

const PYOTP_HOTP: &str = r#"
import hashlib, json, sys, pyotp
cases = json.load(sys.stdin)
print(json.dumps([pyotp.HOTP(c["secret"], digits=c["digits"],
                             digest=getattr(hashlib, c["algorithm"].lower())).at(c["counter"]) for c in cases]))
"#;

#[test]
fn totp_code_agrees_with_pyotp_and_oathtool() {
    let cases = random_cases(60);
    let input: Value = cases
        .iter()
        .map(|c| json!({"secret": c.secret, "time": c.time, "digits": c.digits, "period": c.period, "algorithm": c.algorithm}))
        .collect();
    let pyotp_codes = python(PYOTP_TOTP, &input);
    for (case, from_pyotp) in cases.iter().zip(pyotp_codes) {
        let from_us = ours(case);
        let from_oathtool = oathtool(&[
            format!("--totp={}", case.algorithm),
            "-b".into(),
            format!("--digits={}", case.digits),
            format!("--time-step-size={}s", case.period),
            format!("--now=@{}", case.time),
            case.secret.clone(),
        ]);
        let what = format!("{} {} digits, {}s at {}", case.algorithm, case.digits, case.period, case.time);
        assert_eq!(from_us, from_pyotp, "pyotp disagrees: {what}");
        assert_eq!(from_us, from_oathtool, "oathtool disagrees: {what}");
    }
}

#[test]
fn hotp_agrees_with_pyotp_and_oathtool() {
    let cases = random_cases(40);
    let input: Value = cases
        .iter()
        .map(|c| json!({"secret": c.secret, "counter": c.time, "digits": c.digits, "algorithm": c.algorithm}))
        .collect();
    let pyotp_codes = python(PYOTP_HOTP, &input);
    for (case, from_pyotp) in cases.iter().zip(pyotp_codes) {
        let secret = Secret::parse_base32(&case.secret).unwrap();
        let ours = Hotp::new(&secret, case.digits, Algorithm::parse(case.algorithm).unwrap()).unwrap();
        assert_eq!(ours.generate(case.time), from_pyotp, "pyotp disagrees at counter {}", case.time);
        if case.algorithm == "SHA1" {
            // oathtool's HOTP mode is SHA1 only.
            let from_oathtool = oathtool(&[
                "--hotp".into(),
                "-b".into(),
                format!("--digits={}", case.digits),
                format!("--counter={}", case.time),
                case.secret.clone(),
            ]);
            assert_eq!(ours.generate(case.time), from_oathtool, "oathtool disagrees at counter {}", case.time);
        }
    }
}

#[test]
fn defaults_are_sha1_six_digits_thirty_seconds_like_authenticator_apps() {
    let out = Command::new(BIN)
        .args(["totp", "code", "--secret", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "--time", "59"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "287082\n", "RFC 6238 SHA1 at T=59, last six digits");
    // The secret may be written in lower case with spaces, as apps show it.
    let out = Command::new(BIN)
        .args(["totp", "code", "--secret", "gezd gnbv gy3t qojq gezd gnbv gy3t qojq", "--time", "59"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "287082\n");
}

#[test]
fn secret_env_uri_and_json_output() {
    let out = Command::new(BIN)
        .args(["totp", "code", "--secret-env", "MY_TOTP", "--time", "59", "--digits", "8", "--json"])
        .env("MY_TOTP", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], "94287082");
    assert_eq!(v["remaining_s"], 1);
    assert_eq!(v["algorithm"], "SHA1");

    let uri = "otpauth://totp/ACME:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA&algorithm=SHA256&digits=8";
    let out = Command::new(BIN).args(["totp", "code", "--uri", uri, "--time", "59"]).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "46119246\n", "RFC 6238 SHA256 at T=59");
}

#[test]
fn bad_secrets_and_flags_give_a_one_line_reason_and_fail() {
    for args in [
        &["totp", "code", "--secret", "not-base32-!!"][..],
        &["totp", "code", "--secret", ""],
        &["totp", "code", "--secret", "GEZDGNBV", "--digits", "9"],
        &["totp", "code", "--secret", "GEZDGNBV", "--algorithm", "MD5"],
        &["totp", "code", "--secret", "GEZDGNBV", "--period", "0"],
        &["totp", "code", "--secret-env", "VOUCHSAFE_TEST_UNSET_VARIABLE"],
        &["totp", "code", "--uri", "otpauth://hotp/x?secret=GEZDGNBV&counter=1"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: one line, got {stderr:?}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    let out = Command::new(BIN).args(["totp", "code"]).output().unwrap();
    assert!(!out.status.success(), "a secret is required");
    let out = Command::new(BIN).args(["totp", "code", "--secret", "GEZDGNBV", "--bogus"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().lines().next().unwrap().contains("--bogus"));
}

//! `totp code`: the current TOTP code for automation users, computed with
//! the same defaults as Google Authenticator, otplib and pyotp (SHA1, 6
//! digits, 30 seconds).

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use vouchsafe_otp::{Algorithm, OtpKind, OtpauthUri, Secret, Totp};

use crate::cli::TotpCodeArgs;
use crate::system_clock::SystemClock;
use vouchsafe_core::clock::Clock;

pub fn code(args: &TotpCodeArgs) -> anyhow::Result<()> {
    let (secret, mut digits, mut period, mut algorithm) = match (&args.secret, &args.secret_env, &args.uri) {
        (Some(text), _, _) => {
            (Secret::parse_base32(text).map_err(|e| anyhow!("--secret: {e}"))?, 6, 30, Algorithm::Sha1)
        }
        (_, Some(var), _) => {
            let text =
                std::env::var(var).map_err(|_| anyhow!("--secret-env: environment variable {var} is not set"))?;
            (Secret::parse_base32(&text).map_err(|e| anyhow!("--secret-env {var}: {e}"))?, 6, 30, Algorithm::Sha1)
        }
        (_, _, Some(uri)) => {
            let parsed = OtpauthUri::parse(uri).map_err(|e| anyhow!("--uri: {e}"))?;
            let OtpKind::Totp { period } = parsed.kind else { bail!("--uri: is an hotp URI; totp code needs totp") };
            (parsed.secret.clone(), parsed.digits, period, parsed.algorithm)
        }
        _ => bail!("give --secret, --secret-env or --uri"),
    };
    digits = args.digits.unwrap_or(digits);
    period = args.period.unwrap_or(period);
    if let Some(name) = &args.algorithm {
        algorithm = Algorithm::parse(name).ok_or_else(|| anyhow!("--algorithm must be SHA1, SHA256 or SHA512"))?;
    }
    let totp = Totp::new(&secret, digits, period, algorithm).map_err(|e| anyhow!("{e}"))?;
    let time = match args.time {
        Some(t) => t,
        None => u64::try_from(SystemClock.now().unix_timestamp()).context("the system clock is before 1970")?,
    };
    let code = totp.generate(time);
    if args.json.json {
        println!(
            "{}",
            json!({"code": code, "digits": digits, "period": period, "algorithm": algorithm.as_str(),
                   "time": time, "remaining_s": totp.remaining_s(time)})
        );
    } else {
        println!("{code}");
    }
    Ok(())
}

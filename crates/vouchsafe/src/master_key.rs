//! Loading the master key, creating its file on a fresh install, and
//! refusing to run with a key other than the one the database was
//! initialised with (its check value is stored there at first start).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use vouchsafe_core::crypto::MasterKey;
use vouchsafe_core::store::MetaStore;

use crate::config::MasterKeySource;

/// Reads the key; creates the key file (mode 0600) only when the database
/// has never seen a key, so a lost file is an error rather than a new key
/// that cannot open anything already sealed.
pub async fn load_or_create(source: &MasterKeySource, store: &dyn MetaStore) -> anyhow::Result<MasterKey> {
    let stored_check = store.key_check().await.context("reading the master-key check value")?;
    let key = match source {
        MasterKeySource::Inline(text) => MasterKey::from_base64(text).context("VOUCHSAFE_MASTER_KEY")?,
        MasterKeySource::File(path) if path.exists() => read_file(path)?,
        MasterKeySource::File(path) if stored_check.is_none() => create_file(path)?,
        MasterKeySource::File(path) => bail!(
            "master key file {} is missing, but this database was initialised with a master key; \
             restore the file or set VOUCHSAFE_MASTER_KEY",
            path.display()
        ),
    };
    match stored_check {
        Some(check) if check != key.check_value() => {
            bail!("the master key does not match the one this database was initialised with")
        }
        Some(_) => {}
        None => store.init_key_check(&key.check_value()).await.context("storing the master-key check value")?,
    }
    Ok(key)
}

fn read_file(path: &Path) -> anyhow::Result<MasterKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read master key file {}", path.display()))?;
    warn_if_readable_by_others(path);
    MasterKey::from_base64(&text).with_context(|| format!("master key file {}", path.display()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "master key file is readable by group or others; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

fn create_file(path: &Path) -> anyhow::Result<MasterKey> {
    let key = MasterKey::generate()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("cannot create master key file {}", path.display()))?;
    file.write_all(key.to_base64().as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "created a new master key file (mode 0600); back it up");
    Ok(key)
}

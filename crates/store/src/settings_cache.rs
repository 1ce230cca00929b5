//! Parsed tenant settings, kept per tenant with the version they were read
//! at. Every request that applies a tenant's rules reads its settings, and
//! parsing the JSON document (with the current defaults laid under it)
//! cost more than the read itself. A read still asks the database for the
//! version, one integer by primary key, so a change made by another node
//! or by the CLI is seen by the next request exactly as before: every
//! write of the document moves its version (`replace_settings` is a
//! conditional write on it), and only an unchanged document is neither
//! sent nor parsed again (`tenants.rs::found_settings_columns!`).
//!
//! The map is bounded: tenants are made by administrators, not by
//! outsiders, but should there be more than `MAX_TENANTS` of them the
//! map starts afresh rather than grow.

use std::collections::HashMap;
use std::sync::Mutex;

use vouchsafe_core::settings::Settings;

const MAX_TENANTS: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct SettingsCache {
    parsed: Mutex<HashMap<String, (i64, Settings)>>,
}

impl SettingsCache {
    /// The settings of `tenant` as parsed at `version`, if they were.
    pub(crate) fn get(&self, tenant: &str, version: i64) -> Option<Settings> {
        let parsed = self.parsed.lock().ok()?;
        parsed.get(tenant).filter(|(at, _)| *at == version).map(|(_, settings)| settings.clone())
    }

    /// The version `tenant`'s settings are kept parsed at, if they are.
    pub(crate) fn version(&self, tenant: &str) -> Option<i64> {
        self.parsed.lock().ok()?.get(tenant).map(|(at, _)| *at)
    }

    /// Keeps `settings`, parsed at `version` (a newer version replaces an
    /// older one, never the other way round).
    pub(crate) fn put(&self, tenant: &str, version: i64, settings: &Settings) {
        let Ok(mut parsed) = self.parsed.lock() else { return };
        if parsed.get(tenant).is_some_and(|(at, _)| *at > version) {
            return;
        }
        if parsed.len() >= MAX_TENANTS && !parsed.contains_key(tenant) {
            parsed.clear();
        }
        parsed.insert(tenant.to_owned(), (version, settings.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_served_only_at_the_version_they_were_parsed_at() {
        let cache = SettingsCache::default();
        let mut newer = Settings::default();
        newer.lockout.threshold = 3;
        cache.put("ten_a", 1, &Settings::default());
        assert_eq!(cache.get("ten_a", 1), Some(Settings::default()));
        assert_eq!(cache.get("ten_a", 2), None, "another version is parsed afresh");
        assert_eq!(cache.get("ten_b", 1), None);
        cache.put("ten_a", 2, &newer);
        cache.put("ten_a", 1, &Settings::default());
        assert_eq!(cache.get("ten_a", 2), Some(newer), "a late reader of the old version does not win");
    }

    #[test]
    fn the_map_never_grows_past_its_bound() {
        let cache = SettingsCache::default();
        for n in 0..MAX_TENANTS + 5 {
            cache.put(&format!("ten_{n}"), 1, &Settings::default());
        }
        let held = cache.parsed.lock().map(|p| p.len()).unwrap_or(usize::MAX);
        assert!(held <= MAX_TENANTS, "{held}");
        assert!(cache.get(&format!("ten_{}", MAX_TENANTS + 4), 1).is_some());
    }
}

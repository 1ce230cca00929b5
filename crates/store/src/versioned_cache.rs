//! What a tenant's configuration parses to, kept per tenant with the
//! version it was read at. Every request that applies a tenant's rules
//! reads its settings, and every send its providers; parsing them cost
//! more than the read itself. A reader still learns the current version
//! from the database, in a statement it makes anyway (one integer by
//! primary key), so a change made by another node or by the CLI is seen by
//! the next request exactly as before: every write of the settings moves
//! their version (`replace_settings` is a conditional write on it), every
//! write of a provider or of a credential moves the providers' version
//! (`providers.rs::providers_changed`), and only what is unchanged at the
//! version found is served from here.
//!
//! The map is bounded: tenants are made by administrators, not by
//! outsiders, but should there be more than `MAX_TENANTS` of them the
//! map starts afresh rather than grow.

use std::collections::HashMap;
use std::sync::Mutex;

const MAX_TENANTS: usize = 10_000;

#[derive(Debug)]
pub(crate) struct VersionedCache<T> {
    parsed: Mutex<HashMap<String, (i64, T)>>,
}

impl<T> Default for VersionedCache<T> {
    fn default() -> Self {
        Self { parsed: Mutex::new(HashMap::new()) }
    }
}

impl<T: Clone> VersionedCache<T> {
    /// What `tenant`'s configuration parsed to at `version`, if it was.
    pub(crate) fn get(&self, tenant: &str, version: i64) -> Option<T> {
        let parsed = self.parsed.lock().ok()?;
        parsed.get(tenant).filter(|(at, _)| *at == version).map(|(_, value)| value.clone())
    }

    /// The version `tenant`'s configuration is kept parsed at, if it is.
    pub(crate) fn version(&self, tenant: &str) -> Option<i64> {
        self.parsed.lock().ok()?.get(tenant).map(|(at, _)| *at)
    }

    /// Keeps `value`, parsed at `version` (a newer version replaces an
    /// older one, never the other way round).
    pub(crate) fn put(&self, tenant: &str, version: i64, value: &T) {
        let Ok(mut parsed) = self.parsed.lock() else { return };
        if parsed.get(tenant).is_some_and(|(at, _)| *at > version) {
            return;
        }
        if parsed.len() >= MAX_TENANTS && !parsed.contains_key(tenant) {
            parsed.clear();
        }
        parsed.insert(tenant.to_owned(), (version, value.clone()));
    }
}

#[cfg(test)]
mod tests {
    use vouchsafe_core::settings::Settings;

    use super::*;

    #[test]
    fn a_value_is_served_only_at_the_version_it_was_parsed_at() {
        let cache = VersionedCache::default();
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
        let cache = VersionedCache::default();
        for n in 0..MAX_TENANTS + 5 {
            cache.put(&format!("ten_{n}"), 1, &Settings::default());
        }
        let held = cache.parsed.lock().map(|p| p.len()).unwrap_or(usize::MAX);
        assert!(held <= MAX_TENANTS, "{held}");
        assert!(cache.get(&format!("ten_{}", MAX_TENANTS + 4), 1).is_some());
    }
}

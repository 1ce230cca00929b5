//! The `/v1` JSON API, one file per resource.

pub mod api_keys;
pub mod audit;
pub mod services;
pub mod settings;
pub mod tenant;
pub mod webhooks;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 UTC, as every time in the API is written.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Re-reads and retries a conditional update this many times before
/// answering `409 conflict` (another writer keeps winning).
pub const CONFLICT_RETRIES: usize = 5;

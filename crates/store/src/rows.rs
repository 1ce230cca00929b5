//! Rows as the database returns them, and their conversion into domain
//! values. Stored text was validated before it was written, so conversion
//! only guards against a database edited by hand.

use vouchsafe_core::api_key::ApiKey;
use vouchsafe_core::clock::from_unix_ms;
use vouchsafe_core::ids::{AccountSid, ApiKeyId, ServiceId, TenantId};
use vouchsafe_core::role::Role;
use vouchsafe_core::service::{Service, channels_from_text};
use vouchsafe_core::store::{StoreError, Versioned};
use vouchsafe_core::tenant::Tenant;

use crate::sqlite_reads::row;

row! {
    pub(crate) struct TenantRow {
        id: String,
        name: String,
        account_sid: String,
        default_service_id: String,
        created_at: i64,
    }
}

impl From<TenantRow> for Tenant {
    fn from(r: TenantRow) -> Self {
        Tenant {
            id: TenantId::from_stored(r.id),
            name: r.name,
            account_sid: AccountSid::from_stored(r.account_sid),
            default_service_id: ServiceId::from_stored(r.default_service_id),
            created_at: from_unix_ms(r.created_at),
        }
    }
}

row! {
    pub(crate) struct ServiceRow {
        id: String,
        tenant_id: String,
        name: String,
        code_length: Option<i64>,
        ttl_s: Option<i64>,
        channels: String,
        version: i64,
        created_at: i64,
        updated_at: i64,
    }
}

impl From<ServiceRow> for Versioned<Service> {
    fn from(r: ServiceRow) -> Self {
        Versioned {
            value: Service {
                id: ServiceId::from_stored(r.id),
                tenant_id: TenantId::from_stored(r.tenant_id),
                name: r.name,
                code_length: r.code_length.and_then(|v| u32::try_from(v).ok()),
                ttl_s: r.ttl_s.and_then(|v| u32::try_from(v).ok()),
                channels: channels_from_text(&r.channels),
                created_at: from_unix_ms(r.created_at),
                updated_at: from_unix_ms(r.updated_at),
            },
            version: r.version,
        }
    }
}

row! {
    pub(crate) struct ApiKeyRow {
        id: String,
        tenant_id: String,
        name: String,
        role: String,
        hint: String,
        created_at: i64,
        revoked_at: Option<i64>,
    }
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            role: Role::parse(&r.role)
                .ok_or_else(|| StoreError::Damaged(format!("unknown role in api_keys row {}", r.id)))?,
            id: ApiKeyId::from_stored(r.id),
            tenant_id: TenantId::from_stored(r.tenant_id),
            name: r.name,
            hint: r.hint,
            created_at: from_unix_ms(r.created_at),
            revoked_at: r.revoked_at.map(from_unix_ms),
        })
    }
}

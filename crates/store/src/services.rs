//! Services (verification profiles).

use async_trait::async_trait;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::clock::to_unix_ms;
use vouchsafe_core::ids::{ServiceId, TenantId};
use vouchsafe_core::service::{SERVICES_PER_TENANT, Service, channels_to_text};
use vouchsafe_core::store::{ServiceStore, StoreError, StoreResult, Versioned};

use crate::rows::ServiceRow;
use crate::sqlite_reads::read;
use crate::tenants::{Counted, before_counting};
use crate::tx::{Tx, exec};
use crate::{SqlStore, map_err, on_pool, one_row};

/// Inserts a service while its tenant has fewer than `$9`.
pub(crate) const INSERT_SERVICE: &str = "INSERT INTO services \
    (id, tenant_id, name, code_length, ttl_s, channels, version, created_at, updated_at) \
    SELECT $1, $2, $3, $4, $5, $6, 1, $7, $8 WHERE (SELECT COUNT(*) FROM services WHERE tenant_id = $2) < $9";

/// `SELECT` of every service column, followed by a literal clause.
macro_rules! select_service {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, name, code_length, ttl_s, channels, version, created_at, updated_at FROM services ",
            $rest
        )
    };
}

/// Inserts `s` with [`INSERT_SERVICE`] inside `tx`, unless its tenant has
/// [`SERVICES_PER_TENANT`] already: answers the rows inserted.
pub(crate) async fn insert_service(tx: &mut Tx<'_>, s: &Service) -> Result<u64, sqlx::Error> {
    exec!(
        tx,
        INSERT_SERVICE,
        [
            s.id.as_str(),
            s.tenant_id.as_str(),
            &s.name,
            s.code_length.map(i64::from),
            s.ttl_s.map(i64::from),
            channels_to_text(&s.channels),
            to_unix_ms(s.created_at),
            to_unix_ms(s.updated_at),
            i64::from(SERVICES_PER_TENANT),
        ]
    )
}

#[async_trait]
impl ServiceStore for SqlStore {
    async fn create_service(&self, service: &Service, audit: &AuditEntry) -> StoreResult<()> {
        let inserted = self
            .write_audited(service.tenant_id.as_str(), audit, service.clone(), |conn, service| {
                Box::pin(async move {
                    // SECURITY: the count sees every creation that committed before.
                    before_counting(conn, Counted::Tenant(service.tenant_id.as_str())).await?;
                    insert_service(conn, service).await
                })
            })
            .await
            .map_err(map_err)?;
        if inserted == 0 {
            return Err(StoreError::LimitReached("the tenant has as many services as it may; delete one first"));
        }
        Ok(())
    }

    async fn service(&self, tenant: &TenantId, id: &ServiceId) -> StoreResult<Versioned<Service>> {
        let sql = select_service!("WHERE tenant_id = $1 AND id = $2");
        Ok(read!(self, one ServiceRow, sql, [tenant.as_str(), id.as_str()])?.into())
    }

    async fn service_by_name(&self, tenant: &TenantId, name: &str) -> StoreResult<Service> {
        let sql = select_service!("WHERE tenant_id = $1 AND name = $2");
        let row: ServiceRow = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(tenant.as_str()).bind(name).fetch_one(pool).await
        )
        .map_err(map_err)?;
        Ok(Versioned::from(row).value)
    }

    async fn list_services(&self, tenant: &TenantId) -> StoreResult<Vec<Service>> {
        let sql = select_service!("WHERE tenant_id = $1 ORDER BY created_at, id");
        let rows: Vec<ServiceRow> = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(tenant.as_str()).fetch_all(pool).await
        )
        .map_err(map_err)?;
        Ok(rows.into_iter().map(|r| Versioned::from(r).value).collect())
    }

    async fn replace_service(&self, s: &Service, expected_version: i64, audit: &AuditEntry) -> StoreResult<()> {
        one_row(
            self.write_audited(s.tenant_id.as_str(), audit, (s.clone(), expected_version), |conn, (s, expected)| {
                Box::pin(async move {
                    exec!(
                        conn,
                        "UPDATE services SET name = $1, code_length = $2, ttl_s = $3, channels = $4, \
                         version = version + 1, updated_at = $5 WHERE tenant_id = $6 AND id = $7 AND version = $8",
                        [
                            &s.name,
                            s.code_length.map(i64::from),
                            s.ttl_s.map(i64::from),
                            channels_to_text(&s.channels),
                            to_unix_ms(s.updated_at),
                            s.tenant_id.as_str(),
                            s.id.as_str(),
                            *expected,
                        ]
                    )
                })
            })
            .await,
            StoreError::Stale,
        )
    }

    async fn delete_service(&self, tenant: &TenantId, id: &ServiceId, audit: &AuditEntry) -> StoreResult<()> {
        one_row(
            self.write_audited(tenant.as_str(), audit, (tenant.clone(), id.clone()), |conn, (tenant, id)| {
                Box::pin(async move {
                    exec!(conn, "DELETE FROM services WHERE tenant_id = $1 AND id = $2", [tenant.as_str(), id.as_str()])
                })
            })
            .await,
            StoreError::NotFound,
        )
    }
}

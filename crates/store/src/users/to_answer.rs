//! A challenge with what an answer to it reads, in one statement: the
//! challenge, its tenant's settings (the document only when the parsed
//! copy kept here is not at the version found) and its user's
//! authenticators, one row per authenticator (one row, its authenticator
//! columns null, when the user has none).
//!
//! An answer to a TOTP challenge made four reads before it was counted:
//! its API key, the challenge, the settings' version and the
//! authenticators. On PostgreSQL each was a round trip; on SQLite each was
//! a read transaction of its own, and under a steady writer each found its
//! connection's page cache invalidated and read its pages afresh. Now the
//! last three are one.

use sqlx::FromRow;
use sqlx::postgres::PgRow;
use vouchsafe_core::ids::{ChallengeId, TenantId};
use vouchsafe_core::store::{ChallengeToAnswer, StoreError, StoreResult};

use super::{AuthenticatorRow, ChallengeRow};
use crate::SqlStore;
use crate::sqlite_reads::{FromSqliteRow, read, row};
use crate::tenants::{FoundSettingsRow, found_settings_columns};

/// `$3` is the version of the settings kept parsed (or -1): at that
/// version the document is not sent. The challenge's columns come first,
/// in `ChallengeRow`'s order, then the settings', then the
/// authenticator's, named `a_…` so that no two columns share a name.
const SQL: &str = concat!(
    "SELECT c.*, ",
    found_settings_columns!("$3"),
    ", a.id AS a_id, a.tenant_id AS a_tenant_id, a.user_id AS a_user_id, a.type AS a_type, \
     a.status AS a_status, a.label AS a_label, a.params AS a_params, a.sealed AS a_sealed, \
     a.counter AS a_counter, a.created_at AS a_created_at, a.updated_at AS a_updated_at, \
     a.last_used_at AS a_last_used_at \
     FROM (SELECT ",
    challenge_columns!(),
    " FROM challenges WHERE tenant_id = $1 AND id = $2) c \
     JOIN tenant_settings s ON s.tenant_id = c.tenant_id \
     LEFT JOIN authenticators a ON a.tenant_id = c.tenant_id AND a.user_id = c.user_id \
     ORDER BY a.created_at, a.id"
);

/// Where the settings' two columns sit: after the challenge's sixteen.
const SETTINGS_AT: usize = 16;

row! {
    /// An authenticator's columns as the outer join gives them: all null
    /// when the user has none.
    struct JoinedAuthenticatorRow {
        id as "a_id": Option<String>,
        tenant_id as "a_tenant_id": Option<String>,
        user_id as "a_user_id": Option<String>,
        kind as "a_type": Option<String>,
        status as "a_status": Option<String>,
        label as "a_label": Option<String>,
        params as "a_params": Option<String>,
        sealed as "a_sealed": Option<Vec<u8>>,
        counter as "a_counter": Option<i64>,
        created_at as "a_created_at": Option<i64>,
        updated_at as "a_updated_at": Option<i64>,
        last_used_at as "a_last_used_at": Option<i64>,
    }
}

impl JoinedAuthenticatorRow {
    /// The authenticator, if the row has one.
    fn into_row(self) -> StoreResult<Option<AuthenticatorRow>> {
        let Some(id) = self.id else { return Ok(None) };
        let missing = || StoreError::Damaged(format!("authenticator {id} read with a column missing"));
        Ok(Some(AuthenticatorRow {
            tenant_id: self.tenant_id.ok_or_else(missing)?,
            user_id: self.user_id.ok_or_else(missing)?,
            kind: self.kind.ok_or_else(missing)?,
            status: self.status.ok_or_else(missing)?,
            label: self.label,
            params: self.params.ok_or_else(missing)?,
            sealed: self.sealed.ok_or_else(missing)?,
            counter: self.counter.ok_or_else(missing)?,
            created_at: self.created_at.ok_or_else(missing)?,
            updated_at: self.updated_at.ok_or_else(missing)?,
            last_used_at: self.last_used_at,
            id,
        }))
    }
}

struct ToAnswerRow {
    challenge: ChallengeRow,
    settings: FoundSettingsRow,
    authenticator: JoinedAuthenticatorRow,
}

impl<'r> FromRow<'r, PgRow> for ToAnswerRow {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            challenge: ChallengeRow::from_row(row)?,
            settings: FoundSettingsRow::from_row(row)?,
            authenticator: JoinedAuthenticatorRow::from_row(row)?,
        })
    }
}

impl FromSqliteRow for ToAnswerRow {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            challenge: ChallengeRow::from_sqlite(row)?,
            settings: FoundSettingsRow::from_sqlite_at(row, SETTINGS_AT)?,
            authenticator: JoinedAuthenticatorRow::from_sqlite_at(row, SETTINGS_AT + 2)?,
        })
    }
}

pub(super) async fn challenge_to_answer(
    store: &SqlStore,
    tenant: &TenantId,
    id: &ChallengeId,
) -> StoreResult<ChallengeToAnswer> {
    let kept = store.kept_settings_version(tenant);
    let mut rows = read!(store, all ToAnswerRow, SQL, [tenant.as_str(), id.as_str(), kept])?.into_iter();
    // Every row repeats the challenge and the settings: they are taken from the first.
    let ToAnswerRow { challenge, settings, authenticator } = rows.next().ok_or(StoreError::NotFound)?;
    let settings = store.settings_found(tenant, settings).await?;
    let mut authenticators = Vec::new();
    for joined in std::iter::once(authenticator).chain(rows.map(|row| row.authenticator)) {
        if let Some(a) = joined.into_row()? {
            authenticators.push(a.try_into()?);
        }
    }
    let challenge = challenge.try_into()?;
    Ok(ChallengeToAnswer { challenge, settings, authenticators })
}

#[cfg(test)]
mod tests {
    /// The answer's read takes the user's authenticators in order from
    /// their index: with an index on the user alone, SQLite sorted the
    /// rows in a temporary b-tree at every answer (migration 0020).
    #[tokio::test]
    async fn an_answer_reads_its_authenticators_without_sorting() {
        let (_db, pool) = crate::testing::migrated_sqlite().await;
        let sql = format!("EXPLAIN QUERY PLAN {}", super::SQL);
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind("ten_a")
            .bind("ch_1")
            .bind(-1_i64)
            .fetch_all(&pool)
            .await
            .unwrap();
        let steps: Vec<&str> = plan.iter().map(|(.., detail)| detail.as_str()).collect();
        assert!(steps.iter().any(|d| d.contains("authenticators_by_user_in_order")), "read by the index: {steps:#?}");
        assert!(steps.iter().all(|d| !d.contains("TEMP B-TREE")), "nothing sorted: {steps:#?}");
    }
}

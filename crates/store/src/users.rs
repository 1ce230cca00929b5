//! Users, authenticators, recovery codes and challenges. An answer's
//! effects — the authenticator's counter moving forward (or a recovery
//! code spent), the challenge's state, the user's lockout counters, the
//! events and audit entries — are written in one transaction, each step a
//! conditional statement, so a code is accepted once and a crash loses
//! no attempt count.

use async_trait::async_trait;
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::recovery::StoredCode;
use vouchsafe_core::authenticator::{Authenticator, AuthenticatorKind, AuthenticatorStatus, AuthenticatorUse};
use vouchsafe_core::challenge::{Challenge, ChallengeStatus, Factor};
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::event::Event;
use vouchsafe_core::ids::{AuthenticatorId, ChallengeId, TenantId, VerificationId};
use vouchsafe_core::store::{
    AnswerGate, ApprovalOutcome, FailureEffects, FailureOutcome, ImportMode, ImportOutcome, Lockout, StoreError,
    StoreResult, UserStore,
};
use vouchsafe_core::user::{Contacts, User};

use crate::audit::append_audit;
use crate::sqlite_reads::{read, row};
use crate::tx::{exec, fetch, release_savepoint, rollback_savepoint, savepoint};
use crate::webhooks::insert_event;
use crate::{SqlStore, audited, map_err, on_pool, write_tx};

macro_rules! user_columns {
    () => {
        "tenant_id, id, phone, email, display_name, privileged, failures, locked_until, created_at, updated_at"
    };
}

/// Inserts authenticator `$a` (an `&Authenticator`) on `$tx` and evaluates
/// to the rows inserted; with `unless_active`, only while its user has no
/// active authenticator of its kind (the statement itself decides).
macro_rules! insert_authenticator {
    ($tx:expr, $a:expr) => {
        insert_authenticator!(
            $tx,
            $a,
            concat!(
                "INSERT INTO authenticators (",
                authenticator_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            )
        )
    };
    ($tx:expr, $a:expr, unless_active) => {
        insert_authenticator!(
            $tx,
            $a,
            concat!(
                "INSERT INTO authenticators (",
                authenticator_columns!(),
                ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 WHERE NOT EXISTS (\
                 SELECT 1 FROM authenticators WHERE tenant_id = $2 AND user_id = $3 AND type = $4 \
                 AND status = 'active')"
            )
        )
    };
    ($tx:expr, $a:expr, $sql:expr) => {{
        let a: &Authenticator = $a;
        sqlx::query($sql)
            .bind(a.id.as_str())
            .bind(a.tenant_id.as_str())
            .bind(&a.user_id)
            .bind(a.kind.as_str())
            .bind(a.status.as_str())
            .bind(a.label.as_deref())
            .bind(a.params.to_string())
            .bind(&a.sealed)
            .bind(a.counter)
            .bind(to_unix_ms(a.created_at))
            .bind(to_unix_ms(a.updated_at))
            .bind(a.last_used_at.map(to_unix_ms))
            .execute(&mut *$tx)
            .await?
            .rows_affected()
    }};
}

row! {
    struct UserRow {
        tenant_id: String,
        id: String,
        phone: Option<String>,
        email: Option<String>,
        display_name: Option<String>,
        privileged: bool,
        failures: i64,
        locked_until: i64,
        created_at: i64,
        updated_at: i64,
    }
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            tenant_id: TenantId::from_stored(r.tenant_id),
            id: r.id,
            phone: r.phone,
            email: r.email,
            display_name: r.display_name,
            privileged: r.privileged,
            failures: u32::try_from(r.failures).unwrap_or(u32::MAX),
            locked_until: (r.locked_until > 0).then(|| from_unix_ms(r.locked_until)),
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
        }
    }
}

macro_rules! authenticator_columns {
    () => {
        "id, tenant_id, user_id, type, status, label, params, sealed, counter, created_at, updated_at, last_used_at"
    };
}

row! {
    struct AuthenticatorRow {
        id: String,
        tenant_id: String,
        user_id: String,
        kind as "type": String,
        status: String,
        label: Option<String>,
        params: String,
        sealed: Vec<u8>,
        counter: i64,
        created_at: i64,
        updated_at: i64,
        last_used_at: Option<i64>,
    }
}

impl TryFrom<AuthenticatorRow> for Authenticator {
    type Error = StoreError;

    fn try_from(r: AuthenticatorRow) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Backend(format!("authenticator {} has an unreadable {what}", r.id));
        Ok(Authenticator {
            kind: AuthenticatorKind::parse(&r.kind).ok_or_else(|| bad("type"))?,
            status: AuthenticatorStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            params: serde_json::from_str(&r.params).map_err(|_| bad("params"))?,
            id: AuthenticatorId::from_stored(r.id),
            tenant_id: TenantId::from_stored(r.tenant_id),
            user_id: r.user_id,
            label: r.label,
            sealed: r.sealed,
            counter: r.counter,
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
            last_used_at: r.last_used_at.map(from_unix_ms),
        })
    }
}

macro_rules! challenge_columns {
    () => {
        "id, tenant_id, user_id, factor, action, redirect_url, status, attempts, max_attempts, verification_id, \
         expires_at, verified_at, created_at, updated_at, passkey_options, passkey_state"
    };
}

row! {
    struct ChallengeRow {
        id: String,
        tenant_id: String,
        user_id: String,
        factor: String,
        action: String,
        redirect_url: Option<String>,
        status: String,
        attempts: i64,
        max_attempts: i64,
        verification_id: Option<String>,
        expires_at: i64,
        verified_at: Option<i64>,
        created_at: i64,
        updated_at: i64,
        passkey_options: Option<String>,
        passkey_state: Option<String>,
    }
}

impl TryFrom<ChallengeRow> for Challenge {
    type Error = StoreError;

    fn try_from(r: ChallengeRow) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Backend(format!("challenge {} has an unreadable {what}", r.id));
        Ok(Challenge {
            factor: Factor::parse(&r.factor).ok_or_else(|| bad("factor"))?,
            status: ChallengeStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            id: ChallengeId::from_stored(r.id),
            tenant_id: TenantId::from_stored(r.tenant_id),
            user_id: r.user_id,
            action: r.action,
            redirect_url: r.redirect_url,
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            max_attempts: u32::try_from(r.max_attempts).unwrap_or(0),
            verification_id: r.verification_id.map(VerificationId::from_stored),
            passkey_options: r.passkey_options,
            passkey_state: r.passkey_state,
            expires_at: from_unix_ms(r.expires_at),
            verified_at: r.verified_at.map(from_unix_ms),
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
        })
    }
}

/// Whether an approval went through, or why it stopped (then rolled back).
enum Step {
    Done,
    Stop(ApprovalOutcome),
}

/// SECURITY: locks a user whose counted failures reached the threshold and
/// who is not locked yet, writing `user.locked` (event and audit entry)
/// only when this statement set the lock: one lock, one event, however
/// many answers race. Whether it did.
async fn lock_at_threshold(
    conn: &mut crate::tx::Tx<'_>,
    key: &vouchsafe_core::audit::AuditKey,
    tenant: &str,
    user: &str,
    at: i64,
    lockout: &Lockout,
) -> Result<bool, sqlx::Error> {
    let locked = exec!(
        conn,
        "UPDATE users SET locked_until = $1, updated_at = $2 \
         WHERE tenant_id = $3 AND id = $4 AND locked_until = 0 AND failures >= $5",
        [to_unix_ms(lockout.lock_until), at, tenant, user, i64::from(lockout.threshold)]
    )?;
    if locked == 1 {
        insert_event!(conn, &lockout.locked.0, "");
        append_audit!(conn, key, tenant, &lockout.locked.1);
    }
    Ok(locked == 1)
}

#[async_trait]
impl UserStore for SqlStore {
    async fn put_user(
        &self,
        tenant: &TenantId,
        id: &str,
        contacts: &Contacts,
        privileged: bool,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<User> {
        let at = to_unix_ms(now);
        let sql = concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $7) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET phone = $3, email = $4, display_name = $5, privileged = $6, \
             updated_at = $7 RETURNING ",
            user_columns!()
        );
        let row: UserRow = on_pool!(self.db(), pool => async {
            let key = self.audit_key()?;
            let mut tx = pool.begin().await?;
            let row: UserRow = sqlx::query_as(sql)
                .bind(tenant.as_str())
                .bind(id)
                .bind(contacts.phone.as_deref())
                .bind(contacts.email.as_deref())
                .bind(contacts.display_name.as_deref())
                .bind(privileged)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
            append_audit!(tx, &key, tenant.as_str(), audit);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await)
        .map_err(map_err)?;
        Ok(row.into())
    }

    async fn user(&self, tenant: &TenantId, id: &str) -> StoreResult<User> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE tenant_id = $1 AND id = $2");
        Ok(read!(self, one UserRow, sql, [tenant.as_str(), id])?.into())
    }

    async fn delete_user(&self, tenant: &TenantId, id: &str, audit: &AuditEntry) -> StoreResult<()> {
        let deleted = on_pool!(self.db(), pool => async {
            let key = self.audit_key()?;
            let mut tx = pool.begin().await?;
            sqlx::query(
                "DELETE FROM recovery_codes WHERE authenticator_id IN \
                 (SELECT id FROM authenticators WHERE tenant_id = $1 AND user_id = $2)",
            )
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            for sql in [
                "DELETE FROM authenticators WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM challenges WHERE tenant_id = $1 AND user_id = $2",
            ] {
                sqlx::query(sql).bind(tenant.as_str()).bind(id).execute(&mut *tx).await?;
            }
            let n = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                append_audit!(tx, &key, tenant.as_str(), audit);
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(n)
        }
        .await)
        .map_err(map_err)?;
        if deleted == 1 { Ok(()) } else { Err(StoreError::NotFound) }
    }

    async fn create_authenticator(
        &self,
        a: &Authenticator,
        recovery_codes: &[StoredCode],
        replace_kind: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        on_pool!(self.db(), pool => async {
            let key = self.audit_key()?;
            let mut tx = pool.begin().await?;
            if replace_kind {
                sqlx::query(
                    "DELETE FROM recovery_codes WHERE authenticator_id IN (SELECT id FROM authenticators \
                     WHERE tenant_id = $1 AND user_id = $2 AND type = $3)",
                )
                .bind(a.tenant_id.as_str())
                .bind(&a.user_id)
                .bind(a.kind.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM authenticators WHERE tenant_id = $1 AND user_id = $2 AND type = $3")
                    .bind(a.tenant_id.as_str())
                    .bind(&a.user_id)
                    .bind(a.kind.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            insert_authenticator!(tx, a);
            for (index, code) in recovery_codes.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO recovery_codes (authenticator_id, idx, hash, lookup_tag, used_at) \
                     VALUES ($1, $2, $3, $4, NULL)",
                )
                .bind(a.id.as_str())
                .bind(i64::try_from(index).unwrap_or(i64::MAX))
                .bind(&code.hash)
                .bind(&code.tag)
                .execute(&mut *tx)
                .await?;
            }
            append_audit!(tx, &key, a.tenant_id.as_str(), audit);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        }
        .await)
        .map_err(map_err)
    }

    async fn import_authenticators(
        &self,
        tenant: &TenantId,
        items: &[Authenticator],
        mode: ImportMode,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<ImportOutcome> {
        let at = to_unix_ms(now);
        on_pool!(self.db(), pool => async {
            let key = self.audit_key()?;
            let mut tx = pool.begin().await?;
            for (index, a) in items.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO users (tenant_id, id, phone, email, display_name, privileged, failures, \
                     locked_until, created_at, updated_at) VALUES ($1, $2, NULL, NULL, NULL, FALSE, 0, 0, $3, $3) \
                     ON CONFLICT (tenant_id, id) DO NOTHING",
                )
                .bind(tenant.as_str())
                .bind(&a.user_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                // Unconfirmed left-overs always go; an active authenticator
                // only when replacing.
                let only_unconfirmed = mode == ImportMode::KeepActive;
                sqlx::query(
                    "DELETE FROM authenticators WHERE tenant_id = $1 AND user_id = $2 AND type = $3 \
                     AND ($4 = FALSE OR status <> 'active')",
                )
                .bind(tenant.as_str())
                .bind(&a.user_id)
                .bind(a.kind.as_str())
                .bind(only_unconfirmed)
                .execute(&mut *tx)
                .await?;
                // The insert itself refuses while an active one is there, so
                // an enrollment confirmed meanwhile is never overwritten.
                let inserted = insert_authenticator!(tx, a, unless_active);
                if inserted == 0 {
                    tx.rollback().await?;
                    return Ok(ImportOutcome::WouldReplace { index });
                }
            }
            append_audit!(tx, &key, tenant.as_str(), audit);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(ImportOutcome::Imported(items.len() as u64))
        }
        .await)
        .map_err(map_err)
    }

    async fn authenticators(&self, tenant: &TenantId, user: &str) -> StoreResult<Vec<Authenticator>> {
        let sql = concat!(
            "SELECT ",
            authenticator_columns!(),
            " FROM authenticators WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id"
        );
        let rows = read!(self, all AuthenticatorRow, sql, [tenant.as_str(), user])?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn authenticator(&self, tenant: &TenantId, user: &str, id: &AuthenticatorId) -> StoreResult<Authenticator> {
        let sql = concat!(
            "SELECT ",
            authenticator_columns!(),
            " FROM authenticators WHERE tenant_id = $1 AND user_id = $2 AND id = $3"
        );
        let row: AuthenticatorRow = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(tenant.as_str()).bind(user).bind(id.as_str()).fetch_one(pool).await
        )
        .map_err(map_err)?;
        row.try_into()
    }

    async fn activate_authenticator(
        &self,
        tenant: &TenantId,
        id: &AuthenticatorId,
        counter: i64,
        sealed: Option<&[u8]>,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let changed = audited!(self, tenant.as_str(), audit, pool =>
            sqlx::query(
                "UPDATE authenticators SET status = 'active', counter = $1, updated_at = $2, last_used_at = $2, \
                 sealed = COALESCE($5, sealed) \
                 WHERE tenant_id = $3 AND id = $4 AND status = 'unconfirmed' AND counter < $1",
            )
            .bind(counter)
            .bind(to_unix_ms(now))
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(sealed)
        )
        .map_err(map_err)?;
        Ok(changed == 1)
    }

    async fn advance_authenticator(
        &self,
        tenant: &TenantId,
        id: &AuthenticatorId,
        value: i64,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let changed = audited!(self, tenant.as_str(), audit, pool =>
            sqlx::query(
                "UPDATE authenticators SET counter = $1, updated_at = $2 \
                 WHERE tenant_id = $3 AND id = $4 AND status = 'active' AND counter < $1",
            )
            .bind(value)
            .bind(to_unix_ms(now))
            .bind(tenant.as_str())
            .bind(id.as_str())
        )
        .map_err(map_err)?;
        Ok(changed == 1)
    }

    async fn reseal_authenticator(&self, tenant: &TenantId, id: &AuthenticatorId, sealed: &[u8]) -> StoreResult<()> {
        on_pool!(self.db(), pool =>
            sqlx::query("UPDATE authenticators SET sealed = $1 WHERE tenant_id = $2 AND id = $3 AND status = 'active'")
                .bind(sealed)
                .bind(tenant.as_str())
                .bind(id.as_str())
                .execute(pool)
                .await
                .map(|_| ())
        )
        .map_err(map_err)
    }

    async fn delete_authenticator(
        &self,
        tenant: &TenantId,
        user: &str,
        id: &AuthenticatorId,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        on_pool!(self.db(), pool => async {
            let key = self.audit_key()?;
            let mut tx = pool.begin().await?;
            sqlx::query(
                "DELETE FROM recovery_codes WHERE authenticator_id = $1 AND authenticator_id IN \
                 (SELECT id FROM authenticators WHERE tenant_id = $2 AND user_id = $3)",
            )
            .bind(id.as_str())
            .bind(tenant.as_str())
            .bind(user)
            .execute(&mut *tx)
            .await?;
            let n = sqlx::query("DELETE FROM authenticators WHERE tenant_id = $1 AND user_id = $2 AND id = $3")
                .bind(tenant.as_str())
                .bind(user)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                append_audit!(tx, &key, tenant.as_str(), audit);
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(n)
        }
        .await)
        .map_err(map_err)
        .and_then(|n| if n == 1 { Ok(()) } else { Err(StoreError::NotFound) })
    }

    async fn unspent_recovery_codes(&self, id: &AuthenticatorId, tag: Option<&str>) -> StoreResult<Vec<(i64, String)>> {
        on_pool!(self.db(), pool =>
            sqlx::query_as(
                "SELECT idx, hash FROM recovery_codes WHERE authenticator_id = $1 AND used_at IS NULL \
                 AND ($2 = '' OR lookup_tag = $2 OR lookup_tag IS NULL) ORDER BY idx",
            )
            .bind(id.as_str())
            .bind(tag.unwrap_or(""))
            .fetch_all(pool)
            .await
        )
        .map_err(map_err)
    }

    async fn create_challenge(&self, c: &Challenge, audit: &AuditEntry) -> StoreResult<()> {
        let sql = concat!(
            "INSERT INTO challenges (",
            challenge_columns!(),
            ", token_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL)"
        );
        let (c, audit) = (c.clone(), audit.clone());
        let key = self.audit_key().map_err(map_err)?;
        write_tx!(self, [key, c, audit], conn => {
            exec!(
                conn,
                sql,
                [
                    c.id.as_str(),
                    c.tenant_id.as_str(),
                    &c.user_id,
                    c.factor.as_str(),
                    &c.action,
                    c.redirect_url.as_deref(),
                    c.status.as_str(),
                    i64::from(c.attempts),
                    i64::from(c.max_attempts),
                    c.verification_id.as_ref().map(VerificationId::as_str),
                    to_unix_ms(c.expires_at),
                    c.verified_at.map(to_unix_ms),
                    to_unix_ms(c.created_at),
                    to_unix_ms(c.updated_at),
                    c.passkey_options.as_deref(),
                    c.passkey_state.as_deref(),
                ]
            )?;
            append_audit!(conn, &key, c.tenant_id.as_str(), &audit);
            Ok::<_, sqlx::Error>(())
        })
        .map_err(map_err)
    }

    async fn challenge(&self, tenant: &TenantId, id: &ChallengeId) -> StoreResult<Challenge> {
        let sql = concat!("SELECT ", challenge_columns!(), " FROM challenges WHERE tenant_id = $1 AND id = $2");
        read!(self, one ChallengeRow, sql, [tenant.as_str(), id.as_str()])?.try_into()
    }

    async fn pending_challenge(
        &self,
        tenant: &TenantId,
        user: &str,
        action: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>> {
        let sql = concat!(
            "SELECT ",
            challenge_columns!(),
            " FROM challenges WHERE tenant_id = $1 AND user_id = $2 AND action = $3 AND status = 'pending' \
             AND expires_at > $4 ORDER BY created_at DESC LIMIT 1"
        );
        let at = to_unix_ms(now);
        read!(self, optional ChallengeRow, sql, [tenant.as_str(), user, action, at])?.map(TryInto::try_into).transpose()
    }

    async fn challenge_for_page(&self, id: &ChallengeId) -> StoreResult<Challenge> {
        let sql = concat!("SELECT ", challenge_columns!(), " FROM challenges WHERE id = $1");
        let row: ChallengeRow =
            on_pool!(self.db(), pool => sqlx::query_as(sql).bind(id.as_str()).fetch_one(pool).await)
                .map_err(map_err)?;
        row.try_into()
    }

    async fn approve_challenge(
        &self,
        c: &Challenge,
        used: Option<&AuthenticatorUse>,
        now: OffsetDateTime,
        event: &Event,
        audit: &AuditEntry,
    ) -> StoreResult<ApprovalOutcome> {
        let at = to_unix_ms(now);
        let (c, used, event, audit) = (c.clone(), used.cloned(), event.clone(), audit.clone());
        let key = self.audit_key().map_err(map_err)?;
        let step = write_tx!(self, [key, c, used, event, audit], conn => {
            // Its own savepoint: a challenge no longer pending must undo the
            // counter it already moved, and still answer, not fail.
            savepoint!(conn)?;
            let moved = match &used {
                None => 1,
                Some(AuthenticatorUse::Counter { id, value }) => exec!(
                    conn,
                    "UPDATE authenticators SET counter = $1, last_used_at = $2 \
                     WHERE tenant_id = $3 AND id = $4 AND status = 'active' AND counter < $1",
                    [*value, at, c.tenant_id.as_str(), id.as_str()]
                )?,
                Some(AuthenticatorUse::RecoveryCode { id, index }) => exec!(
                    conn,
                    "UPDATE recovery_codes SET used_at = $1 WHERE authenticator_id = $2 AND idx = $3 AND used_at IS NULL",
                    [at, id.as_str(), *index]
                )?,
            };
            if moved != 1 {
                // Nothing was changed: closing the savepoint keeps nothing.
                release_savepoint!(conn)?;
                return Ok(Step::Stop(ApprovalOutcome::Replayed));
            }
            let approved = exec!(
                conn,
                "UPDATE challenges SET status = 'approved', verified_at = $1, updated_at = $1 \
                 WHERE tenant_id = $2 AND id = $3 AND status = 'pending' AND expires_at > $1 \
                 AND attempts <= max_attempts AND NOT EXISTS (SELECT 1 FROM users u \
                   WHERE u.tenant_id = challenges.tenant_id AND u.id = challenges.user_id AND u.locked_until > $1)",
                [at, c.tenant_id.as_str(), c.id.as_str()]
            )?;
            if approved != 1 {
                rollback_savepoint!(conn)?;
                return Ok(Step::Stop(ApprovalOutcome::NotPending));
            }
            exec!(
                conn,
                "UPDATE users SET failures = 0, updated_at = $1 WHERE tenant_id = $2 AND id = $3",
                [at, c.tenant_id.as_str(), &c.user_id]
            )?;
            insert_event!(conn, &event, "");
            append_audit!(conn, &key, c.tenant_id.as_str(), &audit);
            release_savepoint!(conn)?;
            Ok::<_, sqlx::Error>(Step::Done)
        })
        .map_err(map_err)?;
        Ok(match step {
            Step::Done => ApprovalOutcome::Approved,
            Step::Stop(outcome) => outcome,
        })
    }

    async fn reserve_answer(
        &self,
        tenant: &TenantId,
        user: &str,
        challenge: Option<&ChallengeId>,
        now: OffsetDateTime,
        lockout: &Lockout,
    ) -> StoreResult<AnswerGate> {
        let at = to_unix_ms(now);
        let (tenant, user, challenge, lockout) =
            (tenant.to_string(), user.to_owned(), challenge.map(|c| c.as_str().to_owned()), lockout.clone());
        let key = self.audit_key().map_err(map_err)?;
        let gate = write_tx!(self, [key, tenant, user, challenge, lockout], conn => {
            savepoint!(conn)?;
            // A lock whose time is up is over: counting starts afresh.
            exec!(
                conn,
                "UPDATE users SET failures = 0, locked_until = 0 WHERE tenant_id = $1 AND id = $2 \
                 AND locked_until > 0 AND locked_until <= $3",
                [tenant.as_str(), user.as_str(), at]
            )?;
            let counted = fetch!(
                conn,
                optional(i64,),
                "UPDATE users SET failures = failures + 1, updated_at = $1 \
                 WHERE tenant_id = $2 AND id = $3 AND locked_until = 0 AND failures < $4 RETURNING failures",
                [at, tenant.as_str(), user.as_str(), i64::from(lockout.threshold)]
            )?;
            let Some((failures,)) = counted else {
                // Locked, or as many answers counted as the threshold allows:
                // the user is locked (now, if no answer has locked it yet).
                lock_at_threshold(conn, &key, &tenant, &user, at, &lockout).await?;
                let (until,) = fetch!(
                    conn,
                    one(i64,),
                    "SELECT locked_until FROM users WHERE tenant_id = $1 AND id = $2",
                    [tenant.as_str(), user.as_str()]
                )?;
                release_savepoint!(conn)?;
                return Ok(AnswerGate::Locked(from_unix_ms(until)));
            };
            let failures = u32::try_from(failures).unwrap_or(u32::MAX);
            let mut attempt = 0;
            if let Some(id) = &challenge {
                let taken = fetch!(
                    conn,
                    optional(i64,),
                    "UPDATE challenges SET attempts = attempts + 1, updated_at = $1 \
                     WHERE tenant_id = $2 AND id = $3 AND user_id = $4 AND status = 'pending' AND expires_at > $1 \
                     AND attempts < max_attempts RETURNING attempts",
                    [at, tenant.as_str(), id.as_str(), user.as_str()]
                )?;
                let Some((taken,)) = taken else {
                    rollback_savepoint!(conn)?;
                    return Ok(AnswerGate::NotPending);
                };
                attempt = u32::try_from(taken).unwrap_or(u32::MAX);
            }
            release_savepoint!(conn)?;
            Ok::<_, sqlx::Error>(AnswerGate::Counted { attempt, failures })
        })
        .map_err(map_err)?;
        Ok(gate)
    }

    async fn settle_wrong_answer(
        &self,
        c: &Challenge,
        attempt: u32,
        now: OffsetDateTime,
        effects: &FailureEffects,
    ) -> StoreResult<FailureOutcome> {
        let at = to_unix_ms(now);
        let select = concat!("SELECT ", challenge_columns!(), " FROM challenges WHERE tenant_id = $1 AND id = $2");
        let (c, effects) = (c.clone(), effects.clone());
        let took_last = attempt >= c.max_attempts;
        let key = self.audit_key().map_err(map_err)?;
        let (row, locked) = write_tx!(self, [key, c, effects], conn => {
            if took_last {
                // The answer that took the last attempt ends the challenge.
                let denied = exec!(
                    conn,
                    "UPDATE challenges SET status = 'denied', updated_at = $1 \
                     WHERE tenant_id = $2 AND id = $3 AND status = 'pending'",
                    [at, c.tenant_id.as_str(), c.id.as_str()]
                )?;
                if denied == 1 {
                    insert_event!(conn, &effects.denied.0, "");
                    append_audit!(conn, &key, c.tenant_id.as_str(), &effects.denied.1);
                }
            }
            let locked = lock_at_threshold(conn, &key, c.tenant_id.as_str(), &c.user_id, at, &effects.lockout).await?;
            let row = fetch!(conn, one ChallengeRow, select, [c.tenant_id.as_str(), c.id.as_str()])?;
            Ok::<_, sqlx::Error>((row, locked))
        })
        .map_err(map_err)?;
        Ok(FailureOutcome { challenge: row.try_into()?, locked_until: locked.then_some(effects.lockout.lock_until) })
    }

    async fn settle_wrong_user_answer(
        &self,
        tenant: &TenantId,
        user: &str,
        now: OffsetDateTime,
        lockout: &Lockout,
    ) -> StoreResult<Option<OffsetDateTime>> {
        let at = to_unix_ms(now);
        let (tenant, user, lockout) = (tenant.to_string(), user.to_owned(), lockout.clone());
        let key = self.audit_key().map_err(map_err)?;
        let locked = write_tx!(self, [key, tenant, user, lockout], conn => {
            lock_at_threshold(conn, &key, &tenant, &user, at, &lockout).await
        })
        .map_err(map_err)?;
        Ok(locked.then_some(lockout.lock_until))
    }

    async fn clear_user_failures(&self, tenant: &TenantId, user: &str, now: OffsetDateTime) -> StoreResult<()> {
        let at = to_unix_ms(now);
        let (tenant, user) = (tenant.to_string(), user.to_owned());
        write_tx!(self, [tenant, user], conn => {
            exec!(
                conn,
                "UPDATE users SET failures = 0, updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND locked_until = 0",
                [at, tenant.as_str(), user.as_str()]
            )
        })
        .map_err(map_err)?;
        Ok(())
    }

    async fn expire_challenge(&self, tenant: &TenantId, id: &ChallengeId, now: OffsetDateTime) -> StoreResult<bool> {
        let at = to_unix_ms(now);
        let changed = on_pool!(self.db(), pool =>
            sqlx::query(
                "UPDATE challenges SET status = 'expired', updated_at = $1 WHERE tenant_id = $2 AND id = $3 \
                 AND status = 'pending' AND expires_at <= $1",
            )
            .bind(at)
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        )
        .map_err(map_err)?;
        Ok(changed == 1)
    }

    async fn redeem_challenge_token(
        &self,
        tenant: &TenantId,
        id: &ChallengeId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>> {
        let sql = concat!(
            "UPDATE challenges SET token_used_at = $1 WHERE tenant_id = $2 AND id = $3 AND status = 'approved' \
             AND token_used_at IS NULL RETURNING ",
            challenge_columns!()
        );
        let row: Option<ChallengeRow> = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(to_unix_ms(now)).bind(tenant.as_str()).bind(id.as_str()).fetch_optional(pool).await
        )
        .map_err(map_err)?;
        row.map(TryInto::try_into).transpose()
    }
}

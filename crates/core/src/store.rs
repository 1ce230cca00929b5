//! The storage contract. The `store` crate implements it over SQLite and
//! PostgreSQL; the server only ever sees this trait. Every method is one
//! statement or one transaction, and every state change that can race is a
//! conditional write (`… WHERE version = ?`), never a read-modify-write.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::api_key::{ApiKey, NewApiKey};
use crate::audit::{AuditEntry, AuditEvent};
use crate::authenticator::{Authenticator, AuthenticatorKind, AuthenticatorUse};
use crate::caller::{CallerMethod, CallerStatus, CallerVerification};
use crate::challenge::Challenge;
use crate::channel::Channel;
use crate::delivery::Delivery;
use crate::event::{Event, EventType};
use crate::fraud::SendCounter;
use crate::ids::{
    ApiKeyId, AttemptId, AuthenticatorId, CallerVerificationId, ChallengeId, DeliveryId, EventId, MessageId, ServiceId,
    TenantId, VerificationId, WebhookEndpointId,
};
use crate::provider::{CredentialInfo, ProviderConfig};
use crate::service::Service;
use crate::settings::Settings;
use crate::tenant::Tenant;
use crate::user::{Contacts, User};
use crate::verification::Verification;
use crate::webhook::WebhookEndpoint;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique name or value is taken.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The tenant already has as many of these as it may (a bound kept in
    /// `core`, counted inside the write that would add one); nothing was
    /// written.
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// A conditional update found the row changed since it was read.
    #[error("changed since it was read")]
    Stale,
    /// A stored row does not read back as a value (damaged, or written by
    /// a newer version): an error, never a silent default.
    #[error("damaged row: {0}")]
    Damaged(String),
    /// The database failed; the cause is for logs, never for clients.
    #[error("database error")]
    Backend(#[source] crate::error::BoxError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A value with the version it was read at, for conditional updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: i64,
}

/// A tenant's settings and one of its services, as one read found them.
#[derive(Debug, Clone)]
pub struct SettingsAndService {
    pub settings: Versioned<Settings>,
    pub service: Service,
    /// Whether the service is the tenant's default one.
    pub is_default: bool,
    /// The version of the tenant's providers, as the same read found it:
    /// a send made for this request asks for them at this version.
    pub providers_version: i64,
}

/// A tenant's providers as a send needs them: in the order they are
/// tried, with the credentials they name still sealed (opened only when a
/// provider is tried), all as one read found them at `version`.
#[derive(Debug, Clone, Default)]
pub struct ProvidersToSend {
    pub version: i64,
    pub providers: Vec<ProviderConfig>,
    /// Sealed credentials by name, of the providers that name one.
    pub sealed: std::collections::HashMap<String, Vec<u8>>,
}

/// Everything the server needs from storage, one sub-trait per concern.
pub trait Store:
    MetaStore
    + TenantStore
    + ServiceStore
    + ApiKeyStore
    + AuditStore
    + WebhookStore
    + ProviderStore
    + VerificationStore
    + DeliveryStore
    + UserStore
    + CallerStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: MetaStore
        + TenantStore
        + ServiceStore
        + ApiKeyStore
        + AuditStore
        + WebhookStore
        + ProviderStore
        + VerificationStore
        + DeliveryStore
        + UserStore
        + CallerStore
        + Send
        + Sync
        + 'static
{
}

#[async_trait]
pub trait MetaStore {
    /// Whether the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// The master-key check value stored at first start, if any.
    async fn key_check(&self) -> StoreResult<Option<String>>;
    /// Stores the check value unless one is stored already.
    async fn init_key_check(&self, value: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait TenantStore {
    /// Creates a tenant with its default service (whose id the tenant names)
    /// and settings, atomically.
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        default_service: &Service,
        settings: &Settings,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn tenant(&self, id: &TenantId) -> StoreResult<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Tenant>;
    async fn settings(&self, tenant: &TenantId) -> StoreResult<Versioned<Settings>>;
    /// A tenant's settings with one of its services (its default one when
    /// `service` is `None`), in one read: one statement, one round trip on
    /// PostgreSQL. `NotFound` when the tenant or the service is not there.
    async fn settings_and_service(
        &self,
        tenant: &TenantId,
        service: Option<&ServiceId>,
    ) -> StoreResult<SettingsAndService>;
    /// Replaces the settings if they are still at `expected_version`
    /// (`Stale` otherwise, and the caller re-reads and retries).
    async fn replace_settings(
        &self,
        tenant: &TenantId,
        settings: &Settings,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait ServiceStore {
    /// `LimitReached` once the tenant has `SERVICES_PER_TENANT`;
    /// `Conflict` when the name is taken.
    async fn create_service(&self, service: &Service, audit: &AuditEntry) -> StoreResult<()>;
    async fn service(&self, tenant: &TenantId, id: &ServiceId) -> StoreResult<Versioned<Service>>;
    async fn service_by_name(&self, tenant: &TenantId, name: &str) -> StoreResult<Service>;
    async fn list_services(&self, tenant: &TenantId) -> StoreResult<Vec<Service>>;
    /// Replaces a service if it is still at `expected_version`.
    async fn replace_service(&self, service: &Service, expected_version: i64, audit: &AuditEntry) -> StoreResult<()>;
    async fn delete_service(&self, tenant: &TenantId, id: &ServiceId, audit: &AuditEntry) -> StoreResult<()>;
}

#[async_trait]
pub trait ApiKeyStore {
    /// `LimitReached` once the tenant holds `API_KEYS_PER_TENANT` keys,
    /// revoked ones not yet dropped among them.
    async fn create_api_key(&self, key: &NewApiKey, audit: &AuditEntry) -> StoreResult<()>;
    /// The unrevoked key whose secret hashes to `secret_hash`.
    async fn api_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> StoreResult<ApiKey>;
    async fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key; it stops working with the next request.
    async fn revoke_api_key(&self, tenant: &TenantId, id: &ApiKeyId, audit: &AuditEntry) -> StoreResult<()>;
    /// Drops keys revoked at or before `before`, of every tenant; how many.
    async fn prune_revoked_api_keys(&self, before: OffsetDateTime) -> StoreResult<u64>;

    /// Starts an agent console session (stored by the keyed hash of its token).
    async fn create_console_session(&self, session: &ConsoleSession) -> StoreResult<()>;
    /// The session whose token hashes to `id_hash`, if it was not ended.
    async fn console_session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>>;
    /// Ends a session at once (signing out).
    async fn end_console_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Drops sessions that expired before `now`; how many.
    async fn prune_console_sessions(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// An agent console session: which key signed in, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id_hash: String,
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// Every audited change is appended in the same transaction as the change
/// itself (the methods above take an [`AuditEntry`]); this reads it back.
#[async_trait]
pub trait AuditStore {
    /// Events with `seq > after`, oldest first, at most `limit`.
    async fn audit_events(&self, tenant: &TenantId, after: i64, limit: i64) -> StoreResult<Vec<AuditEvent>>;
    /// The last sequence number handed out (0 before the first event).
    async fn audit_head(&self, tenant: &TenantId) -> StoreResult<i64>;
    /// Gives every tenant's entries that were written with their change
    /// but not yet chained their sequence numbers and HMACs (the reads
    /// above chain their own tenant first); how many. Every server calls
    /// it in the background, a few times a second.
    async fn chain_audit(&self) -> StoreResult<u64>;
    /// Once, right after the migration that keyed the chains: appends
    /// `entry` to every tenant's chain that ends on an unkeyed event, so
    /// its keyed HMAC pins that past (once per chain, however many
    /// processes race). Afterwards it does nothing: a chain rewritten
    /// unkeyed later is reported, never pinned. How many chains it pinned.
    async fn pin_unkeyed_chains(&self, entry: &AuditEntry) -> StoreResult<u64>;
}

/// An endpoint's signing secrets, sealed with the master key.
#[derive(Debug, Clone)]
pub struct SealedSecrets {
    pub current: Vec<u8>,
    /// The secret replaced by the last rotation, still signed with until
    /// the instant given.
    pub previous: Option<(Vec<u8>, OffsetDateTime)>,
}

/// A message claimed by one dispatcher: everything needed to send it.
#[derive(Debug, Clone)]
pub struct DueMessage {
    pub id: MessageId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub tenant_id: TenantId,
    pub endpoint_id: WebhookEndpointId,
    pub url: String,
    pub body: String,
    /// Attempts made so far, this one included.
    pub attempts: u32,
    /// The lease this dispatcher holds; finishing is conditional on it.
    pub lease: i64,
    pub secrets: SealedSecrets,
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOutcome {
    Delivered,
    RetryAt(OffsetDateTime),
    /// The schedule is used up: dead-lettered.
    Dead,
    /// The endpoint answered `410 Gone`: the message ends and the endpoint
    /// is disabled.
    Gone,
}

impl MessageOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::RetryAt(_) => "failed",
            Self::Dead => "dead",
            Self::Gone => "gone",
        }
    }
}

/// A message with the outcome of its attempt, ready to be recorded.
#[derive(Debug, Clone)]
pub struct Finished {
    pub message: DueMessage,
    pub outcome: MessageOutcome,
    pub attempt: Attempt,
}

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: AttemptId,
    pub message_id: MessageId,
    pub tenant_id: TenantId,
    pub endpoint_id: WebhookEndpointId,
    pub event_id: EventId,
    pub event_type: String,
    pub attempt: u32,
    pub at: OffsetDateTime,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// `delivered`, `failed`, `dead` or `gone`.
    pub outcome: String,
}

#[async_trait]
pub trait WebhookStore {
    /// Stores `endpoint` unless its tenant already has `limit` endpoints
    /// (enabled or not), counted inside the write that stores it, so that
    /// concurrent creations cannot pass the limit together: then
    /// `LimitReached`, and nothing is stored.
    async fn create_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        sealed_secret: &[u8],
        audit: &AuditEntry,
        limit: u32,
    ) -> StoreResult<()>;
    async fn webhook_endpoint(&self, tenant: &TenantId, id: &WebhookEndpointId) -> StoreResult<WebhookEndpoint>;
    async fn list_webhook_endpoints(&self, tenant: &TenantId) -> StoreResult<Vec<WebhookEndpoint>>;
    /// Saves url, description, events, enabled and disabled_reason.
    async fn update_webhook_endpoint(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()>;
    /// Deletes an endpoint with its pending messages and its delivery log.
    async fn delete_webhook_endpoint(
        &self,
        tenant: &TenantId,
        id: &WebhookEndpointId,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn webhook_secrets(&self, tenant: &TenantId, id: &WebhookEndpointId) -> StoreResult<SealedSecrets>;
    /// Makes `sealed_secret` current; the old one stays valid until `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        tenant: &TenantId,
        id: &WebhookEndpointId,
        sealed_secret: &[u8],
        previous_until: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// Stores an event and one message per enabled endpoint that wants it,
    /// in one transaction. (Changes that cause events do the same inside
    /// their own transaction.)
    async fn enqueue_event(&self, event: &Event, only_endpoint: Option<&WebhookEndpointId>) -> StoreResult<usize>;
    /// A test event, in one transaction: finds `endpoint` in the event's
    /// tenant (`NotFound` if it is not there), refuses it if disabled,
    /// counts it against `counter` (the endpoint's hourly limit) and,
    /// within the limit, stores `event` with one message for the endpoint
    /// (whatever its filter). The endpoint is checked inside the write, not
    /// before it: a refused test counts and queues nothing, and a queued
    /// one is counted. Answers the messages queued.
    async fn queue_test_event(
        &self,
        counter: &SendCounter,
        event: &Event,
        endpoint: &WebhookEndpointId,
        now: OffsetDateTime,
    ) -> StoreResult<Result<usize, TestEventRefusal>>;
    /// Claims up to `limit` due messages of enabled endpoints, leasing them
    /// until `lease_until`. A message is claimed by one caller at a time.
    /// Claims keep the fair shares of `webhook::IN_FLIGHT_PER_ENDPOINT` and
    /// `IN_FLIGHT_PER_TENANT` (leased messages are in flight) and take
    /// tenants in turns.
    async fn claim_due_messages(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> StoreResult<Vec<DueMessage>>;
    /// Records attempts and moves each message on while its lease is still
    /// ours, all in one transaction (one durable commit for a whole batch).
    async fn finish_messages(&self, finished: &[Finished]) -> StoreResult<()>;
    /// [`WebhookStore::finish_messages`] then [`WebhookStore::claim_due_messages`]
    /// in one transaction: the leases the outcomes end are free again for
    /// the claim, so a dispatcher reuses its slots in the write that
    /// records them. Durable when there are outcomes to write.
    async fn finish_and_claim(
        &self,
        finished: &[Finished],
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> StoreResult<Vec<DueMessage>>;
    /// Attempts to one endpoint, newest first, before the attempt `before`.
    async fn webhook_attempts(
        &self,
        tenant: &TenantId,
        endpoint: &WebhookEndpointId,
        before: Option<&AttemptId>,
        limit: i64,
    ) -> StoreResult<Vec<Attempt>>;
    /// Messages waiting to be delivered (all tenants), for the metrics.
    async fn outbox_depth(&self) -> StoreResult<i64>;
}

#[async_trait]
pub trait ProviderStore {
    /// Creates or replaces a credential (sealed by the caller).
    async fn put_credential(
        &self,
        tenant: &TenantId,
        name: &str,
        kind: &str,
        sealed: &[u8],
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<CredentialInfo>;
    async fn list_credentials(&self, tenant: &TenantId) -> StoreResult<Vec<CredentialInfo>>;
    async fn sealed_credential(&self, tenant: &TenantId, name: &str) -> StoreResult<Vec<u8>>;
    /// Deletes a credential; `Conflict` while a provider refers to it.
    async fn delete_credential(&self, tenant: &TenantId, name: &str, audit: &AuditEntry) -> StoreResult<()>;
    /// Creates or replaces a provider (keeping its `created_at`); `NotFound`
    /// when it names a credential that does not exist. Returns it as stored.
    async fn put_provider(&self, provider: &ProviderConfig, audit: &AuditEntry) -> StoreResult<ProviderConfig>;
    /// Every provider of the tenant, in the order they are tried.
    async fn list_providers(&self, tenant: &TenantId) -> StoreResult<Vec<ProviderConfig>>;
    /// The tenant's providers for a send, at version `seen`, the one the
    /// caller's read of the settings found in this request: served without
    /// a read while that version is kept, else read now.
    async fn providers_to_send(&self, tenant: &TenantId, seen: i64) -> StoreResult<std::sync::Arc<ProvidersToSend>>;
    async fn delete_provider(&self, tenant: &TenantId, name: &str, audit: &AuditEntry) -> StoreResult<()>;
}

/// Whether an imported token may take the place of an active one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// A user's active authenticator of the same kind stays; the import refuses.
    KeepActive,
    /// It is replaced (`authenticators import --replace`).
    Replace,
}

/// What one import batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported(u64),
    /// Nothing was written: item `index` of the batch would have replaced
    /// its user's active authenticator.
    WouldReplace {
        index: usize,
    },
}

/// Why a test event was not queued (an endpoint not found is `NotFound`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestEventRefusal {
    /// The endpoint is disabled.
    Disabled,
    /// Its hourly limit of test events is reached.
    Limited(SendRefusal),
}

/// Why a send was refused by a limit; each carries its `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendRefusal {
    /// Inside `resend_cooldown_s` of the last send.
    Cooldown { retry_after_s: u64 },
    /// `max_sends` reached within `send_window_s`.
    MaxSends { retry_after_s: u64 },
    /// An hourly fraud limit (`scope`: destination, prefix or tenant).
    Fraud { scope: &'static str, retry_after_s: u64 },
}

/// A fresh code for a pending verification, and the limits it must pass.
#[derive(Debug, Clone)]
pub struct Resend {
    pub tenant_id: TenantId,
    pub id: VerificationId,
    pub code_hash: String,
    pub channel: Channel,
    pub locale: Option<String>,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub max_sends: u32,
    pub send_window_ms: i64,
    pub cooldown_ms: i64,
}

/// A verification as a check of a code by id found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadForCheck {
    /// The code was wrong and left an attempt over: counted by the statement
    /// that found the verification. The verification after counting.
    CountedWrong(Verification),
    /// Nothing written: the verification as it stood, for the check to
    /// judge the code (approve it, count it, or answer a settled state).
    Read(Verification),
}

/// Verifications. Every state change is one conditional statement, so a
/// code is approved at most once however many checks race on any nodes.
#[async_trait]
pub trait VerificationStore {
    /// Inserts a pending verification and counts its first send, all or
    /// nothing. A pending verification for the same service and `to` that
    /// is past its expiry is marked expired first; one still live makes
    /// this `Conflict` (resend on it instead).
    async fn create_verification(
        &self,
        verification: &Verification,
        counters: &[SendCounter],
    ) -> StoreResult<Result<(), SendRefusal>>;
    /// Puts a fresh code on a pending verification if the cooldown and
    /// send limits allow, and counts the send. `NotFound` when it is no
    /// longer pending.
    async fn resend_verification(
        &self,
        resend: &Resend,
        counters: &[SendCounter],
    ) -> StoreResult<Result<Verification, SendRefusal>>;
    async fn verification(&self, tenant: &TenantId, id: &VerificationId) -> StoreResult<Verification>;
    /// The verification a check of a code names by id. Where one statement
    /// can both find it and count (PostgreSQL), a code whose keyed hash is
    /// not `candidate` (`None`: not a code at all) is counted there, when
    /// it leaves an attempt over, as `record_wrong_code` would count it:
    /// the common wrong code costs one round trip, not two. Anything else
    /// (the right code, the last attempt, a settled verification, or an
    /// engine where a read is cheaper than a write) is `Read`, unchanged.
    async fn verification_for_check(
        &self,
        tenant: &TenantId,
        id: &VerificationId,
        candidate: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<ReadForCheck>;
    /// The pending verification in a service of the destination whose
    /// match key (`Destination::match_key`) is `key`, else its newest one.
    async fn verification_by_to(
        &self,
        tenant: &TenantId,
        service: &ServiceId,
        key: &str,
    ) -> StoreResult<Option<Verification>>;
    /// Approves if still pending, unexpired, under its attempt limit and
    /// still holding `code_hash`; stores `event` and `audit` with it.
    /// `false` when another check got there first (or the state moved on).
    async fn approve_verification(
        &self,
        verification: &Verification,
        now: OffsetDateTime,
        event: &Event,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// Counts a wrong code on a pending, unexpired verification, moving it
    /// to `max_attempts_reached` with the last allowed one (and then
    /// appending `audit`). `None` when it was not pending.
    async fn record_wrong_code(
        &self,
        tenant: &TenantId,
        id: &VerificationId,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Verification>>;
    /// Ends a pending verification as `canceled` or `expired` (`expired`
    /// only once its time is up). `false` when it was not pending.
    async fn end_verification(
        &self,
        tenant: &TenantId,
        id: &VerificationId,
        canceled: bool,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// After every provider failed: lets the next start resend at once
    /// (the failed send still counts toward the limits).
    async fn clear_cooldown(&self, tenant: &TenantId, id: &VerificationId, send_count: u32) -> StoreResult<()>;
    /// Counts one send against the fraud limits (deliveries), all or nothing.
    async fn count_sends(&self, counters: &[SendCounter], now: OffsetDateTime) -> StoreResult<Result<(), SendRefusal>>;
    /// Drops send counters of buckets that started before `before_ms`.
    async fn prune_send_counters(&self, before_ms: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait DeliveryStore {
    /// Records a delivery, with its `delivery.failed` event if it failed.
    async fn record_delivery(&self, delivery: &Delivery, event: Option<&Event>) -> StoreResult<()>;
    async fn delivery(&self, tenant: &TenantId, id: &DeliveryId) -> StoreResult<Delivery>;
    /// Every send of a verification, oldest first.
    async fn deliveries_of_verification(&self, tenant: &TenantId, id: &VerificationId) -> StoreResult<Vec<Delivery>>;
    /// A delivery by id alone, for provider callbacks (which then prove
    /// they come from the provider with its credential).
    async fn delivery_for_callback(&self, id: &DeliveryId) -> StoreResult<Delivery>;
    /// Records a provider's receipt on a `sent` delivery (status, error),
    /// with its event. `false` when the delivery had already settled.
    async fn record_receipt(&self, delivery: &Delivery, event: Option<&Event>) -> StoreResult<bool>;
}

/// What an approval found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOutcome {
    /// Approved: the challenge as the approving statement wrote it.
    Approved(Box<Challenge>),
    /// The authenticator was already used this far (a replayed code).
    Replayed,
    /// The challenge was no longer pending (answered, denied or expired).
    NotPending,
}

/// A failed answer: what it did to the challenge and the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureOutcome {
    pub challenge: Challenge,
    /// Set when this failure locked the user, until then.
    pub locked_until: Option<OffsetDateTime>,
}

/// The lockout rule as one answer meets it: how many counted answers lock
/// the user, until when, and whose answer it is (what a lock writes). The
/// `user.locked` event and audit entry are written only by the statement
/// that sets the lock, so one lock emits one event however many answers
/// race; they are built only then ([`Lockout::locked`]), since nearly
/// every answer locks no one.
#[derive(Debug, Clone)]
pub struct Lockout {
    pub threshold: u32,
    pub lock_until: OffsetDateTime,
    pub tenant: TenantId,
    pub user: String,
    /// The challenge answered, if the answer was to one.
    pub challenge: Option<ChallengeId>,
    /// Who answered, as the audit entry names them.
    pub actor: String,
    pub at: OffsetDateTime,
}

impl Lockout {
    /// Whether this is an answer to challenge `c` (its tenant, its user,
    /// the challenge itself).
    pub fn answers(&self, c: &Challenge) -> bool {
        self.tenant == c.tenant_id && self.user == c.user_id && self.challenge.as_ref() == Some(&c.id)
    }

    /// The `user.locked` event and audit entry of this lock.
    pub fn locked(&self) -> (Event, AuditEntry) {
        let mut body = serde_json::json!({
            "user_id": self.user,
            "locked_until": crate::clock::rfc3339(self.lock_until),
        });
        if let Some(id) = &self.challenge {
            body["challenge_id"] = serde_json::json!(id.as_str());
        }
        (
            Event::new(self.tenant.clone(), EventType::UserLocked, body, self.at),
            AuditEntry::new(&self.actor, "user.locked", format!("user:{}", self.user), "locked", self.at),
        )
    }
}

/// Events and audit entries a failure may need, decided by the caller.
#[derive(Debug, Clone)]
pub struct FailureEffects {
    pub lockout: Lockout,
    pub denied: (Event, AuditEntry),
}

/// A challenge as an answer to it finds it (see
/// [`UserStore::challenge_to_answer`]). The authenticators are as read
/// before the answer is counted: what an approval uses of them is checked
/// again inside the statement that approves.
#[derive(Debug, Clone)]
pub struct ChallengeToAnswer {
    pub challenge: Challenge,
    pub settings: Versioned<Settings>,
    pub authenticators: Vec<Authenticator>,
}

/// Whether an answer may be evaluated, decided (and counted) before it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerGate {
    /// Counted against the user (and the challenge, if any): the answer
    /// may be evaluated. `attempt` is the challenge's attempt it took (1
    /// for the first), 0 without a challenge; `failures` the user's count
    /// with this answer in it. Only a wrong answer that took the last
    /// attempt or reached the threshold has anything left to write.
    Counted { attempt: u32, failures: u32 },
    /// The user is locked out until then (this answer counted nothing).
    Locked(OffsetDateTime),
    /// The challenge is answered, denied, expired or out of attempts.
    NotPending,
}

/// Users, their authenticators, and challenges. Authenticator counters,
/// challenge states and lockout counters change only by conditional
/// writes, in the same transaction as the events they cause.
#[async_trait]
pub trait UserStore {
    /// Creates or updates a user's contacts and flag (lockout state kept).
    async fn put_user(
        &self,
        tenant: &TenantId,
        id: &str,
        contacts: &Contacts,
        privileged: bool,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<User>;
    async fn user(&self, tenant: &TenantId, id: &str) -> StoreResult<User>;
    /// Deletes a user with every authenticator and challenge.
    async fn delete_user(&self, tenant: &TenantId, id: &str, audit: &AuditEntry) -> StoreResult<()>;

    /// Adds an authenticator (with its recovery-code hashes, if any). With
    /// `replace_kind`, the user's other authenticators of the same kind are
    /// removed in the same transaction (a new set of recovery codes revokes
    /// the old one). `LimitReached` once the user has
    /// `AUTHENTICATORS_PER_USER`, unconfirmed ones among them.
    async fn create_authenticator(
        &self,
        authenticator: &Authenticator,
        recovery_codes: &[crate::authenticator::recovery::StoredCode],
        replace_kind: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Imports active authenticators in one transaction: each one's user is
    /// created if missing (without contacts), the user's unconfirmed
    /// authenticator of the same kind is replaced, and one audit entry
    /// covers the batch. An active one of the same kind is replaced only
    /// under `ImportMode::Replace`; otherwise the statement that inserts
    /// refuses, and the whole batch is rolled back.
    async fn import_authenticators(
        &self,
        tenant: &TenantId,
        items: &[Authenticator],
        mode: ImportMode,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<ImportOutcome>;
    /// Which of `users` have an active authenticator, and of which kind:
    /// one `(user, kind)` per such authenticator, in no order. One read
    /// for the whole list (an import checks its users before writing).
    async fn active_authenticators_among(
        &self,
        tenant: &TenantId,
        users: &[String],
    ) -> StoreResult<Vec<(String, AuthenticatorKind)>>;
    async fn authenticators(&self, tenant: &TenantId, user: &str) -> StoreResult<Vec<Authenticator>>;
    async fn authenticator(&self, tenant: &TenantId, user: &str, id: &AuthenticatorId) -> StoreResult<Authenticator>;
    /// Unconfirmed → active, moving the counter forward (the confirming
    /// code's step is used up). `false` if it was not unconfirmed.
    async fn activate_authenticator(
        &self,
        tenant: &TenantId,
        id: &AuthenticatorId,
        counter: i64,
        sealed: Option<&[u8]>,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// Moves an active authenticator's counter forward to `value` (HOTP
    /// resynchronisation). `false` if it was already there or beyond.
    async fn advance_authenticator(
        &self,
        tenant: &TenantId,
        id: &AuthenticatorId,
        value: i64,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// Replaces an active authenticator's sealed secret (a passkey's
    /// signature counter after a use).
    async fn reseal_authenticator(&self, tenant: &TenantId, id: &AuthenticatorId, sealed: &[u8]) -> StoreResult<()>;
    async fn delete_authenticator(
        &self,
        tenant: &TenantId,
        user: &str,
        id: &AuthenticatorId,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Unspent recovery codes of a set: (index, Argon2id hash).
    /// With a lookup tag, only the codes it may be (and untagged ones,
    /// from sets made before tags); without, every unspent code.
    async fn unspent_recovery_codes(&self, id: &AuthenticatorId, tag: Option<&str>) -> StoreResult<Vec<(i64, String)>>;

    async fn create_challenge(&self, challenge: &Challenge, audit: &AuditEntry) -> StoreResult<()>;
    async fn challenge(&self, tenant: &TenantId, id: &ChallengeId) -> StoreResult<Challenge>;
    /// A challenge with what an answer to it reads — its tenant's settings
    /// and its user's authenticators (every one, in the order
    /// `authenticators` lists them) — in one read: one statement, one
    /// round trip on PostgreSQL.
    async fn challenge_to_answer(&self, tenant: &TenantId, id: &ChallengeId) -> StoreResult<ChallengeToAnswer>;
    /// The newest pending, unexpired challenge of a user for `action`.
    async fn pending_challenge(
        &self,
        tenant: &TenantId,
        user: &str,
        action: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>>;
    /// A challenge by its id alone, for the hosted page (whose URL holds the
    /// unguessable id and no API key).
    async fn challenge_for_page(&self, id: &ChallengeId) -> StoreResult<Challenge>;
    /// In one transaction: uses the authenticator (conditionally), approves
    /// the pending challenge, resets the user's failures, stores the event
    /// and the audit entry.
    async fn approve_challenge(
        &self,
        challenge: &Challenge,
        used: Option<&AuthenticatorUse>,
        now: OffsetDateTime,
        event: &Event,
        audit: &AuditEntry,
    ) -> StoreResult<ApprovalOutcome>;
    /// SECURITY: counts an answer before it is evaluated, so expensive or
    /// parallel answers cannot outrun the limits. In one transaction: a
    /// lock whose time is up is lifted; one failure is added to the user
    /// only if unlocked and below the threshold (a user at the threshold
    /// is locked here, with its event once); one attempt is added to the
    /// pending, unexpired challenge (if any) only below its limit. Nothing
    /// is counted unless both are. A right answer later clears the user's
    /// failures in the statement that approves. Whose answer it is (tenant,
    /// user, challenge, time) is the `lockout`'s, so the count and the lock
    /// it may write can never name two different answers.
    async fn reserve_answer(&self, lockout: &Lockout) -> StoreResult<AnswerGate>;
    /// For an answer already found right (a code checked against the
    /// user's own authenticators, which costs no more than counting it):
    /// [`UserStore::reserve_answer`] for `challenge` and, only if that
    /// counted it, [`UserStore::approve_challenge`] with `used` and the
    /// approval's event and audit entry, in one transaction where the
    /// engine allows (SQLite's writer: one durable commit, not two). The
    /// approval's outcome is `None` when nothing was counted. The answer
    /// is `lockout`'s, at its time; it must name `challenge` (else this
    /// fails with `Conflict` and writes nothing).
    async fn reserve_and_approve(
        &self,
        challenge: &Challenge,
        lockout: &Lockout,
        used: Option<&AuthenticatorUse>,
        approved: (&Event, &AuditEntry),
    ) -> StoreResult<(AnswerGate, Option<ApprovalOutcome>)>;
    /// After a counted answer proved wrong: denies the challenge if this
    /// answer took its last attempt, and locks the user if the failures
    /// reached the threshold, each with its events once.
    async fn settle_wrong_answer(
        &self,
        challenge: &Challenge,
        attempt: u32,
        now: OffsetDateTime,
        effects: &FailureEffects,
    ) -> StoreResult<FailureOutcome>;
    /// The same for an answer with no challenge (the caller page's
    /// factor): locks the user at the threshold; the lock's end, if this
    /// answer set it. Whose answer it is, and when, is the `lockout`'s.
    async fn settle_wrong_user_answer(&self, lockout: &Lockout) -> StoreResult<Option<OffsetDateTime>>;
    /// After a right answer with no challenge: the user's failures start
    /// again from zero.
    async fn clear_user_failures(&self, tenant: &TenantId, user: &str, now: OffsetDateTime) -> StoreResult<()>;
    /// Marks an expired pending challenge `expired`.
    async fn expire_challenge(&self, tenant: &TenantId, id: &ChallengeId, now: OffsetDateTime) -> StoreResult<bool>;
    /// Redeems the result token of an approved challenge, once.
    async fn redeem_challenge_token(
        &self,
        tenant: &TenantId,
        id: &ChallengeId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>>;
}

/// Caller verifications. Every ending is one conditional statement on a
/// pending row, with its `caller_verification.completed` event and audit
/// entry in the same transaction.
#[async_trait]
pub trait CallerStore {
    async fn create_caller_verification(&self, cv: &CallerVerification, audit: &AuditEntry) -> StoreResult<()>;
    async fn caller_verification(
        &self,
        tenant: &TenantId,
        id: &CallerVerificationId,
    ) -> StoreResult<CallerVerification>;
    /// By the keyed hash of its link token (the customer's page).
    async fn caller_verification_by_link(&self, link_hash: &str) -> StoreResult<CallerVerification>;
    /// Ends a pending verification as `status`, with its
    /// `completed_event(now, method)`. `Expired` requires its time to be
    /// up; the others require it not to be. `None` if it was not pending.
    async fn end_caller_verification(
        &self,
        tenant: &TenantId,
        id: &CallerVerificationId,
        status: CallerStatus,
        now: OffsetDateTime,
        method: Option<CallerMethod>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<CallerVerification>>;
    /// Counts a wrong code read to the agent; the last allowed one fails
    /// the verification (with its `completed_event(now, method)`). `None`
    /// if it was not pending.
    async fn caller_wrong_code(
        &self,
        tenant: &TenantId,
        id: &CallerVerificationId,
        now: OffsetDateTime,
        method: Option<CallerMethod>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<CallerVerification>>;
    /// Pending verifications past their time (all tenants), for the sweeper.
    async fn due_caller_verifications(&self, now: OffsetDateTime, limit: i64) -> StoreResult<Vec<CallerVerification>>;
    /// A record's caller verifications, newest first.
    async fn record_transactions(
        &self,
        tenant: &TenantId,
        record_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<CallerVerification>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outcomes as attempt records and metrics name them.
    #[test]
    fn message_outcomes_keep_their_names() {
        let retry = MessageOutcome::RetryAt(OffsetDateTime::UNIX_EPOCH);
        let names: Vec<_> = [MessageOutcome::Delivered, retry, MessageOutcome::Dead, MessageOutcome::Gone]
            .map(MessageOutcome::as_str)
            .into();
        assert_eq!(names, ["delivered", "failed", "dead", "gone"]);
    }

    /// A lock's event and audit entry name the user, the lock's end and
    /// the challenge answered (when there was one), at the answer's time.
    #[test]
    fn a_lock_writes_what_its_answer_met() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let challenge = ChallengeId::generate();
        let mut lockout = Lockout {
            threshold: 3,
            lock_until: at + time::Duration::seconds(300),
            tenant: TenantId::from_stored("ten_a".into()),
            user: "u1".into(),
            challenge: Some(challenge.clone()),
            actor: "key_a".into(),
            at,
        };
        let (event, audit) = lockout.locked();
        assert_eq!(
            (event.event_type, event.tenant_id.as_str(), event.created_at),
            (EventType::UserLocked, "ten_a", at)
        );
        let expected = serde_json::json!({
            "user_id": "u1",
            "locked_until": "2023-11-14T22:18:20Z",
            "challenge_id": challenge.as_str(),
        });
        let body: serde_json::Value = serde_json::from_str(event.body()).unwrap();
        assert_eq!(body["data"], expected);
        let named = (audit.actor.as_str(), audit.action.as_str(), audit.target.as_str(), audit.outcome.as_str());
        assert_eq!((named, audit.at), (("key_a", "user.locked", "user:u1", "locked"), at));
        lockout.challenge = None;
        let body: serde_json::Value = serde_json::from_str(lockout.locked().0.body()).unwrap();
        assert_eq!(body["data"].get("challenge_id"), None, "no challenge, no id");
    }
}

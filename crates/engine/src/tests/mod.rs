//! The engine's own tests: use cases run on a real store (the engine
//! `TEST_DB` names, SQLite by default) with a manual clock, no HTTP
//! surface. Messages go to a real HTTP gateway on loopback ([`Gateway`]),
//! so a test reads the code a user would have received.

mod admin;
mod authenticators;
mod callers;
mod challenges;
mod console;
mod deliveries;
mod gateway;
mod lib_rules;
mod passkeys;
mod recorder;
mod services;
mod soft_passkey;
mod users;
mod verifications;
mod webhooks;

use std::sync::Arc;

use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::clock::{Clock as _, ManualClock};
use vouchsafe_core::crypto::MasterKey;
use vouchsafe_core::ids::TenantId;
use vouchsafe_core::provider::{HttpSettings, ProviderConfig, ProviderSettings};
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::TenantStore;
use vouchsafe_core::tenant::Tenant;
use vouchsafe_core::user::Contacts;
use vouchsafe_core::webhook::{DEFAULT_ENDPOINTS_PER_TENANT, WebhookEndpoint, WebhookSecret};
use vouchsafe_delivery::outbound::OutboundClient;
use vouchsafe_store::testing::{TestDatabase, connect, fresh_database};

use super::Engine;
use super::admin::{Admin, put_provider};
use super::verifications::StartRequest;
use super::webhooks::{EndpointError, NewEndpoint, create_endpoint};
use gateway::Gateway;

const T0: i64 = 1_800_000_000;

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    tenant: Tenant,
    _db: TestDatabase,
}

impl Fixture {
    fn tenant_id(&self) -> TenantId {
        self.tenant.id.clone()
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance(time::Duration::seconds(seconds));
    }

    fn admin(&self) -> Admin<'_> {
        Admin { tenant: &self.tenant.id, actor: "test" }
    }

    /// Creates another tenant in the same database.
    async fn other_tenant(&self, name: &str) -> TenantId {
        let (tenant, service) = Tenant::new(name, self.now()).unwrap();
        let audit = AuditEntry::success("test", "tenant.created", tenant.id.as_str(), self.now());
        self.engine.store.create_tenant(&tenant, &service, &Settings::default(), &audit).await.unwrap();
        tenant.id
    }

    /// A user with these contacts.
    async fn user(&self, id: &str, phone: Option<&str>, email: Option<&str>) {
        let contacts =
            Contacts { phone: phone.map(str::to_owned), email: email.map(str::to_owned), display_name: None };
        let audit = AuditEntry::success("test", "user.put", format!("user:{id}"), self.now());
        self.engine.store.put_user(&self.tenant.id, id, &contacts, false, self.now(), &audit).await.unwrap();
    }

    /// Sends every channel through `gateway` (which replaces the console).
    async fn route_to(&self, gateway: &Gateway) {
        put_provider(&self.engine, &self.admin(), &gateway_provider(&self.tenant.id, "gw", &gateway.url, self.now()))
            .await
            .unwrap();
    }

    /// The actions of the tenant's audit log, in order.
    async fn audit_actions(&self) -> Vec<String> {
        let events = self.engine.store.audit_events(&self.tenant.id, 0, 1000).await.unwrap();
        events.into_iter().map(|e| e.entry.action).collect()
    }

    /// Whether the webhook dispatcher was woken since the last time this
    /// was asked (it takes the wake-up).
    async fn woke(&self) -> bool {
        tokio::time::timeout(std::time::Duration::ZERO, self.engine.wake_dispatcher.notified()).await.is_ok()
    }

    /// Creates a webhook endpoint of the tenant (its URL a closed port on
    /// loopback) with this event filter and description.
    async fn endpoint(
        &self,
        events: Option<&[String]>,
        description: Option<&str>,
    ) -> Result<(WebhookEndpoint, WebhookSecret), EndpointError> {
        let url = "http://127.0.0.1:9/hook";
        let request = NewEndpoint { tenant_id: &self.tenant.id, actor: "test", url, events, description };
        let e = &self.engine;
        create_endpoint(&e.outbound, e.store.as_ref(), &e.sealer, self.now(), DEFAULT_ENDPOINTS_PER_TENANT, request)
            .await
    }

    /// Subscribes a webhook endpoint to every event, so [`Self::queued`]
    /// sees what is queued from now on.
    async fn subscribe(&self) {
        self.endpoint(None, None).await.unwrap();
    }

    /// The types of the events queued since the last call (claimed here,
    /// so nothing is delivered).
    async fn queued(&self) -> Vec<vouchsafe_core::event::EventType> {
        let lease = self.now() + time::Duration::minutes(5);
        let due = self.engine.store.claim_due_messages(self.now(), lease, 1000).await.unwrap();
        due.into_iter().map(|m| m.event_type).collect()
    }

    /// How many audit entries have `action`.
    async fn audited(&self, action: &str) -> usize {
        self.audit_actions().await.iter().filter(|a| *a == action).count()
    }
}

/// An `http` provider of every channel posting to `url`.
fn gateway_provider(tenant: &TenantId, name: &str, url: &str, now: OffsetDateTime) -> ProviderConfig {
    ProviderConfig {
        tenant_id: tenant.clone(),
        name: name.into(),
        channels: Channel::ALL.to_vec(),
        priority: 1,
        credential: None,
        settings: ProviderSettings::Http(HttpSettings {
            url: url.into(),
            method: None,
            headers: None,
            body_template: r#"{"to":"{to}","code":"{code}","message":"{message}","channel":"{channel}"}"#.into(),
            timeout_ms: Some(2_000),
        }),
        enabled: true,
        created_at: now,
        updated_at: now,
    }
}

/// An engine over a fresh database with one tenant (`acme`), at `T0`.
async fn fixture(settings: Settings) -> Fixture {
    fixture_at("http://localhost:8080", settings).await
}

/// The same, with the engine's public URL `public_url`.
async fn fixture_at(public_url: &str, settings: Settings) -> Fixture {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = fresh_database().await.unwrap();
    let store = connect(&db).await.unwrap();
    store.migrate().await.unwrap();
    let at = OffsetDateTime::from_unix_timestamp(T0).unwrap();
    let clock = Arc::new(ManualClock::new(at));
    let (tenant, service) = Tenant::new("acme", at).unwrap();
    let audit = AuditEntry::success("test", "tenant.created", tenant.id.as_str(), at);
    store.create_tenant(&tenant, &service, &settings, &audit).await.unwrap();
    let master = MasterKey::from_base64("dm91Y2hzYWZlIGVuZ2luZSB0ZXN0czogbm90IHJlYWw=").unwrap();
    let outbound = OutboundClient::new(true, std::time::Duration::from_secs(5));
    let engine = Engine::new(public_url.into(), Arc::new(store), clock.clone(), &master, outbound);
    Fixture { engine, clock, tenant, _db: db }
}

fn sms_to<'a>(tenant: &'a TenantId, to: &'a str) -> StartRequest<'a> {
    StartRequest { tenant_id: tenant, to, channel: "sms", service_id: None, locale: None, default_country: None }
}

/// The field of an `EngineError::Invalid` or `Refused`, for assertions.
fn field_of<T: std::fmt::Debug>(result: &Result<T, super::error::EngineError>) -> Option<String> {
    use super::error::EngineError;
    match result {
        Err(EngineError::Invalid(e) | EngineError::Refused(e) | EngineError::InvalidPhoneNumber(e)) => {
            Some(e.field.clone())
        }
        _ => None,
    }
}

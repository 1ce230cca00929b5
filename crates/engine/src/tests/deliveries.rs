//! Deliveries of codes the CRM made: refusals recorded with Salesforce's
//! results, the message as rendered, failover, receipts.

use vouchsafe_core::channel::Channel;
use vouchsafe_core::delivery::{DeliveryResult, DeliveryStatus};
use vouchsafe_core::settings::Settings;

use vouchsafe_core::event::EventType;
use vouchsafe_core::provider::{Credential, ProviderConfig, ProviderSettings, TwilioSettings};

use super::super::admin::{put_credential, put_provider};
use super::super::deliveries::{Delivered, NewDelivery, deliver, record_receipt};
use super::gateway::Gateway;
use super::recorder::Counts;
use super::{Fixture, fixture};

fn delivery_to(f: &Fixture, to: &str) -> NewDelivery {
    NewDelivery {
        tenant_id: f.tenant.id.clone(),
        channel: Channel::Sms,
        to: to.into(),
        code: "482913".into(),
        message: None,
        locale: None,
        default_country: None,
        user_id: None,
        network_id: None,
        experience_id: None,
    }
}

/// Geo permissions refuse before any provider is asked, and the refusal
/// is a recorded delivery with Salesforce's result, not an error.
#[tokio::test]
async fn a_delivery_to_a_country_not_allowed_is_recorded_as_refused() {
    let mut settings = Settings::default();
    settings.geo.allowed_countries = vec!["GB".into()];
    let f = fixture(settings).await;
    let Delivered::Recorded(refused) = deliver(&f.engine, delivery_to(&f, "+14155552671")).await.unwrap() else {
        panic!("a refusal is recorded");
    };
    assert_eq!((refused.result, refused.status), (DeliveryResult::CountryBlock, DeliveryStatus::Rejected));
    assert_eq!(refused.country.as_deref(), Some("US"));
    let stored = f.engine.store.delivery(&f.tenant.id, &refused.id).await.unwrap();
    assert_eq!(stored.result, DeliveryResult::CountryBlock);
    let Delivered::Recorded(sent) = deliver(&f.engine, delivery_to(&f, "+447400123456")).await.unwrap() else {
        panic!("a delivery is recorded");
    };
    assert_eq!((sent.result, sent.provider.as_deref()), (DeliveryResult::Success, Some("console")));
}

/// What cannot be delivered is recorded with its result: a number that
/// is not one, a landline for SMS, a send limit reached.
#[tokio::test]
async fn refusals_are_recorded_with_their_results() {
    let mut settings = Settings::default();
    settings.fraud.max_sends_per_destination_per_hour = 1;
    let f = fixture(settings).await;
    let gateway = Gateway::start().await;
    f.route_to(&gateway).await;
    let result_of = |d: Delivered| match d {
        Delivered::Recorded(d) => (d.result, d.status, d.error.clone().unwrap_or_default()),
        Delivered::Failed => panic!("failed inside the server"),
    };
    let (result, status, why) = result_of(deliver(&f.engine, delivery_to(&f, "+4474001")).await.unwrap());
    assert_eq!(
        (result, status, why.as_str()),
        (DeliveryResult::InvalidPhoneNumber, DeliveryStatus::Rejected, "not a valid destination")
    );
    let (result, _, why) = result_of(deliver(&f.engine, delivery_to(&f, "+442071838750")).await.unwrap());
    assert_eq!((result, why.as_str()), (DeliveryResult::InvalidPhoneNumber, "a landline cannot receive SMS"));
    let (result, status, _) = result_of(deliver(&f.engine, delivery_to(&f, "+447400123456")).await.unwrap());
    assert_eq!((result, status), (DeliveryResult::Success, DeliveryStatus::Sent));
    let (result, _, why) = result_of(deliver(&f.engine, delivery_to(&f, "+447400123456")).await.unwrap());
    assert_eq!((result, why.as_str()), (DeliveryResult::MessageLimitExceeded, "send limit reached"));
    assert_eq!(gateway.bodies().len(), 1, "only the one delivery reached a provider");
}

/// The CRM's own text goes as written; without one, the channel's
/// template names the service (the brand for the default one) and the
/// TTL in minutes.
#[tokio::test]
async fn the_message_is_the_crms_text_or_the_template() {
    let mut settings = Settings::default();
    settings.branding.name = "Acme Bank".into();
    settings.otp.ttl_s = 300;
    let f = fixture(settings).await;
    let gateway = Gateway::start().await;
    f.route_to(&gateway).await;
    let own = NewDelivery { message: Some("Code {code}, from the CRM".into()), ..delivery_to(&f, "+447400123456") };
    deliver(&f.engine, own).await.unwrap();
    assert_eq!(gateway.last()["message"], "Code 482913, from the CRM");
    let empty = NewDelivery { message: Some(String::new()), ..delivery_to(&f, "+447400123457") };
    deliver(&f.engine, empty).await.unwrap();
    assert_eq!(gateway.last()["message"], "Your Acme Bank verification code is: 482913");
    let email = NewDelivery { channel: Channel::Email, ..delivery_to(&f, "ann@example.com") };
    deliver(&f.engine, email).await.unwrap();
    let body = gateway.last()["message"].as_str().unwrap().to_owned();
    assert!(body.contains("expires in 5 minutes"), "{body}");
}

/// When every provider fails the delivery is recorded as a provider error
/// naming each one; a receipt then settles a sent delivery once.
#[tokio::test]
async fn failures_and_receipts_are_recorded_once() {
    let f = fixture(Settings::default()).await;
    let gateway = Gateway::start().await;
    f.route_to(&gateway).await;
    f.subscribe().await;
    let Delivered::Recorded(sent) = deliver(&f.engine, delivery_to(&f, "+447400123456")).await.unwrap() else {
        panic!("recorded");
    };
    let Delivered::Recorded(other) = deliver(&f.engine, delivery_to(&f, "+447400123458")).await.unwrap() else {
        panic!("recorded");
    };
    assert!(
        record_receipt(&f.engine, &other, DeliveryStatus::Delivered, Some("ignored".into()), "http").await.unwrap()
    );
    let stored = f.engine.store.delivery(&f.tenant.id, &other.id).await.unwrap();
    assert_eq!((stored.status, stored.error), (DeliveryStatus::Delivered, None), "only a failure keeps its error");
    assert!(f.queued().await.is_empty(), "a delivered message queues no event");
    assert_eq!((sent.provider.as_deref(), sent.provider_message_id.as_deref()), (Some("gw"), Some("gw-1")));
    f.advance(2);
    let undelivered = Some("30003".to_owned());
    assert!(record_receipt(&f.engine, &sent, DeliveryStatus::Undelivered, undelivered.clone(), "http").await.unwrap());
    assert!(!record_receipt(&f.engine, &sent, DeliveryStatus::Delivered, None, "http").await.unwrap(), "settled once");
    let stored = f.engine.store.delivery(&f.tenant.id, &sent.id).await.unwrap();
    assert_eq!(
        (stored.status, stored.error.as_deref(), stored.updated_at),
        (DeliveryStatus::Undelivered, Some("30003"), f.now())
    );
    assert_eq!(f.queued().await, vec![EventType::DeliveryFailed]);

    gateway.fail();
    let Delivered::Recorded(failed) = deliver(&f.engine, delivery_to(&f, "+447400123457")).await.unwrap() else {
        panic!("recorded");
    };
    assert_eq!((failed.result, failed.status), (DeliveryResult::ProviderError, DeliveryStatus::Failed));
    assert_eq!(failed.provider.as_deref(), Some("gw"));
    assert!(failed.error.as_deref().unwrap().starts_with("gw: "), "{:?}", failed.error);
    assert_eq!(f.queued().await, vec![EventType::DeliveryFailed]);
    assert!(f.woke().await);
}

/// Every delivery is counted by its channel and result, refusals too.
#[tokio::test]
async fn deliveries_are_counted_by_channel_and_result() {
    let counts = Counts::default();
    let _recording = metrics::set_default_local_recorder(&counts);
    let f = fixture(Settings::default()).await;
    let gateway = Gateway::start().await;
    f.route_to(&gateway).await;
    deliver(&f.engine, delivery_to(&f, "+447400123456")).await.unwrap();
    deliver(&f.engine, delivery_to(&f, "+4474001")).await.unwrap();
    let count = |result| counts.get("vouchsafe_deliveries_total", &[("channel", "sms"), ("result", result)]);
    assert_eq!((count("SUCCESS"), count("INVALID_PHONE_NUMBER")), (1, 1));
    let Delivered::Recorded(sent) = deliver(&f.engine, delivery_to(&f, "+447400123457")).await.unwrap() else {
        panic!("recorded");
    };
    record_receipt(&f.engine, &sent, DeliveryStatus::Delivered, None, "twilio").await.unwrap();
    let receipts = [("provider", "twilio"), ("status", "delivered")];
    assert_eq!(counts.get("vouchsafe_delivery_receipts_total", &receipts), 1);
}

/// A delivery through Twilio asks for receipts at this server's callback
/// for that very delivery.
#[tokio::test]
async fn twilio_is_asked_for_receipts_at_the_deliverys_callback() {
    let f = fixture(Settings::default()).await;
    let gateway = Gateway::start().await;
    let credential = Credential::Basic { username: "AC0123456789".into(), password: "auth-token".into() };
    put_credential(&f.engine, &f.admin(), "twilio", &credential).await.unwrap();
    let provider = ProviderConfig {
        tenant_id: f.tenant_id(),
        name: "twilio".into(),
        channels: vec![Channel::Sms],
        priority: 1,
        credential: Some("twilio".into()),
        settings: ProviderSettings::Twilio(TwilioSettings {
            from: Some("+15005550006".into()),
            messaging_service_sid: None,
            base_url: Some(gateway.base.clone()),
            timeout_ms: Some(2_000),
        }),
        enabled: true,
        created_at: f.now(),
        updated_at: f.now(),
    };
    put_provider(&f.engine, &f.admin(), &provider).await.unwrap();
    let Delivered::Recorded(sent) = deliver(&f.engine, delivery_to(&f, "+447400123456")).await.unwrap() else {
        panic!("recorded");
    };
    assert_eq!((sent.provider.as_deref(), sent.provider_message_id.as_deref()), (Some("twilio"), Some("SMgw1")));
    let body = gateway.raw().pop().unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let callback = form.iter().find(|(name, _)| name == "StatusCallback").map(|(_, value)| value.as_str());
    let expected = format!("http://localhost:8080/v1/provider-callbacks/twilio?delivery_id={}", sent.id);
    assert_eq!(callback, Some(expected.as_str()), "{body}");
}

//! Users of a login flow, named by the integrator's own id, with what the
//! factor policy needs: phone, email, and whether they are privileged
//! (privileged users must use a phishing-resistant factor). The lockout
//! counters live on the user row and change only by conditional writes.

use time::OffsetDateTime;

use crate::destination::{Country, EmailAddress, PhoneNumber};
use crate::field_error::FieldError;
use crate::ids::TenantId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub tenant_id: TenantId,
    /// The integrator's id: 1–200 printable characters.
    pub id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub privileged: bool,
    /// Consecutive failed second-factor answers.
    pub failures: u32,
    /// Locked until this instant (or not locked).
    pub locked_until: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl User {
    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// The phone number, parsed (stored valid).
    pub fn phone_number(&self) -> Option<PhoneNumber> {
        self.phone.as_deref().and_then(|p| PhoneNumber::parse("phone", p).ok())
    }
}

/// Checks a user id from a URL path.
pub fn validate_user_id(id: &str) -> Result<(), FieldError> {
    let ok = (1..=200).contains(&id.chars().count()) && !id.chars().any(char::is_control);
    if ok { Ok(()) } else { Err(FieldError::new("user_id", "must be 1 to 200 printable characters")) }
}

/// A user's contact details, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contacts {
    /// E.164.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

/// Normalises the contact details of a `PUT /v1/users/{id}`.
pub fn normalise_contacts(
    phone: Option<&str>,
    email: Option<&str>,
    display_name: Option<&str>,
    country: Option<Country>,
) -> Result<Contacts, FieldError> {
    let phone = phone
        .filter(|p| !p.is_empty())
        .map(|p| PhoneNumber::parse_in("phone", p, country).map(|n| n.e164().to_owned()))
        .transpose()?;
    let email = email
        .filter(|e| !e.is_empty())
        .map(|e| EmailAddress::parse("email", e).map(|a| a.as_str().to_owned()))
        .transpose()?;
    if let Some(name) = display_name
        && (name.chars().count() > 200 || name.chars().any(char::is_control))
    {
        return Err(FieldError::new("display_name", "must be at most 200 printable characters"));
    }
    Ok(Contacts { phone, email, display_name: display_name.map(str::to_owned) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Locked strictly before the lock's end; not locked without one.
    #[test]
    fn a_user_is_locked_until_the_instant_the_lock_ends() {
        let until = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(900);
        let mut user = User {
            tenant_id: crate::ids::TenantId::generate(),
            id: "u1".into(),
            phone: None,
            email: None,
            display_name: None,
            privileged: false,
            failures: 0,
            locked_until: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert!(!user.is_locked(until));
        user.locked_until = Some(until);
        assert!(user.is_locked(until - time::Duration::milliseconds(1)));
        assert!(!user.is_locked(until));
    }

    /// A display name is at most 200 printable characters.
    #[test]
    fn display_names_are_at_most_two_hundred_printable_characters() {
        let name = |text: &str| normalise_contacts(None, None, Some(text), None);
        assert_eq!(name(&"é".repeat(200)).unwrap().display_name.map(|n| n.chars().count()), Some(200));
        assert_eq!(name(&"é".repeat(201)).unwrap_err().field, "display_name");
        assert_eq!(name("Ann\u{7}").unwrap_err().field, "display_name");
        assert!(name("").is_ok(), "an empty name is no name");
    }

    #[test]
    fn contacts_are_normalised_or_refused_by_field() {
        let c = normalise_contacts(Some("+44 7400 123456"), Some("A@Example.com"), None, None).unwrap();
        assert_eq!((c.phone.as_deref(), c.email.as_deref()), (Some("+447400123456"), Some("A@example.com")));
        assert_eq!(normalise_contacts(Some("12"), None, None, None).unwrap_err().field, "phone");
        assert_eq!(normalise_contacts(None, Some("x"), None, None).unwrap_err().field, "email");
        assert!(validate_user_id("005xx000001Sv6A").is_ok());
        assert!(validate_user_id("").is_err());
    }
}

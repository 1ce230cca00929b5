//! Where a code goes: phone numbers, parsed with libphonenumber's metadata
//! (the `phonenumber` crate) and kept in E.164, and email addresses. Both
//! are valid by construction and know how to mask themselves for logs.
//! A number written nationally (`(415) 555-2671`, as CRM phone fields often
//! hold them) is read only in a [`Country`] the caller names, and only when
//! the digits given are exactly that country's number.

use std::str::FromStr;

use phonenumber::Type;
use phonenumber::metadata::DATABASE;

use crate::field_error::FieldError;

/// What the number plan says a number is. Line type comes from number
/// ranges only: NANP numbers (+1) cannot be told apart and read
/// `FixedLineOrMobile`; ported numbers need a carrier lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineType {
    Mobile,
    FixedLine,
    FixedLineOrMobile,
    Voip,
    TollFree,
    Other,
}

/// A country whose national number formats are known (ISO 3166-1 alpha-2,
/// `US`), to read numbers written without `+` and a country code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country(phonenumber::country::Id);

impl Country {
    /// Upper-case alpha-2 codes of a country with a number plan.
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        let bad =
            || FieldError::new(field, "must be an ISO 3166-1 alpha-2 country code with a number plan, e.g. \"US\"");
        if text.len() != 2 || !text.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        let id = phonenumber::country::Id::from_str(text).map_err(|_| bad())?;
        DATABASE.by_id(id.as_ref()).ok_or_else(bad)?;
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

/// The formatting a written number may carry around its digits.
fn is_formatting(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '/' | '(' | ')')
}

/// A valid phone number in E.164 form (`+14155552671`).
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    country: Option<String>,
    line: LineType,
}

impl std::fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// SECURITY: whether `e164` is exactly the number `text` wrote: the same
/// digits once formatting (spaces, `-`, `.`, `/`, parentheses) is removed,
/// or the same with the plan's national prefix after the country code
/// (`+44 (0)20 …`). libphonenumber's parse drops digits of an over-long
/// number (`+7888030000000` became `+78030000000`): a code must never go
/// to a number other than the one given.
fn is_the_number_given(text: &str, e164: &str, country_code: u16) -> bool {
    let Some(rest) = text.strip_prefix('+') else {
        return false;
    };
    if !rest.chars().all(|c| c.is_ascii_digit() || is_formatting(c)) {
        return false;
    }
    let given: String = rest.chars().filter(char::is_ascii_digit).collect();
    let accepted = e164.trim_start_matches('+');
    if given == accepted {
        return true;
    }
    let code = country_code.to_string();
    let Some(national) = accepted.strip_prefix(code.as_str()) else {
        return false;
    };
    DATABASE
        .by_code(&country_code)
        .unwrap_or_default()
        .iter()
        .filter_map(|plan| plan.national_prefix())
        .any(|prefix| given == format!("{code}{prefix}{national}"))
}

/// SECURITY: whether `e164` is exactly the national number `text` wrote in
/// `country`: its digits, formatting removed, are the national significant
/// number, or one of the plan's national prefixes and then it. Anything
/// else (an international dialling prefix, extra or dropped digits) is
/// refused rather than guessed at.
fn is_the_national_number_given(text: &str, e164: &str, country_code: u16) -> bool {
    if !text.chars().all(|c| c.is_ascii_digit() || is_formatting(c)) {
        return false;
    }
    let given: String = text.chars().filter(char::is_ascii_digit).collect();
    let code = country_code.to_string();
    let Some(national) = e164.trim_start_matches('+').strip_prefix(code.as_str()) else {
        return false;
    };
    given == national
        || DATABASE
            .by_code(&country_code)
            .unwrap_or_default()
            .iter()
            .filter_map(|plan| plan.national_prefix())
            .any(|prefix| given == format!("{prefix}{national}"))
}

/// The number in E.164, as phonenumber's E.164 formatter writes it: `+`,
/// the country code, the national number (with an Italian leading zero
/// kept). The formatter picks the plan's national layout by its patterns
/// before it looks at the mode, and E.164 uses none of it: that pick was
/// 6% of a start's instructions.
fn e164_of(number: &phonenumber::PhoneNumber) -> String {
    format!("+{}{}", number.code().value(), number.national())
}

impl PhoneNumber {
    /// Any format libphonenumber reads, with an explicit `+` country code.
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        Self::parse_in(field, text, None)
    }

    /// Like [`PhoneNumber::parse`]; a number without `+` is read as a
    /// national number of `country` when one is given.
    pub fn parse_in(field: &str, text: &str, country: Option<Country>) -> Result<Self, FieldError> {
        let text = text.trim();
        // Each of `is_valid`, `format`, `number_type` and `country().id()`
        // runs the plan's patterns again (a start's largest cost after the
        // database, 8% of its samples), so each is asked once, and
        // `is_valid` not at all: phonenumber's `is_valid_with` is
        // `number_type(..) != Unknown` over the same metadata, so the type
        // answers both.
        let (number, given_as) = match (text.starts_with('+'), country) {
            (true, _) => {
                let number =
                    phonenumber::parse(None, text).map_err(|_| FieldError::new(field, "is not a phone number"))?;
                (number, None)
            }
            (false, Some(country)) => {
                let number = phonenumber::parse(Some(country.0), text)
                    .map_err(|_| FieldError::new(field, "is not a phone number"))?;
                (number, Some(country))
            }
            (false, None) => {
                return Err(FieldError::new(
                    field,
                    "must start with + and the country code, e.g. +14155552671 (or name default_country)",
                ));
            }
        };
        let kind = number.number_type(&DATABASE);
        if kind == Type::Unknown {
            return Err(FieldError::new(field, "is not a valid phone number for its country"));
        }
        let e164 = e164_of(&number);
        let code = number.code().value();
        match given_as {
            None if !is_the_number_given(text, &e164, code) => {
                return Err(FieldError::new(field, "is not a phone number (its digits do not make one number)"));
            }
            Some(country) if !is_the_national_number_given(text, &e164, code) => {
                return Err(FieldError::new(
                    field,
                    format!("is not a national number of {} (give it with + and the country code)", country.as_str()),
                ));
            }
            _ => {}
        }
        let line = match kind {
            Type::Mobile => LineType::Mobile,
            Type::FixedLine => LineType::FixedLine,
            Type::FixedLineOrMobile => LineType::FixedLineOrMobile,
            Type::Voip => LineType::Voip,
            Type::TollFree => LineType::TollFree,
            _ => LineType::Other,
        };
        Ok(Self { e164, country: number.country().id().map(|id| id.as_ref().to_owned()), line })
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// ISO 3166-1 alpha-2 of the number plan, when it names one country.
    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }

    pub fn line_type(&self) -> LineType {
        self.line
    }

    /// Whether SMS may be sent: not to numbers the plan says are landlines.
    pub fn accepts_sms(&self) -> bool {
        self.line != LineType::FixedLine
    }

    /// For logs: country code and last two digits only (`+44*******18`).
    pub fn masked(&self) -> String {
        let digits = self.e164.len();
        let keep_head = 3.min(digits);
        let keep_tail = 2.min(digits.saturating_sub(keep_head));
        format!(
            "{}{}{}",
            &self.e164[..keep_head],
            "*".repeat(digits - keep_head - keep_tail),
            &self.e164[digits - keep_tail..]
        )
    }
}

/// A syntactically valid email address, domain in lower case.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl std::fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EmailAddress({})", self.masked())
    }
}

impl EmailAddress {
    /// `local@domain` with a dotted domain of letters, digits and hyphens
    /// (RFC 5321 lengths: local ≤ 64, whole ≤ 254).
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::new(field, "is not an email address");
        let text = text.trim();
        let (local, domain) = text.rsplit_once('@').ok_or_else(bad)?;
        let local_ok = (1..=64).contains(&local.len())
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                (1..=63).contains(&l.len())
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok || text.len() > 254 {
            return Err(bad());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form limits, cooldowns and lookups match on: the whole address
    /// in lower case. The local part is sent as written (RFC 5321 lets a
    /// server tell `Bob` from `bob`), but no mail system in use does, and
    /// matching it as written let `BOB@` start a second verification inside
    /// `bob@`'s cooldown.
    pub fn match_key(&self) -> String {
        email_match_key(&self.0)
    }

    /// For logs: first letter and domain (`j***@example.com`).
    pub fn masked(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
            None => "***".to_owned(),
        }
    }
}

/// [`EmailAddress::match_key`] of an address already stored.
pub fn email_match_key(address: &str) -> String {
    address.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_normalise_to_e164_with_country_and_line_type() {
        let us = PhoneNumber::parse("to", "+1 (415) 555-2671").unwrap();
        assert_eq!(us.e164(), "+14155552671");
        assert_eq!(us.country(), Some("US"));
        assert_eq!(us.line_type(), LineType::FixedLineOrMobile);
        assert!(us.accepts_sms());
        let uk_landline = PhoneNumber::parse("to", "+44 20 7946 0018").unwrap();
        assert_eq!(uk_landline.line_type(), LineType::FixedLine);
        assert!(!uk_landline.accepts_sms(), "SMS to a landline is refused");
        let uk_mobile = PhoneNumber::parse("to", "+447400123456").unwrap();
        assert_eq!(uk_mobile.line_type(), LineType::Mobile);
        assert_eq!(PhoneNumber::parse("to", "+4915123456789").unwrap().country(), Some("DE"));
    }

    #[test]
    fn bad_numbers_name_the_field() {
        for bad in ["4155552671", "+1", "+999123", "hello", "+44770090012", ""] {
            assert_eq!(PhoneNumber::parse("to", bad).unwrap_err().field, "to", "{bad}");
        }
    }

    /// A number is accepted exactly when phonenumber's own `is_valid` says
    /// it is valid (parse_in asks the number's type instead, which answers
    /// the same): across shared country codes (+1, +7, +44), a
    /// non-geographic one (+800) and numbers too short or unassigned.
    #[test]
    fn validity_is_phonenumbers_own() {
        let numbers = [
            "+14155552671",
            "+12125550100",
            "+16045550123",
            "+18765550123",
            "+11234567890",
            "+14155552",
            "+79123456789",
            "+77012345678",
            "+76012345678",
            "+442079460018",
            "+447400123456",
            "+441481712345",
            "+447781123456",
            "+441624612345",
            "+4420794600",
            "+80012345678",
            "+33612345678",
            "+3361234567",
            "+4915112345678",
            "+61412345678",
            "+819012345678",
            "+5511912345678",
            "+2348031234567",
        ];
        for text in numbers {
            let library = phonenumber::parse(None, text).map(|n| n.is_valid()).unwrap_or(false);
            assert_eq!(PhoneNumber::parse("to", text).is_ok(), library, "{text}");
        }
    }

    #[test]
    fn masks_keep_only_what_identifies_the_route() {
        let n = PhoneNumber::parse("to", "+442079460018").unwrap();
        assert_eq!(n.masked(), "+44********18");
        assert_eq!(format!("{n:?}"), "PhoneNumber(+44********18)");
        let e = EmailAddress::parse("to", "Jane.Doe@Example.COM").unwrap();
        assert_eq!(e.as_str(), "Jane.Doe@example.com");
        assert_eq!(e.masked(), "J***@example.com");
        assert_eq!(e.match_key(), "jane.doe@example.com");
        assert_eq!(format!("{e:?}"), "EmailAddress(J***@example.com)");
    }

    /// Line types the plan knows beyond mobile and landline (fraud rules
    /// and the SMS check read them).
    #[test]
    fn toll_free_and_voip_numbers_say_so() {
        assert_eq!(PhoneNumber::parse("to", "+448001234567").unwrap().line_type(), LineType::TollFree);
        assert_eq!(PhoneNumber::parse("to", "+445612345678").unwrap().line_type(), LineType::Voip);
    }

    #[test]
    fn countries_are_upper_case_alpha_2_codes() {
        assert_eq!(Country::parse("default_country", "GB").unwrap().as_str(), "GB");
        for bad in ["gb", "Gb", "GBR", "G", "ZZ"] {
            assert_eq!(Country::parse("default_country", bad).unwrap_err().field, "default_country", "{bad}");
        }
    }

    /// RFC 5321: a whole address of 254 bytes is the longest there is.
    #[test]
    fn an_email_of_254_bytes_is_the_longest() {
        let domain = format!("{}.{}.{}.com", "b".repeat(63), "c".repeat(63), "d".repeat(57));
        let longest = format!("{}@{domain}", "a".repeat(64));
        assert_eq!(longest.len(), 254);
        assert!(EmailAddress::parse("to", &longest).is_ok());
        let over = format!("{}@e{domain}", "a".repeat(64));
        assert!(EmailAddress::parse("to", &over).is_err());
    }

    #[test]
    fn emails_are_checked_for_shape() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(EmailAddress::parse("to", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "a@b", "@b.co", "a@@b.co", "a..b@c.co", ".a@b.co", "a@-b.co", "a b@c.co", "a@b_c.co"] {
            assert!(EmailAddress::parse("to", bad).is_err(), "{bad}");
        }
    }

    /// E.164 written directly is what phonenumber's formatter writes:
    /// across shared country codes, national prefixes, Italy's leading
    /// zero, a non-geographic code and national numbers read in a country.
    #[test]
    fn e164_is_what_the_formatter_writes() {
        let numbers = [
            (None, "+14155552671"),
            (None, "+44 (0)20 7946 0018"),
            (None, "+390612345678"),
            (None, "+39 312 345 6789"),
            (None, "+80012345678"),
            (None, "+79123456789"),
            (None, "+490164000"),
            (None, "+5511912345678"),
            (Some(phonenumber::country::Id::IT), "06 1234 5678"),
            (Some(phonenumber::country::Id::GB), "020 7946 0018"),
            (Some(phonenumber::country::Id::US), "(415) 555-2671"),
        ];
        for (country, text) in numbers {
            let number = phonenumber::parse(country, text).unwrap();
            assert_eq!(e164_of(&number), number.format().mode(phonenumber::Mode::E164).to_string(), "{text}");
        }
    }

    /// Issue 16, item 23, and the cases `accepted_numbers_are_stable_in_e164`
    /// found: over-long numbers libphonenumber shortened into other numbers.
    #[test]
    fn a_number_is_accepted_only_as_the_digits_given() {
        for rewritten in ["+7888030000000", "+78880300000001", "+4474001234567", "+1 415 555 2671 ext. 12"] {
            assert!(PhoneNumber::parse("to", rewritten).is_err(), "{rewritten}");
        }
        for (text, e164) in [
            ("+447400123456", "+447400123456"),
            ("+44 7400 123456", "+447400123456"),
            ("+44 (0)7400 123456", "+447400123456"),
            // Found by the property below: `0` is Germany's national prefix.
            ("+490164000", "+49164000"),
            ("+44 20-7946-0018", "+442079460018"),
            ("+44 (0)20 7946 0018", "+442079460018"),
        ] {
            assert_eq!(PhoneNumber::parse("to", text).map(|n| n.e164().to_owned()), Ok(e164.to_owned()), "{text}");
        }
    }

    /// Issue 17: CRM phone fields hold national formats; they are read in
    /// a named country, only as exactly the digits given.
    #[test]
    fn national_numbers_are_read_in_a_named_country_only() {
        let us = Country::parse("default_country", "US").unwrap();
        let gb = Country::parse("default_country", "GB").unwrap();
        for (text, country, e164) in [
            ("(415) 555-2671", us, "+14155552671"),
            ("415.555.2671", us, "+14155552671"),
            ("1 415 555 2671", us, "+14155552671"),
            ("020 7946 0018", gb, "+442079460018"),
            ("07400 123456", gb, "+447400123456"),
            ("+44 7400 123456", us, "+447400123456"),
        ] {
            let parsed = PhoneNumber::parse_in("phone", text, Some(country)).map(|n| n.e164().to_owned());
            assert_eq!(parsed, Ok(e164.to_owned()), "{text} in {}", country.as_str());
        }
        for (text, country) in [
            ("(415) 555-2671", None),
            ("011 44 20 7946 0018", Some(us)),
            ("415 555 26711", Some(us)),
            ("020 7946 001", Some(gb)),
            ("0800 FLOWERS", Some(gb)),
            ("tel:4155552671", Some(us)),
        ] {
            assert!(PhoneNumber::parse_in("phone", text, country).is_err(), "{text}");
        }
        for bad in ["us", "USA", "ZZ", "", "1"] {
            assert_eq!(Country::parse("default_country", bad).unwrap_err().field, "default_country", "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn e164_is_what_the_formatter_writes_for_any_valid_number(digits in "[1-9][0-9]{6,15}") {
            if let Ok(number) = phonenumber::parse(None, format!("+{digits}"))
                && number.number_type(&DATABASE) != Type::Unknown
            {
                let formatted = number.format().mode(phonenumber::Mode::E164).to_string();
                proptest::prop_assert_eq!(e164_of(&number), formatted);
            }
        }

        #[test]
        fn accepted_numbers_are_the_digits_given(digits in "[1-9][0-9]{6,15}") {
            if let Ok(number) = PhoneNumber::parse("to", &format!("+{digits}")) {
                // The same digits, or with one run (a national prefix) taken
                // out right after the country code: no digit of the number
                // itself changed or dropped.
                let e = &number.e164()[1..];
                let same = e == digits
                    || (1..=3).any(|k| digits.len() > e.len() && digits[..k] == e[..k] && digits.ends_with(&e[k..]));
                proptest::prop_assert!(same, "+{} became {}", digits, number.e164());
            }
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,40}") {
            let _ = PhoneNumber::parse("to", &text);
            let _ = EmailAddress::parse("to", &text);
        }

        #[test]
        fn accepted_numbers_are_stable_in_e164(digits in "[1-9][0-9]{6,13}") {
            if let Ok(number) = PhoneNumber::parse("to", &format!("+{digits}")) {
                let again = PhoneNumber::parse("to", number.e164()).unwrap();
                proptest::prop_assert_eq!(again.e164(), number.e164());
                proptest::prop_assert!(!number.masked().contains(&number.e164()[3..number.e164().len() - 2]));
            }
        }

        #[test]
        fn accepted_addresses_are_stable(local in "[a-zA-Z0-9._%+-]{1,20}", domain in "[a-zA-Z0-9-]{1,10}\\.[a-z]{2,5}") {
            if let Ok(address) = EmailAddress::parse("to", &format!("{local}@{domain}")) {
                let again = EmailAddress::parse("to", address.as_str()).unwrap();
                proptest::prop_assert_eq!(again.as_str(), address.as_str());
            }
        }
    }
}

//! Newtypes for the values that identify a contact: `Email`, `Mobile`, `Country`.
//! Each normalises in `parse`, so two spellings of one value compare equal; errors name the value.

use std::fmt;

use rlibphonenumber::{PhoneNumber, PhoneNumberFormat, Region, PHONE_NUMBER_UTIL};
use serde::{Deserialize, Serialize};

/// Longest email address SMTP allows (RFC 5321 path limit minus the brackets).
pub const EMAIL_MAX_LEN: usize = 254;
const EMAIL_LOCAL_MAX_LEN: usize = 64;
/// Digits and punctuation beyond this are never a phone number; refuse before parsing.
const MOBILE_RAW_MAX_LEN: usize = 64;

/// Why a value could not be normalised. Messages are lowercase and name the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("invalid email {value:?}: {reason}")]
    Email { value: String, reason: &'static str },
    #[error("invalid mobile {value:?}: {reason}")]
    Mobile { value: String, reason: &'static str },
    #[error("invalid country {value:?}: expected an ISO 3166-1 alpha-2 code such as \"NO\"")]
    Country { value: String },
    #[error("invalid external id {value:?}: {reason}")]
    ExternalId { value: String, reason: &'static str },
}

impl ValidationError {
    /// The API field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Email { .. } => "email",
            Self::Mobile { .. } => "mobile",
            Self::Country { .. } => "country",
            Self::ExternalId { .. } => "external_id",
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Email { .. } => "invalid_email",
            Self::Mobile { .. } => "invalid_mobile",
            Self::Country { .. } => "invalid_country",
            Self::ExternalId { .. } => "invalid_external_id",
        }
    }
}

/// An email address: trimmed as given for display, and a normalised form for identity
/// (local part case-folded, domain case-folded and IDNA-encoded to ASCII).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email {
    display: String,
    normalized: String,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let display = raw.trim();
        let err = |reason| ValidationError::Email {
            value: display.to_owned(),
            reason,
        };
        if display.is_empty() {
            return Err(err("empty"));
        }
        if display.chars().count() > EMAIL_MAX_LEN {
            return Err(err("longer than 254 characters"));
        }
        let (local, domain) = display.rsplit_once('@').ok_or_else(|| err("missing @"))?;
        if local.is_empty() || local.chars().count() > EMAIL_LOCAL_MAX_LEN {
            return Err(err("local part must be 1 to 64 characters"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(err("misplaced dot in local part"));
        }
        if local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "@<>()[]\\,;:\"".contains(c))
        {
            return Err(err("forbidden character in local part"));
        }
        let domain =
            idna::domain_to_ascii(domain).map_err(|_| err("domain is not a valid name"))?;
        if !valid_ascii_domain(&domain) {
            return Err(err("domain is not a valid name"));
        }
        let normalized = format!("{}@{}", local.to_lowercase(), domain);
        Ok(Self {
            display: display.to_owned(),
            normalized,
        })
    }

    /// Rebuilds an address read back from the store, where both forms were saved.
    pub fn from_stored(display: String, normalized: String) -> Self {
        Self {
            display,
            normalized,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

fn valid_ascii_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// An ISO 3166-1 alpha-2 country code known to libphonenumber, upper-cased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country(Region);

impl Country {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let code = raw.trim().to_ascii_uppercase();
        Region::from_code(&code)
            .ok()
            .filter(|r| PHONE_NUMBER_UTIL.get_country_code_for_region(*r).is_some())
            .map(Self)
            .ok_or_else(|| ValidationError::Country {
                value: raw.trim().to_owned(),
            })
    }

    pub fn code(&self) -> String {
        self.0.to_string()
    }
}

impl Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.code())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Longest external id (an ERP customer code, a CRM's own id), in characters.
pub const EXTERNAL_ID_MAX_CHARS: usize = 100;

/// An id another system gives the contact — an ERP customer code (R-FEED-5) — usable as a
/// match key. Trimmed; compared exactly as given (ERP codes are case-sensitive); at most
/// `EXTERNAL_ID_MAX_CHARS` characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExternalId(String);

impl ExternalId {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let value = raw.trim();
        let err = |reason| ValidationError::ExternalId {
            value: value.chars().take(EXTERNAL_ID_MAX_CHARS).collect(),
            reason,
        };
        if value.is_empty() {
            return Err(err("empty"));
        }
        if value.chars().count() > EXTERNAL_ID_MAX_CHARS {
            return Err(err("longer than 100 characters"));
        }
        if value.chars().any(char::is_control) {
            return Err(err("control characters are not allowed"));
        }
        Ok(Self(value.to_owned()))
    }

    /// Rebuilds an id read back from the store, where only parsed ids are ever saved.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164 (`+4741234567`). National numbers need a default country.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mobile(String);

impl Mobile {
    /// Parses any common spelling (`+47 412 34 567`, `0047 41234567`, `41234567` with NO) and
    /// accepts it only when libphonenumber calls the number valid.
    pub fn parse(raw: &str, default_country: Option<Country>) -> Result<Self, ValidationError> {
        let value = raw.trim();
        let err = |reason| ValidationError::Mobile {
            value: value.to_owned(),
            reason,
        };
        if value.is_empty() {
            return Err(err("empty"));
        }
        if value.len() > MOBILE_RAW_MAX_LEN {
            return Err(err("too long to be a phone number"));
        }
        if value.chars().any(|c| c.is_alphabetic()) {
            return Err(err("letters are not allowed"));
        }
        let number = PhoneNumber::parse(value, default_country.map(|c| c.0)).map_err(|_| {
            if default_country.is_none() && !value.starts_with('+') {
                err("no country code and no default country")
            } else {
                err("not a phone number")
            }
        })?;
        if !number.is_valid() {
            return Err(err("not a valid number for its country"));
        }
        Ok(Self(number.format_as(PhoneNumberFormat::E164).into_owned()))
    }

    /// Rebuilds a number read back from the store, where only E.164 is ever saved.
    pub fn from_stored(e164: String) -> Self {
        Self(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn no() -> Option<Country> {
        Some(Country::parse("NO").unwrap())
    }

    #[test]
    fn email_is_trimmed_and_case_folded_when_parsed() {
        let e = Email::parse("  Ola.Nordmann@Example.NO ").unwrap();
        assert_eq!(e.normalized(), "ola.nordmann@example.no");
        assert_eq!(e.as_str(), "Ola.Nordmann@Example.NO");
    }

    #[test]
    fn external_id_is_trimmed_and_kept_case_sensitive_when_parsed() {
        let id = ExternalId::parse("  C-1001 ").unwrap();
        assert_eq!(id.as_str(), "C-1001");
        assert_ne!(ExternalId::parse("c-1001").unwrap(), id);
    }

    #[test]
    fn external_id_is_refused_when_empty_too_long_or_with_control_characters() {
        assert!(ExternalId::parse("   ").is_err());
        assert!(ExternalId::parse(&"7".repeat(101)).is_err());
        assert!(ExternalId::parse(&"7".repeat(100)).is_ok());
        let e = ExternalId::parse("C\n1").unwrap_err();
        assert_eq!(
            (e.field(), e.code()),
            ("external_id", "invalid_external_id")
        );
    }

    #[test]
    fn email_domain_is_idna_encoded_when_unicode() {
        let e = Email::parse("kari@Blåbær.no").unwrap();
        assert_eq!(e.normalized(), "kari@xn--blbr-roah.no");
    }

    #[test]
    fn email_is_rejected_when_malformed() {
        for bad in [
            "",
            "plainaddress",
            "@example.no",
            "ola@",
            "ola@localhost",
            "ola@@example.no",
            "o la@example.no",
            "ola..n@example.no",
            "ola@exa_mple.no",
            "ola@example.123",
            "ola@-example.no",
        ] {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err.field(), "email", "{bad}");
        }
    }

    #[test]
    fn email_error_names_the_value_when_rejected() {
        let err = Email::parse("not-an-email").unwrap_err();
        assert!(err.to_string().contains("not-an-email"), "{err}");
    }

    #[test]
    fn mobile_spellings_normalise_to_one_e164_when_default_country_is_no() {
        for raw in [
            "+47 412 34 567",
            "0047 41234567",
            "41234567",
            " +47-41234567 ",
        ] {
            assert_eq!(
                Mobile::parse(raw, no()).unwrap().as_str(),
                "+4741234567",
                "{raw}"
            );
        }
    }

    #[test]
    fn mobile_is_rejected_when_national_without_default_country() {
        let err = Mobile::parse("41234567", None).unwrap_err();
        assert!(err.to_string().contains("no default country"), "{err}");
    }

    #[test]
    fn mobile_is_rejected_when_invalid() {
        for bad in [
            "12",
            "abc",
            "+47 123",
            "+999 1234567",
            "4123456789012345678",
        ] {
            assert!(Mobile::parse(bad, no()).is_err(), "{bad}");
        }
    }

    #[test]
    fn country_is_upper_cased_when_parsed() {
        assert_eq!(Country::parse(" no ").unwrap().code(), "NO");
        assert!(Country::parse("XX").is_err());
    }

    proptest! {
        #[test]
        fn email_normalising_twice_equals_once(local in "[A-Za-z0-9._%+-]{1,20}", domain in "[A-Za-z0-9]{1,10}\\.[A-Za-z]{2,6}") {
            if let Ok(once) = Email::parse(&format!("{local}@{domain}")) {
                let twice = Email::parse(once.normalized()).unwrap();
                prop_assert_eq!(twice.normalized(), once.normalized());
            }
        }

        #[test]
        fn mobile_normalising_twice_equals_once(digits in "[2-9][0-9]{7}") {
            if let Ok(once) = Mobile::parse(&digits, no()) {
                let twice = Mobile::parse(once.as_str(), None).unwrap();
                prop_assert_eq!(twice, once);
            }
        }
    }
}

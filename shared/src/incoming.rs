//! An incoming contact record, as every channel hands it to the rules: trimmed, normalised,
//! empty values dropped (R-GEN-1: absent and empty both mean "leave as it is").
//! `ContactInput` is the raw JSON shape of API.md; `TryFrom`-style conversion validates it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::model::{ConsentStatus, CustomValue, TextFields};
use crate::normalize::{Country, Email, ExternalId, Mobile, ValidationError};

/// Longest text value the API accepts in one field, in Unicode characters.
pub const API_TEXT_MAX_CHARS: usize = 1024;
/// Most custom fields one record may carry.
pub const CUSTOM_FIELDS_MAX: usize = 100;
/// Most list or tag names one record may carry.
pub const MEMBERSHIPS_MAX: usize = 100;

/// A claim about consent carried by a record: the status, and when it was given if the source
/// says so (an ERP OPTIN date); an undated claim counts from the moment it is ingested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentClaim {
    pub status: ConsentStatus,
    pub at: Option<DateTime<Utc>>,
    pub evidence: Option<String>,
}

/// A validated incoming record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Incoming {
    pub fields: TextFields,
    pub email: Option<Email>,
    pub mobile: Option<Mobile>,
    pub external_id: Option<ExternalId>,
    pub custom: BTreeMap<String, CustomValue>,
    pub email_marketing: Option<ConsentClaim>,
    pub sms_marketing: Option<ConsentClaim>,
    pub lists: BTreeSet<String>,
    pub tags: BTreeSet<String>,
}

impl Incoming {
    /// True when the record carries no value at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
            && self.email.is_none()
            && self.mobile.is_none()
            && self.external_id.is_none()
            && self.custom.is_empty()
            && self.email_marketing.is_none()
            && self.sms_marketing.is_none()
            && self.lists.is_empty()
            && self.tags.is_empty()
    }
}

/// Why a raw record was refused: the field, a stable code and a message naming the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl From<ValidationError> for InputError {
    fn from(e: ValidationError) -> Self {
        Self {
            field: e.field().to_owned(),
            code: e.code(),
            message: e.to_string(),
        }
    }
}

fn invalid(field: &str, code: &'static str, message: String) -> InputError {
    InputError {
        field: field.to_owned(),
        code,
        message,
    }
}

/// A consent value as API clients send it: `true`, `"opted_out"`, or `{"status", "at"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ConsentInput {
    Flag(bool),
    Status(String),
    Full {
        status: String,
        at: Option<DateTime<Utc>>,
    },
}

/// The raw contact of API.md. Read-only attributes of a fetched contact are accepted and
/// ignored, so a client may send back what it read; any other unknown field is refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub address: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub note: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub external_id: Option<String>,
    pub custom: Option<BTreeMap<String, CustomValue>>,
    pub email_marketing: Option<ConsentInput>,
    pub sms_marketing: Option<ConsentInput>,
    pub lists: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    // Read-only attributes, ignored on input.
    #[serde(default, rename = "id")]
    pub _id: serde::de::IgnoredAny,
    #[serde(default, rename = "labels")]
    pub _labels: serde::de::IgnoredAny,
    #[serde(default, rename = "created_at")]
    pub _created_at: serde::de::IgnoredAny,
    #[serde(default, rename = "updated_at")]
    pub _updated_at: serde::de::IgnoredAny,
    #[serde(default, rename = "version")]
    pub _version: serde::de::IgnoredAny,
}

/// Trims a text value; empty becomes `None`; too long is an error naming the field.
pub fn clean_text(
    field: &str,
    raw: Option<String>,
    max_chars: usize,
) -> Result<Option<String>, InputError> {
    let Some(raw) = raw else { return Ok(None) };
    let v = raw.trim();
    if v.is_empty() {
        return Ok(None);
    }
    // Counted before trimming: what the caller sent is what the limit is about.
    let n = raw.chars().count();
    if n > max_chars {
        return Err(invalid(
            field,
            "too_long",
            format!("value has {n} characters, the limit is {max_chars}"),
        ));
    }
    Ok(Some(v.to_owned()))
}

fn parse_status(field: &str, raw: &str) -> Result<ConsentStatus, InputError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "opted_in" => Ok(ConsentStatus::OptedIn),
        "opted_out" => Ok(ConsentStatus::OptedOut),
        "unknown" => Ok(ConsentStatus::Unknown),
        _ => Err(invalid(
            field,
            "invalid_consent",
            format!("{raw:?} is not one of opted_in, opted_out, unknown, true, false"),
        )),
    }
}

fn consent_claim(
    field: &str,
    input: Option<ConsentInput>,
) -> Result<Option<ConsentClaim>, InputError> {
    let (status, at) = match input {
        None => return Ok(None),
        Some(ConsentInput::Flag(true)) => (ConsentStatus::OptedIn, None),
        Some(ConsentInput::Flag(false)) => (ConsentStatus::OptedOut, None),
        Some(ConsentInput::Status(s)) => (parse_status(field, &s)?, None),
        Some(ConsentInput::Full { status, at }) => (parse_status(field, &status)?, at),
    };
    Ok((status != ConsentStatus::Unknown).then_some(ConsentClaim {
        status,
        at,
        evidence: None,
    }))
}

fn memberships(field: &str, raw: Option<Vec<String>>) -> Result<BTreeSet<String>, InputError> {
    let raw = raw.unwrap_or_default();
    if raw.len() > MEMBERSHIPS_MAX {
        return Err(invalid(
            field,
            "too_many",
            format!("at most {MEMBERSHIPS_MAX} entries"),
        ));
    }
    let mut out = BTreeSet::new();
    for v in raw {
        if let Some(v) = clean_text(field, Some(v), 200)? {
            out.insert(v);
        }
    }
    Ok(out)
}

/// DynamoDB stores numbers of magnitude 1e-130 to below 1e126 (and zero), 38 digits.
fn storable(n: &serde_json::Number) -> bool {
    match n.as_f64() {
        Some(x) => x == 0.0 || (1e-130..1e126).contains(&x.abs()),
        None => false,
    }
}

fn custom_values(
    raw: Option<BTreeMap<String, CustomValue>>,
) -> Result<BTreeMap<String, CustomValue>, InputError> {
    let raw = raw.unwrap_or_default();
    if raw.len() > CUSTOM_FIELDS_MAX {
        return Err(invalid(
            "custom",
            "too_many",
            format!("at most {CUSTOM_FIELDS_MAX} custom fields"),
        ));
    }
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        let name = name.trim().to_owned();
        let field = format!("custom.{name}");
        if name.is_empty() || name.chars().count() > 100 {
            return Err(invalid(
                "custom",
                "invalid_custom_field",
                "custom field names are 1 to 100 characters".into(),
            ));
        }
        let value = match value {
            CustomValue::Null => continue,
            CustomValue::String(s) => match clean_text(&field, Some(s), API_TEXT_MAX_CHARS)? {
                Some(s) => CustomValue::String(s),
                None => continue,
            },
            CustomValue::Number(n) if !storable(&n) => {
                return Err(invalid(
                    &field,
                    "invalid_custom_value",
                    format!(
                    "{n} is outside the numbers that can be stored (1e-130 to 1e125 in magnitude)"
                ),
                ))
            }
            v @ (CustomValue::Bool(_) | CustomValue::Number(_)) => v,
            CustomValue::Array(_) | CustomValue::Object(_) => {
                return Err(invalid(
                    &field,
                    "invalid_custom_value",
                    "custom values are text, numbers or booleans".into(),
                ))
            }
        };
        out.insert(name, value);
    }
    Ok(out)
}

impl ContactInput {
    /// Validates and normalises; national mobiles use `default_country`.
    pub fn into_incoming(self, default_country: Option<Country>) -> Result<Incoming, InputError> {
        let max = API_TEXT_MAX_CHARS;
        let fields = TextFields {
            first_name: clean_text("first_name", self.first_name, max)?,
            last_name: clean_text("last_name", self.last_name, max)?,
            company: clean_text("company", self.company, max)?,
            address: clean_text("address", self.address, max)?,
            postal_code: clean_text("postal_code", self.postal_code, max)?,
            city: clean_text("city", self.city, max)?,
            country: clean_text("country", self.country, max)?,
            note: clean_text("note", self.note, max)?,
        };
        let email = match clean_text("email", self.email, max)? {
            Some(raw) => Some(Email::parse(&raw)?),
            None => None,
        };
        let mobile = match clean_text("mobile", self.mobile, max)? {
            Some(raw) => Some(Mobile::parse(&raw, default_country)?),
            None => None,
        };
        let external_id = match clean_text("external_id", self.external_id, max)? {
            Some(raw) => Some(ExternalId::parse(&raw)?),
            None => None,
        };
        Ok(Incoming {
            fields,
            email,
            mobile,
            external_id,
            custom: custom_values(self.custom)?,
            email_marketing: consent_claim("email_marketing", self.email_marketing)?,
            sms_marketing: consent_claim("sms_marketing", self.sms_marketing)?,
            lists: memberships("lists", self.lists)?,
            tags: memberships("tags", self.tags)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Incoming, InputError> {
        let input: ContactInput = serde_json::from_str(json).unwrap();
        input.into_incoming(Some(Country::parse("NO").unwrap()))
    }

    #[test]
    fn input_refuses_custom_numbers_when_outside_what_dynamodb_stores() {
        for bad in ["-4.0e-236", "1e126", "2.5e300"] {
            let e = parse(&format!(r#"{{"custom": {{"n": {bad}}}}}"#)).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.code),
                ("custom.n", "invalid_custom_value"),
                "{bad}"
            );
        }
        for good in ["0", "-1.5e-130", "9.9e125", "42"] {
            assert!(
                parse(&format!(r#"{{"custom": {{"n": {good}}}}}"#)).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn input_counts_a_text_limit_on_what_was_sent_when_it_has_outer_whitespace() {
        let at_limit = "x".repeat(API_TEXT_MAX_CHARS);
        assert!(parse(&format!(r#"{{"city": "{at_limit}"}}"#)).is_ok());
        let e = parse(&format!(r#"{{"city": " {at_limit}"}}"#)).unwrap_err();
        assert_eq!(e.code, "too_long");
    }

    #[test]
    fn input_drops_empty_values_when_blank_or_whitespace() {
        let i =
            parse(r#"{"first_name": "  ", "email": "", "custom": {"a": null, "b": " "}}"#).unwrap();
        assert!(i.is_empty());
    }

    #[test]
    fn input_error_names_the_field_when_email_malformed() {
        let e = parse(r#"{"email": "nope"}"#).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("email", "invalid_email"));
    }

    #[test]
    fn input_accepts_consent_as_bool_status_or_object() {
        let i = parse(r#"{"email_marketing": true, "sms_marketing": {"status": "opted_out", "at": "2024-01-02T03:04:05Z"}}"#).unwrap();
        assert_eq!(i.email_marketing.unwrap().status, ConsentStatus::OptedIn);
        let sms = i.sms_marketing.unwrap();
        assert_eq!(sms.status, ConsentStatus::OptedOut);
        assert!(sms.at.is_some());
    }

    #[test]
    fn input_is_refused_when_field_unknown() {
        assert!(serde_json::from_str::<ContactInput>(r#"{"emial": "a@b.no"}"#).is_err());
    }

    #[test]
    fn input_ignores_read_only_attributes_when_sent_back() {
        let i =
            parse(r#"{"id": "x", "version": 3, "labels": ["l"], "first_name": "Ola"}"#).unwrap();
        assert_eq!(i.fields.first_name.as_deref(), Some("Ola"));
    }

    #[test]
    fn input_is_refused_when_text_too_long() {
        let long = "x".repeat(API_TEXT_MAX_CHARS + 1);
        let e = parse(&format!(r#"{{"note": "{long}"}}"#)).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("note", "too_long"));
    }
}

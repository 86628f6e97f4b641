//! Signup forms (R-FORM): the webhook signature (HMAC-SHA256 over `"<t>.<raw body>"`, a
//! timestamp tolerance, constant-time comparison), submission bodies (JSON or URL-encoded) and
//! SMS-link tokens. Pure: the time and the secret come in as arguments.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::incoming::{ConsentInput, ContactInput, InputError};
use crate::model::AccountId;

/// How old a signature may be (API.md: 5 minutes), either way.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;
/// Most mobiles in one `sms-links` request.
pub const SMS_LINKS_MAX: usize = 1000;
/// How long an SMS link stays valid.
pub const TOKEN_TTL_DAYS: i64 = 90;

/// A stored form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Form {
    pub form_id: String,
    pub account_id: AccountId,
    pub name: String,
    pub list_id: Option<String>,
    pub fields: Vec<String>,
    /// The HMAC key shared with the hosted page. Needed in clear to verify, so it is stored as
    /// is (the table is encrypted at rest) and never logged or shown again.
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// An SMS link's token as stored (looked up by the token's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormToken {
    pub form_id: String,
    pub account_id: AccountId,
    pub mobile: String,
    pub created_at: DateTime<Utc>,
    pub ttl: i64,
}

/// Why a webhook signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Intake-Signature header")]
    Missing,
    #[error("malformed Intake-Signature header: expected t=<unix>,v1=<hex>")]
    Malformed,
    #[error("signature timestamp is outside the {SIGNATURE_TOLERANCE_SECS} s tolerance")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// The `v1` signature of `body` at time `t`, hex.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `Intake-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` (several v1 allow key rotation).
pub fn verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => candidates.push(v.to_ascii_lowercase()),
            _ => return Err(SignatureError::Malformed),
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let expected = sign(secret, t, body);
    let ok = candidates.iter().fold(false, |ok, c| {
        ok | crate::auth::constant_time_eq(c.as_bytes(), expected.as_bytes())
    });
    ok.then_some(()).ok_or(SignatureError::Mismatch)
}

/// A parsed submission: the contact values and the SMS token, if any.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub contact: ContactInput,
    pub token: Option<String>,
}

fn consent_word(field: &str, raw: &str) -> Result<ConsentInput, InputError> {
    match raw.trim().to_lowercase().as_str() {
        "on" | "yes" | "true" | "1" | "opted_in" => Ok(ConsentInput::Flag(true)),
        "off" | "no" | "false" | "0" | "opted_out" => Ok(ConsentInput::Flag(false)),
        _ => Err(InputError {
            field: field.to_owned(),
            code: "invalid_consent",
            message: format!("{raw:?} is not a consent value (yes/no, on/off, true/false)"),
        }),
    }
}

/// Reads a submission from flat key/value pairs. Known contact fields and `custom.<name>` /
/// `custom[<name>]` are taken; other keys (buttons, honeypots a page adds) are ignored.
pub fn parse_pairs(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<Submission, InputError> {
    let mut s = Submission::default();
    let mut custom = BTreeMap::new();
    for (key, value) in pairs {
        let c = &mut s.contact;
        let slot = match key.as_str() {
            "first_name" => &mut c.first_name,
            "last_name" => &mut c.last_name,
            "company" => &mut c.company,
            "address" => &mut c.address,
            "postal_code" => &mut c.postal_code,
            "city" => &mut c.city,
            "country" => &mut c.country,
            "note" => &mut c.note,
            "email" => &mut c.email,
            "mobile" => &mut c.mobile,
            "token" => &mut s.token,
            "email_marketing" => {
                c.email_marketing = Some(consent_word(&key, &value)?);
                continue;
            }
            "sms_marketing" => {
                c.sms_marketing = Some(consent_word(&key, &value)?);
                continue;
            }
            other => {
                let name = other.strip_prefix("custom.").or_else(|| {
                    other
                        .strip_prefix("custom[")
                        .and_then(|n| n.strip_suffix(']'))
                });
                if let Some(name) = name {
                    custom.insert(name.to_owned(), serde_json::Value::String(value));
                }
                continue;
            }
        };
        *slot = Some(value);
    }
    if !custom.is_empty() {
        s.contact.custom = Some(custom);
    }
    s.token = s
        .token
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    Ok(s)
}

/// Reads a submission body: URL-encoded when the content type says so, else a flat JSON object
/// whose values are strings, numbers or booleans.
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Submission, InputError> {
    let malformed = |m: String| InputError {
        field: "body".into(),
        code: "malformed_body",
        message: m,
    };
    let urlencoded = content_type.is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if urlencoded {
        return parse_pairs(
            form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
    }
    let value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("body is not a JSON object: {e}")))?;
    let mut pairs = Vec::with_capacity(value.len());
    for (k, v) in value {
        let text = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Null => continue,
            _ => {
                return Err(malformed(format!(
                    "{k}: values must be text, numbers or booleans"
                )))
            }
        };
        pairs.push((k, text));
    }
    parse_pairs(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_when_fresh_and_matching() {
        let sig = sign("s3cret", 1_000, b"email=a%40b.no");
        assert_eq!(
            verify(
                "s3cret",
                Some(&format!("t=1000,v1={sig}")),
                b"email=a%40b.no",
                1_100
            ),
            Ok(())
        );
    }

    #[test]
    fn signature_accepts_any_v1_when_keys_rotate() {
        let sig = sign("new", 1_000, b"{}");
        assert_eq!(
            verify(
                "new",
                Some(&format!("t=1000,v1=deadbeef,v1={sig}")),
                b"{}",
                1_000
            ),
            Ok(())
        );
    }

    #[test]
    fn signature_is_refused_when_stale_tampered_or_malformed() {
        let sig = sign("s3cret", 1_000, b"{}");
        let h = format!("t=1000,v1={sig}");
        assert_eq!(
            verify("s3cret", Some(&h), b"{}", 1_000 + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify("s3cret", Some(&h), b"{} ", 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("other", Some(&h), b"{}", 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", Some("v1=abc"), b"{}", 1_000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify("s3cret", None, b"{}", 1_000),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn urlencoded_submission_maps_fields_consent_custom_and_token() {
        let body = b"first_name=%C3%85se&email=ase%40example.no&email_marketing=on&custom%5Bshoe%5D=41&token=abc&submit=Send";
        let s = parse_body(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            body,
        )
        .unwrap();
        assert_eq!(s.contact.first_name.as_deref(), Some("Åse"));
        assert_eq!(s.contact.email.as_deref(), Some("ase@example.no"));
        assert!(matches!(
            s.contact.email_marketing,
            Some(ConsentInput::Flag(true))
        ));
        assert_eq!(s.contact.custom.unwrap()["shoe"], "41");
        assert_eq!(s.token.as_deref(), Some("abc"));
    }

    #[test]
    fn json_submission_is_refused_when_values_nested() {
        assert!(parse_body(Some("application/json"), br#"{"email": {"a": 1}}"#).is_err());
        assert!(parse_body(None, b"not json").is_err());
    }
}

//! The contact as the whole product sees it: text fields, identity values, custom fields,
//! consent per channel, list/tag/label memberships and the optimistic `version`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::normalize::{Email, ExternalId, Mobile};

/// Identifies an account (tenant). Every key in every table carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub String);

/// Identifies a contact inside its account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactId(pub String);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for ContactId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The plain text fields of a contact, in API order.
pub const TEXT_FIELDS: [&str; 8] = [
    "first_name",
    "last_name",
    "company",
    "address",
    "postal_code",
    "city",
    "country",
    "note",
];

/// Plain text fields. `None` means "no value"; an empty string is never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextFields {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub address: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub note: Option<String>,
}

impl TextFields {
    /// Every field with its name, in `TEXT_FIELDS` order.
    pub fn slots(&self) -> [(&'static str, &Option<String>); 8] {
        [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("company", &self.company),
            ("address", &self.address),
            ("postal_code", &self.postal_code),
            ("city", &self.city),
            ("country", &self.country),
            ("note", &self.note),
        ]
    }

    pub fn slots_mut(&mut self) -> [(&'static str, &mut Option<String>); 8] {
        [
            ("first_name", &mut self.first_name),
            ("last_name", &mut self.last_name),
            ("company", &mut self.company),
            ("address", &mut self.address),
            ("postal_code", &mut self.postal_code),
            ("city", &mut self.city),
            ("country", &mut self.country),
            ("note", &mut self.note),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.slots().iter().all(|(_, v)| v.is_none())
    }
}

/// Marketing consent state of one channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    OptedIn,
    OptedOut,
    #[default]
    Unknown,
}

impl ConsentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OptedIn => "opted_in",
            Self::OptedOut => "opted_out",
            Self::Unknown => "unknown",
        }
    }
}

/// Consent of one channel: status, when it was given or withdrawn, by which source, and any
/// evidence (a form submission's IP, a feed's record date).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub status: ConsentStatus,
    pub at: Option<DateTime<Utc>>,
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// A scalar custom-field value. Objects and arrays are refused at the edge.
pub type CustomValue = serde_json::Value;

/// A stored contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: ContactId,
    pub fields: TextFields,
    pub email: Option<Email>,
    pub mobile: Option<Mobile>,
    /// An id another system gives the contact (an ERP customer code); an identity value.
    pub external_id: Option<ExternalId>,
    pub custom: BTreeMap<String, CustomValue>,
    pub email_marketing: Consent,
    pub sms_marketing: Consent,
    pub lists: BTreeSet<String>,
    pub tags: BTreeSet<String>,
    pub labels: BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped on every write; a write states the version it read (optimistic concurrency).
    pub version: u64,
    /// Which of its identity values this contact owns (holds the identity item of).
    /// A contact may carry a value another contact owns (shared emails, manual duplicates).
    pub owns: Owns,
}

/// Ownership of identity items, kept on the contact and written in the same transaction as
/// the items themselves, so it always agrees with them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owns {
    pub email: bool,
    pub mobile: bool,
    pub external_id: bool,
}

impl Contact {
    /// An empty contact with no values, version 0 (not yet stored).
    pub fn empty(id: ContactId, now: DateTime<Utc>) -> Self {
        Self {
            id,
            fields: TextFields::default(),
            email: None,
            mobile: None,
            external_id: None,
            custom: BTreeMap::new(),
            email_marketing: Consent::default(),
            sms_marketing: Consent::default(),
            lists: BTreeSet::new(),
            tags: BTreeSet::new(),
            labels: BTreeSet::new(),
            created_at: now,
            updated_at: now,
            version: 0,
            owns: Owns::default(),
        }
    }

    /// True when the stored values (everything but timestamps, version and labels) are equal.
    pub fn same_values(&self, other: &Self) -> bool {
        self.fields == other.fields
            && self.email.as_ref().map(Email::normalized)
                == other.email.as_ref().map(Email::normalized)
            && self.mobile == other.mobile
            && self.external_id == other.external_id
            && self.custom == other.custom
            && self.email_marketing == other.email_marketing
            && self.sms_marketing == other.sms_marketing
            && self.lists == other.lists
            && self.tags == other.tags
    }
}

/// The API representation of a contact (API.md "Contacts").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactView {
    pub id: String,
    #[serde(flatten)]
    pub fields: TextFields,
    pub email: Option<String>,
    pub mobile: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    pub custom: BTreeMap<String, CustomValue>,
    pub email_marketing: Consent,
    pub sms_marketing: Consent,
    pub lists: Vec<String>,
    pub tags: Vec<String>,
    pub labels: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl From<&Contact> for ContactView {
    fn from(c: &Contact) -> Self {
        Self {
            id: c.id.0.clone(),
            fields: c.fields.clone(),
            email: c.email.as_ref().map(|e| e.as_str().to_owned()),
            mobile: c.mobile.as_ref().map(|m| m.as_str().to_owned()),
            external_id: c.external_id.as_ref().map(|x| x.as_str().to_owned()),
            custom: c.custom.clone(),
            email_marketing: c.email_marketing.clone(),
            sms_marketing: c.sms_marketing.clone(),
            lists: c.lists.iter().cloned().collect(),
            tags: c.tags.iter().cloned().collect(),
            labels: c.labels.iter().cloned().collect(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            version: c.version,
        }
    }
}

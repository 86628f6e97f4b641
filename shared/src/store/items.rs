//! The only place that knows DynamoDB item shapes: key builders, attribute names, and the
//! conversion between domain types and items. Decoding a bad item is a typed error.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{AccountId, Consent, Contact, ContactId, CustomValue, Owns, TextFields};
use crate::normalize::{Email, ExternalId, Mobile};
use crate::rollback::{UndoRecord, UndoState};
use crate::rules::IdentityKey;

use super::StoreError;

pub type Item = HashMap<String, AttributeValue>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const SK_CONTACT: &str = "CONTACT";
pub const SK_IDENTITY: &str = "IDENTITY";
/// GSI partition attributes: `<account>#<normalised value>`, present only when the value is.
pub const GSI_EMAIL_ATTR: &str = "gsi_email";
pub const GSI_MOBILE_ATTR: &str = "gsi_mobile";
pub const GSI_EMAIL: &str = "by-email";
pub const GSI_MOBILE: &str = "by-mobile";
pub const GSI_EXTERNAL_ID_ATTR: &str = "gsi_external_id";
pub const GSI_EXTERNAL_ID: &str = "by-external-id";
/// The change feed (issue 8): a sharded GSI over every contact's last write. Partition
/// `<account>#<shard>` spreads an account's writes over `CHANGE_SHARDS` index partitions (one
/// takes ~1,000 writes/s); sort `change_key` orders them by write time, then id.
pub const GSI_CHANGES: &str = "by-change";
pub const CHANGE_SHARD_ATTR: &str = "gsi_change";
pub const CHANGE_KEY_ATTR: &str = "change_key";
pub const CHANGE_SHARDS: u32 = 16;
pub const VERSION_ATTR: &str = "version";
pub const OWNER_ATTR: &str = "contact_id";

pub fn contact_pk(account: &AccountId, id: &ContactId) -> String {
    format!("ACC#{}#CONTACT#{}", account.0, id.0)
}

pub fn identity_pk(account: &AccountId, key: &IdentityKey) -> String {
    match key {
        IdentityKey::Email(v) => format!("ACC#{}#EMAIL#{v}", account.0),
        IdentityKey::Mobile(v) => format!("ACC#{}#MOBILE#{v}", account.0),
        IdentityKey::ExternalId(v) => format!("ACC#{}#EXT#{v}", account.0),
    }
}

/// The change-feed shard of a contact: FNV-1a of its id, stable across processes.
pub fn change_shard(id: &ContactId) -> u32 {
    let hash = id.0.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % u64::from(CHANGE_SHARDS)) as u32
}

pub fn change_partition(account: &AccountId, shard: u32) -> String {
    format!("{}#{shard:02}", account.0)
}

/// A point in the change feed: fixed-width UTC time (so text order is time order), then id.
pub fn change_key(at: DateTime<Utc>, id: &ContactId) -> String {
    format!("{}#{}", change_time(at), id.0)
}

/// The time part of change keys; every key at or after `at` sorts after it.
pub fn change_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn gsi_value(account: &AccountId, normalized: &str) -> String {
    format!("{}#{normalized}", account.0)
}

pub fn key(pk: String, sk: &str) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// The stored shape of a contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ContactItem {
    pk: String,
    sk: String,
    account_id: String,
    id: String,
    first_name: Option<String>,
    last_name: Option<String>,
    company: Option<String>,
    address: Option<String>,
    postal_code: Option<String>,
    city: Option<String>,
    country: Option<String>,
    note: Option<String>,
    email: Option<String>,
    email_norm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi_email: Option<String>,
    mobile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi_mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi_external_id: Option<String>,
    #[serde(default)]
    custom: BTreeMap<String, CustomValue>,
    email_marketing: Consent,
    sms_marketing: Consent,
    #[serde(default)]
    lists: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
    owns_email: bool,
    owns_mobile: bool,
    #[serde(default)]
    owns_external_id: bool,
    /// The change feed's keys, stamped with the time of the write (not `updated_at`: a revert
    /// putting back an old image is a change too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi_change: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change_key: Option<String>,
}

pub fn contact_to_item(account: &AccountId, c: &Contact) -> Result<Item, StoreError> {
    let f = c.fields.clone();
    let item = ContactItem {
        pk: contact_pk(account, &c.id),
        sk: SK_CONTACT.to_owned(),
        account_id: account.0.clone(),
        id: c.id.0.clone(),
        first_name: f.first_name,
        last_name: f.last_name,
        company: f.company,
        address: f.address,
        postal_code: f.postal_code,
        city: f.city,
        country: f.country,
        note: f.note,
        email: c.email.as_ref().map(|e| e.as_str().to_owned()),
        email_norm: c.email.as_ref().map(|e| e.normalized().to_owned()),
        gsi_email: c.email.as_ref().map(|e| gsi_value(account, e.normalized())),
        mobile: c.mobile.as_ref().map(|m| m.as_str().to_owned()),
        gsi_mobile: c.mobile.as_ref().map(|m| gsi_value(account, m.as_str())),
        external_id: c.external_id.as_ref().map(|x| x.as_str().to_owned()),
        gsi_external_id: (c.external_id.as_ref()).map(|x| gsi_value(account, x.as_str())),
        custom: c.custom.clone(),
        email_marketing: c.email_marketing.clone(),
        sms_marketing: c.sms_marketing.clone(),
        lists: c.lists.iter().cloned().collect(),
        tags: c.tags.iter().cloned().collect(),
        labels: c.labels.iter().cloned().collect(),
        created_at: c.created_at,
        updated_at: c.updated_at,
        version: c.version,
        owns_email: c.owns.email,
        owns_mobile: c.owns.mobile,
        owns_external_id: c.owns.external_id,
        gsi_change: Some(change_partition(account, change_shard(&c.id))),
        change_key: Some(change_key(Utc::now(), &c.id)),
    };
    serde_dynamo::to_item(item).map_err(|e| StoreError::Encode(e.to_string()))
}

/// A list membership begun (R-FEED-9 list growth), in the settings table under the list:
/// `ACC#<a>#LIST#<list>` / `JOINED#<yyyy-mm-dd>#<contact id>`, written with the contact.
pub fn list_join_item(account: &AccountId, list_id: &str, c: &Contact) -> Item {
    let day = c.updated_at.format("%Y-%m-%d").to_string();
    let mut item = list_join_key(account, list_id, c.updated_at, &c.id);
    item.insert("day".into(), AttributeValue::S(day));
    item.insert(OWNER_ATTR.into(), AttributeValue::S(c.id.0.clone()));
    item
}

/// The key of a contact's list-join record for a join at `at`.
pub fn list_join_key(
    account: &AccountId,
    list_id: &str,
    at: DateTime<Utc>,
    id: &ContactId,
) -> Item {
    key(
        list_pk(account, list_id),
        &format!("{JOINED_PREFIX}{}#{}", at.format("%Y-%m-%d"), id.0),
    )
}

pub const JOINED_PREFIX: &str = "JOINED#";

pub fn list_pk(account: &AccountId, list_id: &str) -> String {
    format!("ACC#{}#LIST#{list_id}", account.0)
}

/// Sort keys of an import's undo records, under the job's partition in the imports table.
pub const UNDO_SK_PREFIX: &str = "UNDO#";

pub fn undo_sk(id: &ContactId) -> String {
    format!("{UNDO_SK_PREFIX}{}", id.0)
}

pub const UNDO_BEFORE_ATTR: &str = "before_image";
pub const UNDO_STATE_ATTR: &str = "undo_state";

pub fn undo_from_item(mut item: Item) -> Result<UndoRecord, StoreError> {
    let key = string_attr(&item, SK).unwrap_or_default();
    let bad = |reason: &str| StoreError::Decode {
        key: key.clone(),
        reason: reason.to_owned(),
    };
    let contact_id =
        ContactId(string_attr(&item, "contact_id").ok_or_else(|| bad("no contact_id"))?);
    let after_version = match item.get("after_version") {
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| bad("after_version"))?,
        _ => return Err(bad("no after_version")),
    };
    let before = match item.remove(UNDO_BEFORE_ATTR) {
        Some(AttributeValue::M(m)) => Some(contact_from_item(m)?),
        _ => None,
    };
    let state = match string_attr(&item, UNDO_STATE_ATTR).as_deref() {
        Some("restored") => UndoState::Restored,
        Some("deleted") => UndoState::Deleted,
        Some("kept") => UndoState::Kept,
        _ => UndoState::Pending,
    };
    Ok(UndoRecord {
        contact_id,
        after_version,
        before,
        state,
        reason: string_attr(&item, "reason"),
        chunk: match item.get("chunk") {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        },
    })
}

pub fn contact_from_item(item: Item) -> Result<Contact, StoreError> {
    let pk = string_attr(&item, PK).unwrap_or_default();
    let i: ContactItem = serde_dynamo::from_item(item).map_err(|e| StoreError::Decode {
        key: pk.clone(),
        reason: e.to_string(),
    })?;
    let email = match (i.email, i.email_norm) {
        (Some(display), Some(norm)) => Some(Email::from_stored(display, norm)),
        (None, None) => None,
        _ => {
            return Err(StoreError::Decode {
                key: pk,
                reason: "email without its normalised form".into(),
            })
        }
    };
    Ok(Contact {
        id: ContactId(i.id),
        fields: TextFields {
            first_name: i.first_name,
            last_name: i.last_name,
            company: i.company,
            address: i.address,
            postal_code: i.postal_code,
            city: i.city,
            country: i.country,
            note: i.note,
        },
        email,
        mobile: i.mobile.map(Mobile::from_stored),
        external_id: i.external_id.map(ExternalId::from_stored),
        custom: i.custom,
        email_marketing: i.email_marketing,
        sms_marketing: i.sms_marketing,
        lists: i.lists.into_iter().collect(),
        tags: i.tags.into_iter().collect(),
        labels: i.labels.into_iter().collect(),
        created_at: i.created_at,
        updated_at: i.updated_at,
        version: i.version,
        owns: Owns {
            email: i.owns_email,
            mobile: i.owns_mobile,
            external_id: i.owns_external_id,
        },
    })
}

/// Sort-key prefix of consent events, under the contact's partition (append-only history).
pub const CONSENT_SK_PREFIX: &str = "CONSENT#";

/// The consent changes of one contact write (R-FEED-10 read-back, GDPR proof), stored as one
/// append-only item per write that changed any channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvent {
    /// The contact version the write left.
    pub version: u64,
    pub recorded_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_marketing: Option<Consent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_marketing: Option<Consent>,
}

impl ConsentEvent {
    /// The event of a write from `before` to `after`, if it changed any channel's consent.
    pub fn of(before: Option<&Contact>, after: &Contact, at: DateTime<Utc>) -> Option<Self> {
        let blank = Consent::default();
        let changed =
            |b: Option<&Consent>, a: &Consent| (b.unwrap_or(&blank) != a).then(|| a.clone());
        let event = Self {
            version: after.version,
            recorded_at: at,
            email_marketing: changed(before.map(|b| &b.email_marketing), &after.email_marketing),
            sms_marketing: changed(before.map(|b| &b.sms_marketing), &after.sms_marketing),
        };
        (event.email_marketing.is_some() || event.sms_marketing.is_some()).then_some(event)
    }
}

pub fn consent_event_item(
    account: &AccountId,
    id: &ContactId,
    event: &ConsentEvent,
) -> Result<Item, StoreError> {
    let sk = format!(
        "{CONSENT_SK_PREFIX}{}#v{:012}",
        change_time(event.recorded_at),
        event.version
    );
    encode(contact_pk(account, id), &sk, event)
}

/// Sort key of a deleted contact's tombstone: no personal data, only the id and when, so
/// the change feed can tell pollers the contact is gone.
pub const SK_DELETED: &str = "DELETED";

pub fn tombstone_item(account: &AccountId, id: &ContactId, at: DateTime<Utc>) -> Item {
    let mut item = key(contact_pk(account, id), SK_DELETED);
    item.insert("id".into(), AttributeValue::S(id.0.clone()));
    item.insert("deleted_at".into(), AttributeValue::S(at.to_rfc3339()));
    item.insert(
        CHANGE_SHARD_ATTR.into(),
        AttributeValue::S(change_partition(account, change_shard(id))),
    );
    item.insert(
        CHANGE_KEY_ATTR.into(),
        AttributeValue::S(change_key(at, id)),
    );
    item
}

/// The key of a contact's latest write in the change feed, if the item carries one.
pub fn item_change_key(item: &Item) -> Option<String> {
    string_attr(item, CHANGE_KEY_ATTR)
}

/// An identity item: `pk` names the value, `contact_id` its owner.
pub fn identity_item(account: &AccountId, key: &IdentityKey, owner: &ContactId) -> Item {
    let mut item = self::key(identity_pk(account, key), SK_IDENTITY);
    item.insert(OWNER_ATTR.to_owned(), AttributeValue::S(owner.0.clone()));
    item
}

pub fn string_attr(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// An item's size as DynamoDB bills it: attribute names plus values (strings by UTF-8 length,
/// numbers about one byte per two digits, maps and lists with 3 bytes of overhead plus their
/// elements and 1 byte per element).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::B(b) => b.as_ref().len(),
        _ => 1,
    }
}

/// A serde value stored as an item under `pk`/`sk` (settings-table records, jobs).
pub fn encode<T: Serialize>(pk: String, sk: &str, value: &T) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(value).map_err(|e| StoreError::Encode(e.to_string()))?;
    item.extend(key(pk, sk));
    Ok(item)
}

/// A stored record read back; a malformed one is a typed error naming its key.
pub fn decode<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    let key = string_attr(&item, PK).unwrap_or_default();
    serde_dynamo::from_item(item).map_err(|e| StoreError::Decode {
        key,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConsentStatus;
    use crate::normalize::Country;
    use chrono::TimeZone;

    #[test]
    fn contact_item_round_trips_when_fully_populated() {
        let now = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap();
        let mut c = Contact::empty(ContactId("c1".into()), now);
        c.fields.first_name = Some("Åse".into());
        c.fields.note = Some("line\nbreak, \"quoted\"".into());
        c.email = Some(Email::parse("Ase@Example.no").unwrap());
        c.mobile = Some(Mobile::parse("41234567", Some(Country::parse("NO").unwrap())).unwrap());
        c.custom.insert("score".into(), serde_json::json!(12.5));
        c.custom.insert("vip".into(), serde_json::json!(false));
        c.custom.insert("code".into(), serde_json::json!("007"));
        c.email_marketing = Consent {
            status: ConsentStatus::OptedIn,
            at: Some(now),
            source: Some("api".into()),
            evidence: Some("203.0.113.9".into()),
        };
        c.lists.insert("l1".into());
        c.tags.insert("vip".into());
        c.labels.insert("2024-05-06 #1".into());
        c.version = 7;
        c.external_id = Some(ExternalId::parse("C-7").unwrap());
        c.owns = Owns {
            email: true,
            mobile: false,
            external_id: true,
        };
        let account = AccountId("a1".into());
        let item = contact_to_item(&account, &c).unwrap();
        assert_eq!(
            string_attr(&item, GSI_EMAIL_ATTR).as_deref(),
            Some("a1#ase@example.no")
        );
        assert_eq!(contact_from_item(item).unwrap(), c);
    }

    #[test]
    fn contact_item_has_no_gsi_attributes_when_values_absent() {
        let c = Contact::empty(ContactId("c1".into()), Utc::now());
        let item = contact_to_item(&AccountId("a".into()), &c).unwrap();
        assert!(!item.contains_key(GSI_EMAIL_ATTR) && !item.contains_key(GSI_MOBILE_ATTR));
    }

    #[test]
    fn contact_item_decode_fails_with_key_when_malformed() {
        let mut item = key("ACC#a#CONTACT#x".into(), SK_CONTACT);
        item.insert("version".into(), AttributeValue::S("nope".into()));
        let err = contact_from_item(item).unwrap_err();
        assert!(err.to_string().contains("ACC#a#CONTACT#x"), "{err}");
    }

    #[test]
    fn keys_carry_the_account_always() {
        let a = AccountId("acc".into());
        assert!(contact_pk(&a, &ContactId("c".into())).starts_with("ACC#acc#"));
        assert!(identity_pk(&a, &IdentityKey::Email("x@y.no".into())).starts_with("ACC#acc#"));
        assert!(identity_pk(&a, &IdentityKey::Mobile("+47".into())).starts_with("ACC#acc#"));
    }
}

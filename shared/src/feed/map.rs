//! A feed's mapping (R-FEED-3/4/6/7): each XML field paired with a contact field (or
//! explicitly ignored), the OPTIN field read as a dated consent claim, and tag/list rules from
//! classes and field values. Pure: an `Item` in, an `Incoming` (or the item's errors) out.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::xml::Item;
use crate::incoming::{ConsentClaim, Incoming};
use crate::model::{ConsentStatus, TEXT_FIELDS};
use crate::normalize::{Country, Email, ExternalId, Mobile};

/// Puts a contact on a tag and/or a list when a field has a value (or a given value):
/// `{"field": "class", "equals": "VIP", "tag": "vip", "list": "lst_…"}`; without `equals`
/// every value of the field becomes a tag of that name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRule {
    pub field: String,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub list: Option<String>,
}

/// The feed's field pairs and rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedMapping {
    /// XML field → `email`, `mobile`, a text field, `custom:<name>`, `consent` (email and SMS
    /// marketing: yes/no, dated by `<field>.param`), `email_marketing`, `sms_marketing`,
    /// `tags` (each value a tag) or `ignore`.
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
    #[serde(default)]
    pub tag_rules: Vec<TagRule>,
}

/// Fields the feed has that the mapping does not pair (R-FEED-4): a `<field>.param` is paired
/// with its field.
pub fn unmapped(seen: &BTreeSet<String>, m: &FeedMapping) -> Vec<String> {
    seen.iter()
        .filter(|f| !m.mapping.contains_key(*f))
        .filter(|f| {
            f.strip_suffix(".param")
                .is_none_or(|base| !m.mapping.contains_key(base))
        })
        .cloned()
        .collect()
}

/// Targets a mapping may use, checked when a feed is saved.
pub fn invalid_targets(m: &FeedMapping) -> Vec<String> {
    m.mapping
        .iter()
        .filter(|(_, t)| {
            let t = t.as_str();
            !(TEXT_FIELDS.contains(&t)
                || matches!(
                    t,
                    "email"
                        | "mobile"
                        | "external_id"
                        | "consent"
                        | "email_marketing"
                        | "sms_marketing"
                        | "tags"
                        | "ignore"
                )
                || t.strip_prefix("custom:")
                    .is_some_and(|n| !n.trim().is_empty()))
        })
        .map(|(f, t)| format!("{f} → {t}"))
        .collect()
}

/// An OPTIN value: yes/no in the words ERPs use.
fn optin(value: &str) -> Option<ConsentStatus> {
    match value.trim().to_lowercase().as_str() {
        "yes" | "y" | "true" | "1" | "jah" | "ja" | "ano" | "是" => Some(ConsentStatus::OptedIn),
        "no" | "n" | "false" | "0" | "ei" | "nei" | "ne" | "否" => Some(ConsentStatus::OptedOut),
        _ => None,
    }
}

/// A date as ERPs write it: ISO (`2024-03-01`, with or without a time) or Estonian/Norwegian
/// `01.03.2024`.
pub fn date(value: &str) -> Option<DateTime<Utc>> {
    let v = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    let day = v.get(..10).unwrap_or(v);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(day, "%d.%m.%Y"))
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// One problem with one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    pub field: String,
    pub reason: String,
}

/// Maps one item. `source` names the feed in consent evidence.
pub fn map_item(
    item: &Item,
    m: &FeedMapping,
    country: Option<Country>,
    source: &str,
) -> Result<Incoming, Vec<ItemError>> {
    let mut rec = Incoming::default();
    let mut errors = Vec::new();
    let err = |field: &str, reason: String| ItemError {
        field: field.to_owned(),
        reason,
    };
    for (field, target) in &m.mapping {
        let Some(value) = item.first(field).filter(|v| !v.is_empty()) else {
            continue;
        };
        match target.as_str() {
            "ignore" => {}
            "email" => match Email::parse(value) {
                Ok(e) => rec.email = Some(e),
                Err(e) => errors.push(err(field, e.to_string())),
            },
            "mobile" => match Mobile::parse(value, country) {
                Ok(p) => rec.mobile = Some(p),
                Err(e) => errors.push(err(field, e.to_string())),
            },
            "external_id" => match ExternalId::parse(value) {
                Ok(x) => rec.external_id = Some(x),
                Err(e) => errors.push(err(field, e.to_string())),
            },
            "tags" => rec
                .tags
                .extend(item.fields[field].iter().filter(|v| !v.is_empty()).cloned()),
            "consent" | "email_marketing" | "sms_marketing" => {
                let Some(status) = optin(value) else {
                    errors.push(err(field, format!("{value:?} is not yes or no")));
                    continue;
                };
                let at = item.first(&format!("{field}.param")).and_then(date);
                let claim = ConsentClaim {
                    status,
                    at,
                    evidence: Some(format!("{source} field {field}")),
                };
                if target != "sms_marketing" {
                    rec.email_marketing = Some(claim.clone());
                }
                if target != "email_marketing" {
                    rec.sms_marketing = Some(claim);
                }
            }
            t => {
                if let Some(name) = t.strip_prefix("custom:") {
                    rec.custom.insert(
                        name.trim().to_owned(),
                        serde_json::Value::String(value.to_owned()),
                    );
                } else if let Some((_, slot)) =
                    rec.fields.slots_mut().into_iter().find(|(n, _)| *n == t)
                {
                    *slot = Some(value.to_owned());
                }
            }
        }
    }
    for rule in &m.tag_rules {
        for value in item.fields.get(&rule.field).into_iter().flatten() {
            if value.is_empty()
                || rule
                    .equals
                    .as_ref()
                    .is_some_and(|e| !e.eq_ignore_ascii_case(value))
            {
                continue;
            }
            match (&rule.tag, &rule.equals) {
                (Some(tag), _) => {
                    rec.tags.insert(tag.clone());
                }
                (None, None) => {
                    rec.tags.insert(value.clone());
                }
                (None, Some(_)) => {}
            }
            if let Some(list) = &rule.list {
                rec.lists.insert(list.clone());
            }
        }
    }
    if errors.is_empty() {
        Ok(rec)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::xml::{parse, Limits};

    fn items() -> Vec<Item> {
        let xml = r#"<Customers>
          <Customer code="C1" name="Tõnu" email="TONU@example.ee" phone="5123 4567" class="VIP">
            <datafields><data code="OPTIN" content="yes" param="01.03.2024"/></datafields>
          </Customer>
          <Customer code="C2" name="Mari" email="mari@example.ee" class="Retail">
            <datafields><data code="OPTIN" content="ei" param="2024-05-02"/></datafields>
          </Customer>
        </Customers>"#;
        parse(xml.as_bytes(), "Customers", "Customer", &Limits::default())
            .unwrap()
            .items
    }

    fn mapping() -> FeedMapping {
        FeedMapping {
            mapping: [
                ("code", "custom:erp_code"),
                ("name", "first_name"),
                ("email", "email"),
                ("phone", "mobile"),
                ("OPTIN", "consent"),
                ("class", "ignore"),
            ]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            tag_rules: vec![TagRule {
                field: "class".into(),
                equals: Some("vip".into()),
                tag: Some("VIP customer".into()),
                list: Some("lst_vip".into()),
            }],
        }
    }

    #[test]
    fn r_feed_7_optin_reads_as_a_dated_consent_claim_on_both_channels() {
        let ee = Country::parse("EE").ok();
        let r = map_item(&items()[0], &mapping(), ee, "feed:f1").unwrap();
        let claim = r.email_marketing.unwrap();
        assert_eq!(claim.status, ConsentStatus::OptedIn);
        assert_eq!(claim.at, date("2024-03-01"), "Estonian date format read");
        assert_eq!(r.sms_marketing.unwrap().status, ConsentStatus::OptedIn);
        let mari = map_item(&items()[1], &mapping(), ee, "feed:f1").unwrap();
        assert_eq!(
            mari.email_marketing.unwrap().status,
            ConsentStatus::OptedOut
        );
    }

    #[test]
    fn r_feed_6_a_class_puts_the_contact_on_a_tag_and_a_list() {
        let ee = Country::parse("EE").ok();
        let vip = map_item(&items()[0], &mapping(), ee, "feed:f1").unwrap();
        assert!(vip.tags.contains("VIP customer") && vip.lists.contains("lst_vip"));
        assert_eq!(vip.mobile.unwrap().as_str(), "+37251234567");
        assert_eq!(vip.custom["erp_code"], "C1");
        let retail = map_item(&items()[1], &mapping(), ee, "feed:f1").unwrap();
        assert!(retail.tags.is_empty() && retail.lists.is_empty());
    }

    #[test]
    fn r_feed_4_unmapped_lists_every_field_without_a_pair() {
        let doc = parse(
            br#"<Customers><Customer code="1" email="a@b.ee" shoe="42"><datafields><data code="OPTIN" content="yes" param="2024-01-01"/></datafields></Customer></Customers>"#,
            "Customers",
            "Customer",
            &Limits::default(),
        )
        .unwrap();
        let mut m = mapping();
        assert_eq!(unmapped(&doc.fields, &m), vec!["shoe".to_owned()]);
        m.mapping.insert("shoe".into(), "ignore".into());
        assert!(
            unmapped(&doc.fields, &m).is_empty(),
            "ignored is paired; OPTIN.param goes with OPTIN"
        );
    }

    #[test]
    fn feed_mapping_refuses_unknown_targets_and_names_bad_values() {
        let mut m = mapping();
        m.mapping.insert("x".into(), "shoe_size".into());
        assert_eq!(invalid_targets(&m), vec!["x → shoe_size".to_owned()]);
        let bad = parse(
            br#"<Customers><Customer email="nope"/></Customers>"#,
            "Customers",
            "Customer",
            &Limits::default(),
        )
        .unwrap();
        let errors = map_item(&bad.items[0], &mapping(), None, "feed:f1").unwrap_err();
        assert_eq!(errors[0].field, "email");
    }
}

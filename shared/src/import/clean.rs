//! Data cleaning before an import applies rows (R-XLS-8): duplicates inside the file are merged
//! into the first row that carries the same key value, so a contact is written once per import
//! (and a re-import of the same file writes nothing); and every value normalisation is
//! reported (raw mobile → E.164, email case and IDNA). Pure.

use std::collections::HashMap;

use serde::Serialize;

use crate::incoming::{ConsentClaim, Incoming};
use crate::model::ConsentStatus;
use crate::rules::{KeyField, Master, MatchKeys};

/// A record read from the file: its row, its contact-person group (0 when none) and values.
pub type FileRecord = (u64, u8, Incoming);

/// A row merged into an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merged {
    pub row: u64,
    pub into_row: u64,
}

/// The value a record is matched by: its primary key's value, else its secondary's.
fn match_value(rec: &Incoming, keys: MatchKeys) -> Option<String> {
    let value = |k: KeyField| match k {
        KeyField::Email => rec
            .email
            .as_ref()
            .map(|e| format!("email:{}", e.normalized())),
        KeyField::Mobile => rec
            .mobile
            .as_ref()
            .map(|m| format!("mobile:{}", m.as_str())),
        KeyField::ExternalId => rec
            .external_id
            .as_ref()
            .map(|x| format!("external_id:{}", x.as_str())),
    };
    value(keys.primary).or_else(|| keys.secondary.and_then(value))
}

/// Two claims on one channel from one file (both undated, so "at the same time"): a differing
/// status resolves to opted-out, as a tie does in `rules::merge_consent`.
fn fold_claim(first: &mut Option<ConsentClaim>, later: Option<ConsentClaim>) {
    match (first.as_mut(), later) {
        (_, None) => {}
        (None, Some(l)) => *first = Some(l),
        (Some(f), Some(l)) => {
            if f.status != l.status {
                f.status = ConsentStatus::OptedOut;
            }
        }
    }
}

fn take<T>(slot: &mut Option<T>, later: Option<T>, master: Master) {
    if later.is_some() && (master == Master::Incoming || slot.is_none()) {
        *slot = later;
    }
}

/// Folds `later` into `first` as applying both in file order would: with the file as master a
/// later value replaces an earlier one, with existing data as master it only fills gaps; lists
/// and tags are joined; an empty cell never erases.
pub fn absorb(first: &mut Incoming, later: Incoming, master: Master) {
    let Incoming {
        fields,
        email,
        mobile,
        external_id,
        custom,
        email_marketing,
        sms_marketing,
        lists,
        tags,
    } = later;
    for ((_, slot), (_, value)) in first.fields.slots_mut().into_iter().zip(fields.slots()) {
        take(slot, value.clone(), master);
    }
    take(&mut first.email, email, master);
    take(&mut first.mobile, mobile, master);
    take(&mut first.external_id, external_id, master);
    for (name, value) in custom {
        let slot = first.custom.entry(name);
        match slot {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(value);
            }
            std::collections::btree_map::Entry::Occupied(mut o) if master == Master::Incoming => {
                o.insert(value);
            }
            std::collections::btree_map::Entry::Occupied(_) => {}
        }
    }
    fold_claim(&mut first.email_marketing, email_marketing);
    fold_claim(&mut first.sms_marketing, sms_marketing);
    first.lists.extend(lists);
    first.tags.extend(tags);
}

/// Merges records that share a match value into the first of them, keeping file order.
/// Records without a match value are kept as they are (they fail later with the reason).
pub fn fold_duplicates(
    records: Vec<FileRecord>,
    keys: MatchKeys,
    master: Master,
) -> (Vec<FileRecord>, Vec<Merged>) {
    let mut first_of: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<FileRecord> = Vec::with_capacity(records.len());
    let mut merged = Vec::new();
    for (row, group, rec) in records {
        match match_value(&rec, keys) {
            Some(v) => match first_of.get(&v) {
                Some(&i) => {
                    let into_row = out[i].0;
                    absorb(&mut out[i].2, rec, master);
                    merged.push(Merged { row, into_row });
                }
                None => {
                    first_of.insert(v, out.len());
                    out.push((row, group, rec));
                }
            },
            None => out.push((row, group, rec)),
        }
    }
    (out, merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Country, Email, Mobile};

    fn rec(first: Option<&str>, email: Option<&str>, mobile: Option<&str>) -> Incoming {
        let mut r = Incoming::default();
        r.fields.first_name = first.map(str::to_owned);
        r.email = email.map(|e| Email::parse(e).unwrap());
        r.mobile = mobile.map(|m| Mobile::parse(m, Country::parse("NO").ok()).unwrap());
        r
    }

    const KEYS: MatchKeys = MatchKeys {
        primary: KeyField::Mobile,
        secondary: Some(KeyField::Email),
    };

    #[test]
    fn r_xls_8_duplicates_merge_into_the_first_row_when_they_share_the_primary_value() {
        let records = vec![
            (2, 0, rec(Some("Ann"), None, Some("41234567"))),
            (3, 0, rec(Some("Bo"), None, Some("41234568"))),
            (
                4,
                0,
                rec(Some("Anne"), Some("ann@example.no"), Some("+47 412 34 567")),
            ),
        ];
        let (out, merged) = fold_duplicates(records, KEYS, Master::Incoming);
        assert_eq!(out.len(), 2);
        assert_eq!(
            merged,
            vec![Merged {
                row: 4,
                into_row: 2
            }]
        );
        let ann = &out[0].2;
        assert_eq!(
            out[0].0, 2,
            "the merged record keeps the first row (and its contact id)"
        );
        assert_eq!(
            ann.fields.first_name.as_deref(),
            Some("Anne"),
            "file is master: later wins"
        );
        assert_eq!(ann.email.as_ref().unwrap().normalized(), "ann@example.no");
    }

    #[test]
    fn r_xls_8_existing_master_keeps_the_first_rows_values_and_only_fills_gaps() {
        let records = vec![
            (2, 0, rec(Some("Ann"), None, Some("41234567"))),
            (
                3,
                0,
                rec(Some("Anne"), Some("ann@example.no"), Some("41234567")),
            ),
        ];
        let (out, _) = fold_duplicates(records, KEYS, Master::Existing);
        assert_eq!(out[0].2.fields.first_name.as_deref(), Some("Ann"));
        assert!(out[0].2.email.is_some(), "an empty value is filled");
    }

    #[test]
    fn r_xls_8_rows_fall_back_to_the_secondary_value_when_the_primary_is_empty() {
        let records = vec![
            (2, 0, rec(Some("Ann"), Some("ANN@example.no"), None)),
            (3, 0, rec(None, Some("ann@example.no"), None)),
            (4, 0, rec(Some("Nobody"), None, None)),
        ];
        let (out, merged) = fold_duplicates(records, KEYS, Master::Incoming);
        assert_eq!(
            merged,
            vec![Merged {
                row: 3,
                into_row: 2
            }]
        );
        assert_eq!(
            out.len(),
            2,
            "a record with no key value is kept to fail later"
        );
        assert_eq!(
            out[0].2.fields.first_name.as_deref(),
            Some("Ann"),
            "empty never erases"
        );
    }

    #[test]
    fn r_xls_8_conflicting_opt_ins_in_one_file_resolve_to_opted_out() {
        let mut a = rec(None, None, Some("41234567"));
        a.sms_marketing = Some(ConsentClaim {
            status: ConsentStatus::OptedIn,
            at: None,
            evidence: None,
        });
        let mut b = a.clone();
        b.sms_marketing.as_mut().unwrap().status = ConsentStatus::OptedOut;
        let (out, _) = fold_duplicates(vec![(2, 0, a), (3, 0, b)], KEYS, Master::Incoming);
        assert_eq!(
            out[0].2.sms_marketing.as_ref().unwrap().status,
            ConsentStatus::OptedOut
        );
    }
}

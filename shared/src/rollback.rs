//! Undoing an import, decided per contact from its undo record and its current state (R-XLS-6
//! delete by label, R-XLS-8 rollback). Pure: the shell (`import::revert`) reads, writes the
//! step in one conditional transaction, and re-decides when the condition fails.

use serde::{Deserialize, Serialize};

use crate::model::{Contact, ContactId};
use crate::rules::{owned_keys, IdentityKey};

/// Where an undo record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndoState {
    Pending,
    Restored,
    Deleted,
    /// Changed since by someone else, or linked to by another record: kept as it is.
    Kept,
}

/// An import's undo record for one contact (R-XLS-6/8 rollback): the contact item as it was
/// before the import's first write to it (`None`: the import created it) and the version the
/// import's last write left. Written in the same transaction as the contact.
#[derive(Debug, Clone, PartialEq)]
pub struct UndoRecord {
    pub contact_id: ContactId,
    pub after_version: u64,
    pub before: Option<Contact>,
    pub state: UndoState,
    pub reason: Option<String>,
    /// The chunk of the import's first write to the contact.
    pub chunk: Option<u32>,
}

/// What a revert undoes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevertMode {
    /// Created contacts deleted, updated contacts restored to their exact before-image.
    #[default]
    Full,
    /// RAYNET's "delete import": only the contacts the import created, except linked ones.
    DeleteCreated,
}

/// One contact's step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Not part of this revert (an update, when only creations are deleted): left pending.
    Skip,
    /// Already gone: the import created it and someone deleted it since.
    Gone,
    /// Delete the contact the import created, with the identity items it owns and its list-join
    /// records.
    Delete {
        releases: Vec<IdentityKey>,
        leaves: Leaves,
    },
    /// Put back the exact before-image (its version included: the content at that version is
    /// the same again); re-claim identity items it owned, release those the import's state owns.
    Restore {
        before: Box<Contact>,
        claims: Vec<IdentityKey>,
        releases: Vec<IdentityKey>,
        leaves: Leaves,
    },
    /// Leave it as it is, with the reason (changed since, linked, deleted since).
    Keep(String),
}

/// The lists a revert takes the contact off again, and when the import's write joined them
/// (the day of its list-join records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaves {
    pub lists: Vec<String>,
    pub joined_at: chrono::DateTime<chrono::Utc>,
}

/// Decides how to undo one contact. `import_list` is the list the import joined contacts to:
/// membership of any other list links the contact to something else.
pub fn decide(
    record: &UndoRecord,
    current: Option<&Contact>,
    mode: RevertMode,
    import_list: &str,
) -> Step {
    if mode == RevertMode::DeleteCreated && record.before.is_some() {
        return Step::Skip;
    }
    let Some(current) = current else {
        return match record.before {
            None => Step::Gone,
            Some(_) => Step::Keep("the contact was deleted after the import".into()),
        };
    };
    if current.version != record.after_version {
        return Step::Keep(format!(
            "changed since the import (version {} then, {} now)",
            record.after_version, current.version
        ));
    }
    match &record.before {
        None => {
            let other: Vec<&String> = current.lists.iter().filter(|l| *l != import_list).collect();
            if !other.is_empty() {
                return Step::Keep(format!(
                    "linked: it is also on {} other list(s)",
                    other.len()
                ));
            }
            Step::Delete {
                releases: owned_keys(current),
                leaves: Leaves {
                    lists: current.lists.iter().cloned().collect(),
                    joined_at: current.updated_at,
                },
            }
        }
        Some(before) => {
            let now = owned_keys(current);
            let then = owned_keys(before);
            Step::Restore {
                claims: then.iter().filter(|k| !now.contains(k)).cloned().collect(),
                releases: now.iter().filter(|k| !then.contains(k)).cloned().collect(),
                leaves: Leaves {
                    lists: current
                        .lists
                        .iter()
                        .filter(|l| !before.lists.contains(*l))
                        .cloned()
                        .collect(),
                    joined_at: current.updated_at,
                },
                before: Box::new(before.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Owns;
    use crate::normalize::Email;

    fn contact(version: u64, email: &str) -> Contact {
        let mut c = Contact::empty(ContactId("c1".into()), chrono::Utc::now());
        c.email = Some(Email::parse(email).unwrap());
        c.owns = Owns {
            email: true,
            mobile: false,
            external_id: false,
        };
        c.version = version;
        c.lists.insert("imported".into());
        c
    }

    fn record(before: Option<Contact>, after_version: u64) -> UndoRecord {
        UndoRecord {
            contact_id: ContactId("c1".into()),
            after_version,
            before,
            state: UndoState::Pending,
            reason: None,
            chunk: None,
        }
    }

    #[test]
    fn rollback_deletes_a_created_contact_and_its_identity_items_when_unchanged_since() {
        let now = contact(1, "a@example.no");
        let step = decide(&record(None, 1), Some(&now), RevertMode::Full, "imported");
        assert_eq!(
            step,
            Step::Delete {
                releases: vec![IdentityKey::Email("a@example.no".into())],
                leaves: Leaves {
                    lists: vec!["imported".into()],
                    joined_at: now.updated_at,
                },
            }
        );
    }

    #[test]
    fn rollback_restores_the_before_image_and_swaps_identity_items_when_the_import_changed_the_email(
    ) {
        let before = contact(3, "old@example.no");
        let now = contact(4, "new@example.no");
        let Step::Restore {
            claims, releases, ..
        } = decide(
            &record(Some(before), 4),
            Some(&now),
            RevertMode::Full,
            "imported",
        )
        else {
            panic!("restore");
        };
        assert_eq!(claims, vec![IdentityKey::Email("old@example.no".into())]);
        assert_eq!(releases, vec![IdentityKey::Email("new@example.no".into())]);
    }

    #[test]
    fn rollback_keeps_a_contact_changed_since_the_import() {
        let step = decide(
            &record(Some(contact(3, "a@example.no")), 4),
            Some(&contact(5, "a@example.no")),
            RevertMode::Full,
            "imported",
        );
        assert!(matches!(step, Step::Keep(r) if r.contains("changed since")));
    }

    #[test]
    fn r_xls_6_delete_by_label_keeps_a_created_contact_linked_to_another_list() {
        let mut now = contact(1, "a@example.no");
        now.lists.insert("vip".into());
        let step = decide(
            &record(None, 1),
            Some(&now),
            RevertMode::DeleteCreated,
            "imported",
        );
        assert!(matches!(step, Step::Keep(r) if r.contains("linked")));
    }

    #[test]
    fn r_xls_6_delete_by_label_leaves_contacts_the_import_only_updated() {
        let step = decide(
            &record(Some(contact(1, "a@example.no")), 2),
            Some(&contact(2, "a@example.no")),
            RevertMode::DeleteCreated,
            "imported",
        );
        assert_eq!(step, Step::Skip);
    }
}

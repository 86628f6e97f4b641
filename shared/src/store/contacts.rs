//! Contacts and identity items: batched reads, GSI look-ups, and the conditional transaction
//! actions that create or update a contact together with the identity items it claims/releases.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use chrono::Utc;

use crate::model::{AccountId, Contact, ContactId};
use crate::rollback::{Leaves, Step, UndoRecord};
use crate::rules::{owned_keys, IdentityKey, IdentityPlan};

use super::items::{self, Item};
use super::{by_pk, Store, StoreError, TxOutcome};

/// One contact write: the state it read (`None` for a create; its version is the condition),
/// the new state, and the identity items to claim and release in the same transaction.
#[derive(Debug, Clone)]
pub struct ContactWrite {
    pub before: Option<Contact>,
    pub after: Contact,
    pub identity: IdentityPlan,
}

/// The lists a write adds the contact to.
fn joined(write: &ContactWrite) -> impl Iterator<Item = &String> {
    write
        .after
        .lists
        .iter()
        .filter(|l| write.before.as_ref().is_none_or(|b| !b.lists.contains(*l)))
}

/// Where an import's undo records go: the imports table, under the job's partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoLog {
    pub table: String,
    pub pk: String,
    /// The chunk writing (recorded on the contact's first write by the import), so a
    /// redelivered chunk can tell its own earlier writes from another chunk's.
    pub chunk: Option<u32>,
}

impl Store {
    /// The undo record update that rides in a contact write's transaction: the before-image is
    /// kept from the import's first write to the contact (`if_not_exists`), the version follows
    /// its last, so a retried or repeated write never loses the state to restore.
    pub fn undo_action(
        &self,
        account: &AccountId,
        log: &UndoLog,
        write: &ContactWrite,
    ) -> Result<TransactWriteItem, StoreError> {
        let before = match &write.before {
            Some(b) => AttributeValue::M(items::contact_to_item(account, b)?),
            None => AttributeValue::Null(true),
        };
        let update = Update::builder()
            .table_name(&log.table)
            .set_key(Some(items::key(log.pk.clone(), &items::undo_sk(&write.after.id))))
            .update_expression(
                "SET contact_id = :id, after_version = :v, #b = if_not_exists(#b, :b), #st = if_not_exists(#st, :pending), chunk = if_not_exists(chunk, :chunk)",
            )
            .expression_attribute_values(
                ":chunk",
                log.chunk
                    .map_or(AttributeValue::Null(true), |c| AttributeValue::N(c.to_string())),
            )
            .expression_attribute_names("#b", items::UNDO_BEFORE_ATTR)
            .expression_attribute_names("#st", items::UNDO_STATE_ATTR)
            .expression_attribute_values(":id", AttributeValue::S(write.after.id.0.clone()))
            .expression_attribute_values(":v", AttributeValue::N(write.after.version.to_string()))
            .expression_attribute_values(":b", before)
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
            .build()
            .map_err(|e| StoreError::Build(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Deletes of the list-join records of the lists a revert takes the contact off.
    fn leave_actions(
        &self,
        account: &AccountId,
        id: &ContactId,
        leaves: &Leaves,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        leaves
            .lists
            .iter()
            .map(|list| {
                let delete = Delete::builder()
                    .table_name(&self.tables().settings)
                    .set_key(Some(items::list_join_key(
                        account,
                        list,
                        leaves.joined_at,
                        id,
                    )))
                    .build()
                    .map_err(|e| StoreError::Build(e.to_string()))?;
                Ok(TransactWriteItem::builder().delete(delete).build())
            })
            .collect()
    }

    /// The transaction of one revert step: the contact deleted or put back (only if it is still
    /// at the version the import left), identity items claimed back or released, and the undo
    /// record marked (only while pending, so a repeated message changes nothing).
    pub fn revert_actions(
        &self,
        account: &AccountId,
        log: &UndoLog,
        record: &UndoRecord,
        step: &Step,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let table = &self.tables().contacts;
        let build =
            |e: aws_smithy_types::error::operation::BuildError| StoreError::Build(e.to_string());
        let version = AttributeValue::N(record.after_version.to_string());
        let id = &record.contact_id;
        let mut actions = Vec::new();
        let (state, reason) = match step {
            Step::Skip => return Ok(Vec::new()),
            Step::Gone => ("deleted", None),
            Step::Keep(reason) => ("kept", Some(reason.clone())),
            Step::Delete { releases, leaves } => {
                actions.extend(self.leave_actions(account, id, leaves)?);
                let delete = Delete::builder()
                    .table_name(table)
                    .set_key(Some(items::key(
                        items::contact_pk(account, id),
                        items::SK_CONTACT,
                    )))
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", items::VERSION_ATTR)
                    .expression_attribute_values(":v", version.clone())
                    .build()
                    .map_err(build)?;
                actions.push(TransactWriteItem::builder().delete(delete).build());
                for key in releases {
                    actions.push(release_action(table, account, key, id)?);
                }
                ("deleted", None)
            }
            Step::Restore {
                before,
                claims,
                releases,
                leaves,
            } => {
                actions.extend(self.leave_actions(account, id, leaves)?);
                let put = Put::builder()
                    .table_name(table)
                    .set_item(Some(items::contact_to_item(account, before)?))
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", items::VERSION_ATTR)
                    .expression_attribute_values(":v", version.clone());
                actions.push(tx_put(put)?);
                for key in claims {
                    actions.push(claim_action(table, account, key, id)?);
                }
                for key in releases {
                    actions.push(release_action(table, account, key, id)?);
                }
                ("restored", None)
            }
        };
        let mut update = Update::builder()
            .table_name(&log.table)
            .set_key(Some(items::key(log.pk.clone(), &items::undo_sk(id))))
            .update_expression(if reason.is_some() {
                "SET #st = :to, reason = :why"
            } else {
                "SET #st = :to"
            })
            .condition_expression("#st = :pending")
            .expression_attribute_names("#st", items::UNDO_STATE_ATTR)
            .expression_attribute_values(":to", AttributeValue::S(state.into()))
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()));
        if let Some(why) = reason {
            update = update.expression_attribute_values(":why", AttributeValue::S(why));
        }
        actions.push(
            TransactWriteItem::builder()
                .update(update.build().map_err(build)?)
                .build(),
        );
        Ok(actions)
    }

    /// The undo records `log` holds for these contacts (strongly consistent).
    pub async fn undo_records(
        &self,
        log: &UndoLog,
        ids: &[ContactId],
    ) -> Result<HashMap<ContactId, UndoRecord>, StoreError> {
        let keys = ids
            .iter()
            .map(|id| items::key(log.pk.clone(), &items::undo_sk(id)))
            .collect();
        self.batch_get(&log.table, keys)
            .await?
            .into_iter()
            .map(|item| items::undo_from_item(item).map(|r| (r.contact_id.clone(), r)))
            .collect()
    }

    /// Owners of identity values, by strongly consistent BatchGetItem.
    pub async fn identity_owners(
        &self,
        account: &AccountId,
        keys: &[IdentityKey],
    ) -> Result<HashMap<IdentityKey, ContactId>, StoreError> {
        let pks: HashMap<String, &IdentityKey> = keys
            .iter()
            .map(|k| (items::identity_pk(account, k), k))
            .collect();
        let request = pks
            .keys()
            .map(|pk| items::key(pk.clone(), items::SK_IDENTITY))
            .collect();
        let found = by_pk(self.batch_get(&self.tables().contacts, request).await?);
        Ok(found
            .into_iter()
            .filter_map(|(pk, item)| {
                let owner = items::string_attr(&item, items::OWNER_ATTR)?;
                Some(((*pks.get(&pk)?).clone(), ContactId(owner)))
            })
            .collect())
    }

    /// Contacts by id, by strongly consistent BatchGetItem; unknown ids are absent.
    pub async fn contacts(
        &self,
        account: &AccountId,
        ids: &[ContactId],
    ) -> Result<HashMap<ContactId, Contact>, StoreError> {
        let request = ids
            .iter()
            .map(|id| items::key(items::contact_pk(account, id), items::SK_CONTACT))
            .collect();
        let found = self.batch_get(&self.tables().contacts, request).await?;
        let mut out = HashMap::with_capacity(found.len());
        for item in found {
            let contact = items::contact_from_item(item)?;
            out.insert(contact.id.clone(), contact);
        }
        Ok(out)
    }

    pub async fn contact(
        &self,
        account: &AccountId,
        id: &ContactId,
    ) -> Result<Option<Contact>, StoreError> {
        let key = items::key(items::contact_pk(account, id), items::SK_CONTACT);
        self.get(&self.tables().contacts, key)
            .await?
            .map(items::contact_from_item)
            .transpose()
    }

    /// Every contact carrying a value (emails may be shared, R-IMP-4), through the GSI then a
    /// consistent read of the contacts. Eventually consistent: for display, never for dedup.
    pub async fn contacts_carrying(
        &self,
        account: &AccountId,
        key: &IdentityKey,
    ) -> Result<Vec<Contact>, StoreError> {
        let (index, attr, value) = match key {
            IdentityKey::Email(v) => (items::GSI_EMAIL, items::GSI_EMAIL_ATTR, v),
            IdentityKey::Mobile(v) => (items::GSI_MOBILE, items::GSI_MOBILE_ATTR, v),
            IdentityKey::ExternalId(v) => (items::GSI_EXTERNAL_ID, items::GSI_EXTERNAL_ID_ATTR, v),
        };
        let hits = self
            .query_index(
                &self.tables().contacts,
                index,
                attr,
                items::gsi_value(account, value),
            )
            .await?;
        let ids: Vec<ContactId> = hits
            .iter()
            .filter_map(|i| items::string_attr(i, items::PK))
            .filter_map(|pk| {
                pk.rsplit_once("#CONTACT#")
                    .map(|(_, id)| ContactId(id.to_owned()))
            })
            .collect();
        let mut found: Vec<Contact> = self.contacts(account, &ids).await?.into_values().collect();
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found)
    }

    /// The transaction actions of one contact write, in a fixed order: contact, claims, releases.
    pub fn write_actions(
        &self,
        account: &AccountId,
        write: &ContactWrite,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let table = &self.tables().contacts;
        let item = items::contact_to_item(account, &write.after)?;
        let put = match write.before.as_ref().map(|b| b.version) {
            None => Put::builder().condition_expression("attribute_not_exists(pk)"),
            Some(v) => Put::builder()
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", items::VERSION_ATTR)
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        let mut actions = vec![tx_put(put.table_name(table).set_item(Some(item)))?];
        for key in &write.identity.claims {
            actions.push(claim_action(table, account, key, &write.after.id)?);
        }
        for key in &write.identity.releases {
            actions.push(release_action(table, account, key, &write.after.id)?);
        }
        for list in joined(write) {
            let put = Put::builder()
                .table_name(&self.tables().settings)
                .set_item(Some(items::list_join_item(account, list, &write.after)));
            actions.push(tx_put(put)?);
        }
        let consent = items::ConsentEvent::of(write.before.as_ref(), &write.after, Utc::now());
        if let Some(event) = consent {
            let item = items::consent_event_item(account, &write.after.id, &event)?;
            actions.push(tx_put(
                Put::builder().table_name(table).set_item(Some(item)),
            )?);
        }
        Ok(actions)
    }

    /// Deletes a contact at the version read (DELETE /v1/contacts/{id}): the contact item, the
    /// identity items it owns and a tombstone for the change feed in one transaction, then its
    /// consent history (personal data goes with the contact).
    pub async fn delete_contact(
        &self,
        account: &AccountId,
        contact: &Contact,
    ) -> Result<TxOutcome, StoreError> {
        let table = &self.tables().contacts;
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(items::key(
                items::contact_pk(account, &contact.id),
                items::SK_CONTACT,
            )))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", items::VERSION_ATTR)
            .expression_attribute_values(":v", AttributeValue::N(contact.version.to_string()))
            .build()
            .map_err(|e| StoreError::Build(e.to_string()))?;
        let mut actions = vec![TransactWriteItem::builder().delete(delete).build()];
        for key in owned_keys(contact) {
            actions.push(release_action(table, account, &key, &contact.id)?);
        }
        let tombstone = items::tombstone_item(account, &contact.id, Utc::now());
        actions.push(tx_put(
            Put::builder().table_name(table).set_item(Some(tombstone)),
        )?);
        let outcome = self
            .transact(actions, &uuid::Uuid::new_v4().to_string())
            .await?;
        if outcome == TxOutcome::Committed {
            self.delete_consent_history(account, &contact.id).await?;
        }
        Ok(outcome)
    }

    /// Write capacity units this write costs on AWS, by its pricing rules: a transactional
    /// write is 2 WCU per started KB of each item; a KEYS_ONLY GSI is written (1 WCU) only when
    /// its key attribute appears or changes. DynamoDB Local's own figure for transactions is a
    /// constant, so benchmarks use this model.
    pub fn modelled_write_units(
        &self,
        account: &AccountId,
        write: &ContactWrite,
    ) -> Result<f64, StoreError> {
        let before = write.before.as_ref();
        let item = items::contact_to_item(account, &write.after)?;
        let mut units = 2.0 * items::item_size(&item).div_ceil(1024) as f64;
        let email = |c: &Contact| c.email.as_ref().map(|e| e.normalized().to_owned());
        let mobile = |c: &Contact| c.mobile.as_ref().map(|m| m.as_str().to_owned());
        if email(&write.after) != before.and_then(email) {
            units += 1.0;
        }
        if mobile(&write.after) != before.and_then(mobile) {
            units += 1.0;
        }
        if write.after.external_id != before.and_then(|b| b.external_id.clone()) {
            units += 1.0;
        }
        units += 1.0; // the change feed's index entry moves on every write
        if items::ConsentEvent::of(before, &write.after, Utc::now()).is_some() {
            units += 2.0;
        }
        units += 2.0 * (write.identity.claims.len() + write.identity.releases.len()) as f64;
        units += 2.0 * joined(write).count() as f64;
        Ok(units)
    }

    /// Write units of the undo record an import writes with `write`: the before-image (or
    /// nothing, for a create) and about 100 bytes of keys and version.
    pub fn undo_write_units(
        &self,
        account: &AccountId,
        write: &ContactWrite,
    ) -> Result<f64, StoreError> {
        let before = match &write.before {
            Some(b) => items::item_size(&items::contact_to_item(account, b)?),
            None => 0,
        };
        Ok(2.0 * (before + 100).div_ceil(1024) as f64)
    }

    /// Raw contact and identity items of an account, for tests and tools (a Scan: never on a
    /// request path).
    pub async fn scan_account(&self, account: &AccountId) -> Result<Vec<Item>, StoreError> {
        let prefix = format!("ACC#{}#", account.0);
        let mut pages = self
            .client()
            .scan()
            .table_name(&self.tables().contacts)
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(":p", AttributeValue::S(prefix))
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            out.push(item.map_err(|e| StoreError::service("Scan", e))?);
        }
        Ok(out)
    }
}

/// Puts the identity item of `key` for `owner`, only if nobody holds it.
fn claim_action(
    table: &str,
    account: &AccountId,
    key: &IdentityKey,
    owner: &ContactId,
) -> Result<TransactWriteItem, StoreError> {
    tx_put(
        Put::builder()
            .table_name(table)
            .set_item(Some(items::identity_item(account, key, owner)))
            .condition_expression("attribute_not_exists(pk)"),
    )
}

/// Deletes the identity item of `key`, only if `owner` holds it.
fn release_action(
    table: &str,
    account: &AccountId,
    key: &IdentityKey,
    owner: &ContactId,
) -> Result<TransactWriteItem, StoreError> {
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(items::key(
            items::identity_pk(account, key),
            items::SK_IDENTITY,
        )))
        .condition_expression("#o = :me")
        .expression_attribute_names("#o", items::OWNER_ATTR)
        .expression_attribute_values(":me", AttributeValue::S(owner.0.clone()))
        .build()
        .map_err(|e| StoreError::Build(e.to_string()))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

fn tx_put(
    put: aws_sdk_dynamodb::types::builders::PutBuilder,
) -> Result<TransactWriteItem, StoreError> {
    let put = put.build().map_err(|e| StoreError::Build(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

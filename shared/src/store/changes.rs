//! The change feed for polling integrations (R-API-2, issue 8) and each contact's consent
//! history. Every contact write stamps its item with `change_key` (write time, then id) under
//! one of `CHANGE_SHARDS` index partitions of the account; a page queries every shard from the
//! cursor, merges them in key order and keeps only keys older than the settle window, so a
//! write still in flight (stamped, not yet committed or not yet in the index) can never be
//! passed over.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use futures::future::try_join_all;

use crate::model::{AccountId, Contact, ContactId};

use super::items::{self, ConsentEvent, Item};
use super::{Store, StoreError};

/// One page of the change feed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePage {
    /// Contacts in change order, each at its latest write.
    pub contacts: Vec<Contact>,
    /// Contacts deleted, in change order (tombstones carry no personal data).
    pub deleted: Vec<Deleted>,
    /// Where the next page starts: the last change key looked at (or the start, if none).
    pub next: String,
    /// True when more changes below the settle window were left for the next page.
    pub has_more: bool,
}

/// A contact deleted, as the change feed reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deleted {
    pub id: ContactId,
    pub deleted_at: String,
}

/// The change key at which a feed `since` a time starts (every key at or after it sorts after).
pub fn start_at(since: DateTime<Utc>) -> String {
    items::change_time(since)
}

impl Store {
    /// Contacts changed after position `after` (exclusive) and no later than `settled`, oldest
    /// first, at most `limit`. A contact whose item has moved on since the index entry (written
    /// again, or deleted) is left out here: it appears at its newer position.
    pub async fn changes(
        &self,
        account: &AccountId,
        after: &str,
        settled: DateTime<Utc>,
        limit: usize,
    ) -> Result<ChangePage, StoreError> {
        let upper = items::change_time(settled);
        let shards =
            (0..items::CHANGE_SHARDS).map(|shard| self.shard_page(account, shard, after, limit));
        // (change key, the table's key of the item: a contact or a tombstone)
        let mut hits: Vec<(String, Item)> = Vec::new();
        let mut more = false;
        for (found, full) in try_join_all(shards).await? {
            let within: Vec<(String, Item)> = (found.into_iter())
                .filter(|(k, _)| k.get(..upper.len()).is_some_and(|t| t <= upper.as_str()))
                .collect();
            more |= full && within.len() == limit;
            hits.extend(within);
        }
        hits.sort_by(|a, b| a.0.cmp(&b.0));
        more |= hits.len() > limit;
        hits.truncate(limit);
        let request = hits.iter().map(|(_, key)| key.clone()).collect();
        let mut current: std::collections::HashMap<String, Item> = self
            .batch_get(&self.tables().contacts, request)
            .await?
            .into_iter()
            .filter_map(|i| items::item_change_key(&i).map(|k| (k, i)))
            .collect();
        let (mut contacts, mut deleted) = (Vec::new(), Vec::new());
        for (key, _) in &hits {
            let Some(item) = current.remove(key) else {
                continue;
            };
            if items::string_attr(&item, items::SK).as_deref() == Some(items::SK_DELETED) {
                deleted.push(Deleted {
                    id: ContactId(items::string_attr(&item, "id").unwrap_or_default()),
                    deleted_at: items::string_attr(&item, "deleted_at").unwrap_or_default(),
                });
            } else {
                contacts.push(items::contact_from_item(item)?);
            }
        }
        Ok(ChangePage {
            contacts,
            deleted,
            next: hits
                .last()
                .map_or_else(|| after.to_owned(), |(k, _)| k.clone()),
            has_more: more,
        })
    }

    /// Up to `limit` change keys of one shard after `after`, each with its item's table key;
    /// true when the page was full.
    async fn shard_page(
        &self,
        account: &AccountId,
        shard: u32,
        after: &str,
        limit: usize,
    ) -> Result<(Vec<(String, Item)>, bool), StoreError> {
        let out = self
            .client()
            .query()
            .table_name(&self.tables().contacts)
            .index_name(items::GSI_CHANGES)
            .key_condition_expression("#p = :p AND #k > :after")
            .expression_attribute_names("#p", items::CHANGE_SHARD_ATTR)
            .expression_attribute_names("#k", items::CHANGE_KEY_ATTR)
            .expression_attribute_values(
                ":p",
                AttributeValue::S(items::change_partition(account, shard)),
            )
            .expression_attribute_values(":after", AttributeValue::S(after.to_owned()))
            .limit(limit as i32)
            .send()
            .await
            .map_err(|e| StoreError::service("Query", e))?;
        let found: Vec<(String, Item)> = (out.items().iter())
            .filter_map(|i| {
                let key = items::key(
                    items::string_attr(i, items::PK)?,
                    &items::string_attr(i, items::SK)?,
                );
                Some((items::item_change_key(i)?, key))
            })
            .collect();
        let full = found.len() >= limit || out.last_evaluated_key().is_some();
        Ok((found, full))
    }

    /// Deletes a contact's consent history (with the contact: it is personal data).
    pub async fn delete_consent_history(
        &self,
        account: &AccountId,
        id: &ContactId,
    ) -> Result<(), StoreError> {
        let keys = (self.consent_items(account, id).await?.iter())
            .filter_map(|i| {
                Some(items::key(
                    items::string_attr(i, items::PK)?,
                    &items::string_attr(i, items::SK)?,
                ))
            })
            .collect();
        self.batch_delete(&self.tables().contacts, keys).await
    }

    /// Every consent change of a contact, oldest first (append-only; survives reverts).
    pub async fn consent_history(
        &self,
        account: &AccountId,
        id: &ContactId,
    ) -> Result<Vec<ConsentEvent>, StoreError> {
        let found = self.consent_items(account, id).await?;
        found.into_iter().map(items::decode).collect()
    }

    async fn consent_items(
        &self,
        account: &AccountId,
        id: &ContactId,
    ) -> Result<Vec<Item>, StoreError> {
        let query = (self.client().query())
            .table_name(&self.tables().contacts)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(items::contact_pk(account, id)))
            .expression_attribute_values(
                ":prefix",
                AttributeValue::S(items::CONSENT_SK_PREFIX.to_owned()),
            );
        Self::query_all(query).await
    }
}

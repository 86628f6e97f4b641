//! Static lists (R-WIZ-1, issue 8): the list record `ACC#<a>#LIST#<id>` / `LIST`, an entry in
//! the account's directory `ACC#<a>#LISTS` / `LIST#<id>` (written together), and the members
//! read through the list-join records every contact write leaves under the list.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use crate::model::{AccountId, Contact, ContactId};

use super::imports::ContactList;
use super::items::{self, Item};
use super::{Store, StoreError};

fn directory_pk(account: &AccountId) -> String {
    format!("ACC#{}#LISTS", account.0)
}

const DIRECTORY_SK_PREFIX: &str = "LIST#";

/// One page of a list's members.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberPage {
    pub contacts: Vec<Contact>,
    /// The join record to continue after, when there may be more.
    pub next: Option<String>,
}

impl Store {
    /// Saves a list and its directory entry in one transaction.
    pub async fn put_list(
        &self,
        account: &AccountId,
        list: &ContactList,
    ) -> Result<(), StoreError> {
        let table = &self.tables().settings;
        let record = items::encode(items::list_pk(account, &list.list_id), "LIST", list)?;
        let entry = items::encode(
            directory_pk(account),
            &format!("{DIRECTORY_SK_PREFIX}{}", list.list_id),
            list,
        )?;
        let actions = [record, entry]
            .into_iter()
            .map(|item| {
                let put = Put::builder()
                    .table_name(table)
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| StoreError::Build(e.to_string()))?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.client()
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
            .map_err(|e| StoreError::service("TransactWriteItems", e))?;
        Ok(())
    }

    pub async fn list(
        &self,
        account: &AccountId,
        list_id: &str,
    ) -> Result<Option<ContactList>, StoreError> {
        let key = items::key(items::list_pk(account, list_id), "LIST");
        self.get_as(&self.tables().settings, key).await
    }

    /// Every list of the account, in id order.
    pub async fn lists(&self, account: &AccountId) -> Result<Vec<ContactList>, StoreError> {
        let query = (self.client().query())
            .table_name(&self.tables().settings)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(directory_pk(account)))
            .expression_attribute_values(":prefix", AttributeValue::S(DIRECTORY_SK_PREFIX.into()));
        let found = Self::query_all(query).await?;
        found.into_iter().map(items::decode).collect()
    }

    /// Members of a list in the order they joined, `limit` join records per page after
    /// `after`. A contact that has since been deleted or taken off the list is left out.
    pub async fn list_members(
        &self,
        account: &AccountId,
        list_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<MemberPage, StoreError> {
        let pk = items::list_pk(account, list_id);
        let start = after.map(|sk| items::key(pk.clone(), sk));
        let out = self
            .client()
            .query()
            .table_name(&self.tables().settings)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":prefix", AttributeValue::S(items::JOINED_PREFIX.into()))
            .set_exclusive_start_key(start)
            .limit(limit as i32)
            .send()
            .await
            .map_err(|e| StoreError::service("Query", e))?;
        let joins: Vec<&Item> = out.items().iter().collect();
        let mut seen = HashSet::new();
        let ids: Vec<ContactId> = joins
            .iter()
            .filter_map(|j| items::string_attr(j, items::OWNER_ATTR))
            .filter(|id| seen.insert(id.clone()))
            .map(ContactId)
            .collect();
        let mut found = self.contacts(account, &ids).await?;
        let contacts = ids
            .iter()
            .filter_map(|id| found.remove(id))
            .filter(|c| c.lists.contains(list_id))
            .collect();
        let next = out
            .last_evaluated_key()
            .and_then(|k| items::string_attr(k, items::SK));
        Ok(MemberPage { contacts, next })
    }
}

//! The settings table: accounts, API keys (stored as SHA-256 hashes, never in clear) and
//! idempotency records for retried API requests.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::AccountId;
use crate::settings::Settings;

use super::items::{self, Item};
use super::{Store, StoreError, TxOutcome};

/// A tenant and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub account_id: AccountId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub settings: Settings,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
}

/// A stored API key: only its hash identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub account_id: AccountId,
    pub role: Role,
    pub name: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub revoked: bool,
}

/// A remembered answer to a request carrying an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    /// `None` while the first request is still being processed.
    pub status: Option<u16>,
    pub body: Option<String>,
    /// Until then a pending record blocks others; after it, a retry may take over.
    pub lease_until: i64,
    /// DynamoDB TTL attribute (epoch seconds).
    pub ttl: i64,
}

fn account_pk(account: &AccountId) -> String {
    format!("ACC#{}", account.0)
}

fn api_key_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
}

fn key_id_pk(account: &AccountId, key_id: &str) -> String {
    format!("ACC#{}#KEYID#{key_id}", account.0)
}

/// Points from a key's id to its hash, so an account can revoke a key it cannot see.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyPointer {
    key_hash: String,
}

fn idempotency_pk(account: &AccountId, key: &str) -> String {
    format!("ACC#{}#IDEM#{key}", account.0)
}

/// The outcome of trying to claim an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// This request owns the key: process it, then `finish_idempotency`.
    Claimed,
    /// Another request holds or held the key.
    Existing(IdempotencyRecord),
}

impl Store {
    /// Creates an account and its first admin key in one transaction.
    pub async fn create_account(
        &self,
        account: &Account,
        key_hash: &str,
        key: &ApiKeyRecord,
    ) -> Result<(), StoreError> {
        let mut actions = vec![self.put_new(items::encode(
            account_pk(&account.account_id),
            "ACCOUNT",
            account,
        )?)?];
        actions.extend(self.key_actions(key_hash, key)?);
        self.commit(actions, &key.key_id).await
    }

    /// Stores a new API key (hash and id pointer) for its account.
    pub async fn create_api_key(
        &self,
        key_hash: &str,
        key: &ApiKeyRecord,
    ) -> Result<(), StoreError> {
        let actions = self.key_actions(key_hash, key)?;
        self.commit(actions, &key.key_id).await
    }

    /// Marks a key revoked; `false` when the account has no key with that id.
    pub async fn revoke_api_key(
        &self,
        account: &AccountId,
        key_id: &str,
    ) -> Result<bool, StoreError> {
        let Some(item) = self
            .get(
                &self.tables().settings,
                items::key(key_id_pk(account, key_id), "KEYID"),
            )
            .await?
        else {
            return Ok(false);
        };
        let pointer: KeyPointer = items::decode(item)?;
        self.client()
            .update_item()
            .table_name(&self.tables().settings)
            .set_key(Some(items::key(api_key_pk(&pointer.key_hash), "APIKEY")))
            .update_expression("SET revoked = :t")
            .condition_expression("account_id = :a")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":a", AttributeValue::S(account.0.clone()))
            .send()
            .await
            .map_err(|e| StoreError::service("UpdateItem", e))?;
        Ok(true)
    }

    /// Replaces an account's settings.
    pub async fn put_settings(
        &self,
        account: &AccountId,
        settings: &Settings,
    ) -> Result<(), StoreError> {
        let value = serde_dynamo::to_attribute_value(settings)
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        self.client()
            .update_item()
            .table_name(&self.tables().settings)
            .set_key(Some(items::key(account_pk(account), "ACCOUNT")))
            .update_expression("SET settings = :s")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":s", value)
            .send()
            .await
            .map_err(|e| StoreError::service("UpdateItem", e))?;
        Ok(())
    }

    fn key_actions(
        &self,
        key_hash: &str,
        key: &ApiKeyRecord,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let pointer = KeyPointer {
            key_hash: key_hash.to_owned(),
        };
        Ok(vec![
            self.put_new(items::encode(api_key_pk(key_hash), "APIKEY", key)?)?,
            self.put_new(items::encode(
                key_id_pk(&key.account_id, &key.key_id),
                "KEYID",
                &pointer,
            )?)?,
        ])
    }

    /// A transactional put that only creates.
    fn put_new(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.tables().settings)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Build(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn commit(&self, actions: Vec<TransactWriteItem>, token: &str) -> Result<(), StoreError> {
        match self.transact(actions, token).await? {
            TxOutcome::Committed => Ok(()),
            TxOutcome::Cancelled(reasons) => Err(StoreError::Service {
                op: "TransactWriteItems",
                code: "TransactionCanceled".into(),
                source: format!("{reasons:?}").into(),
            }),
        }
    }

    pub async fn account(&self, account: &AccountId) -> Result<Option<Account>, StoreError> {
        let key = items::key(account_pk(account), "ACCOUNT");
        self.get_as(&self.tables().settings, key).await
    }

    pub async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let key = items::key(api_key_pk(key_hash), "APIKEY");
        self.get_as(&self.tables().settings, key).await
    }

    /// Claims `key` for a request with `request_hash`: succeeds when the key is new or its
    /// pending holder's lease ran out; otherwise returns the record that holds it.
    pub async fn claim_idempotency(
        &self,
        account: &AccountId,
        key: &str,
        request_hash: &str,
        now: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        let record = IdempotencyRecord {
            request_hash: request_hash.to_owned(),
            status: None,
            body: None,
            lease_until: now + 60,
            ttl: now + 24 * 3600,
        };
        let item = items::encode(idempotency_pk(account, key), "IDEM", &record)?;
        let result = self
            .client()
            .put_item()
            .table_name(&self.tables().settings)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now OR (attribute_not_exists(#status) AND #lease < :now)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values_on_condition_check_failure(aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(IdempotencyClaim::Claimed),
            Err(err) => {
                use aws_sdk_dynamodb::operation::put_item::PutItemError;
                if let Some(PutItemError::ConditionalCheckFailedException(e)) =
                    err.as_service_error()
                {
                    if let Some(old) = e.item.clone() {
                        return Ok(IdempotencyClaim::Existing(items::decode(old)?));
                    }
                }
                let code = err.code().unwrap_or("unknown").to_owned();
                Err(StoreError::Service {
                    op: "PutItem",
                    code,
                    source: Box::new(err),
                })
            }
        }
    }

    /// Stores the answer of a claimed request.
    pub async fn finish_idempotency(
        &self,
        account: &AccountId,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        let item = items::encode(idempotency_pk(account, key), "IDEM", record)?;
        self.client()
            .put_item()
            .table_name(&self.tables().settings)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::service("PutItem", e))?;
        Ok(())
    }

    /// Gives a claimed key back (the request failed in a way a retry may fix).
    pub async fn release_idempotency(
        &self,
        account: &AccountId,
        key: &str,
    ) -> Result<(), StoreError> {
        self.client()
            .delete_item()
            .table_name(&self.tables().settings)
            .set_key(Some(items::key(idempotency_pk(account, key), "IDEM")))
            .send()
            .await
            .map_err(|e| StoreError::service("DeleteItem", e))?;
        Ok(())
    }
}

//! The DynamoDB shell: the only code that talks to the tables. Contacts and identity items
//! (`contacts`), accounts, keys and idempotency records (`settings`). Every key carries the
//! account; uniqueness is decided by conditions on identity items, never by reading a GSI.

pub mod changes;
pub mod contacts;
pub mod feeds;
pub mod forms;
pub mod imports;
pub mod items;
pub mod lists;
pub mod settings;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConsumedCapacity, KeysAndAttributes, ReturnConsumedCapacity, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;

use items::Item;

/// DynamoDB service limits, named once.
pub const BATCH_GET_MAX_KEYS: usize = 100;
pub const BATCH_WRITE_MAX_ITEMS: usize = 25;
pub const TRANSACT_MAX_ACTIONS: usize = 100;
/// Rounds of `UnprocessedKeys` retries before a batch read gives up.
const UNPROCESSED_MAX_ROUNDS: u32 = 8;

/// Table names, read once from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub contacts: String,
    pub settings: String,
}

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("dynamodb {op} failed: {code}")]
    Service {
        op: &'static str,
        code: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("dynamodb {op} left items unprocessed after {UNPROCESSED_MAX_ROUNDS} rounds")]
    Unprocessed { op: &'static str },
    #[error("stored item {key} is malformed: {reason}")]
    Decode { key: String, reason: String },
    #[error("cannot encode item: {0}")]
    Encode(String),
    #[error("cannot build request: {0}")]
    Build(String),
}

impl StoreError {
    fn service<E>(op: &'static str, err: aws_sdk_dynamodb::error::SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().unwrap_or("unknown").to_owned();
        Self::Service {
            op,
            code,
            source: Box::new(err),
        }
    }
}

/// Why one action of a cancelled transaction failed (positional, as DynamoDB reports them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelReason {
    /// The action was fine; the transaction failed because of another one.
    None,
    ConditionFailed,
    /// Another transaction touched the item (real DynamoDB under contention): retryable.
    Conflict,
    Throttled,
    Other(String),
}

impl CancelReason {
    fn from_code(code: Option<&str>) -> Self {
        match code {
            None | Some("None") => Self::None,
            Some("ConditionalCheckFailed") => Self::ConditionFailed,
            Some("TransactionConflict") => Self::Conflict,
            Some("ThrottlingError")
            | Some("ProvisionedThroughputExceeded")
            | Some("RequestLimitExceeded") => Self::Throttled,
            Some(other) => Self::Other(other.to_owned()),
        }
    }
}

fn build_error(e: aws_smithy_types::error::operation::BuildError) -> StoreError {
    StoreError::Build(e.to_string())
}

/// The result of one TransactWriteItems call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    Committed,
    Cancelled(Vec<CancelReason>),
}

/// A handle on the tables. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    tables: Tables,
    /// Capacity units consumed by reads and transactions, in thousandths.
    capacity_milli: Arc<AtomicU64>,
    /// Write units of committed contact writes by AWS's pricing model, in thousandths.
    modelled_milli: Arc<AtomicU64>,
}

/// Sleeps `base * 2^round` with full jitter, capped at one second.
pub async fn backoff(round: u32) {
    let cap_ms = (10u64 << round.min(7)).min(1_000);
    let ms = rand::random_range(0..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

impl Store {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            client,
            tables,
            capacity_milli: Arc::new(AtomicU64::new(0)),
            modelled_milli: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Write capacity units of committed contact writes so far, by AWS's pricing model
    /// (`modelled_write_units`): DynamoDB Local reports a constant per transaction.
    pub fn modelled_write_capacity(&self) -> f64 {
        self.modelled_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn record_modelled_write_units(&self, units: f64) {
        self.modelled_milli
            .fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
    }

    /// Capacity units consumed so far by this store's batch reads and transactions.
    pub fn consumed_capacity(&self) -> f64 {
        self.capacity_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    fn meter(&self, consumed: &[ConsumedCapacity]) {
        let units: f64 = consumed.iter().filter_map(|c| c.capacity_units).sum();
        self.capacity_milli
            .fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Strongly consistent BatchGetItem over any number of keys of one table, in calls of
    /// `BATCH_GET_MAX_KEYS`, retrying `UnprocessedKeys` with backoff. Missing items are absent.
    pub async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_MAX_KEYS) {
            let mut pending = chunk.to_vec();
            let mut round = 0;
            while !pending.is_empty() {
                if round == UNPROCESSED_MAX_ROUNDS {
                    return Err(StoreError::Unprocessed { op: "BatchGetItem" });
                }
                if round > 0 {
                    backoff(round).await;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Build(e.to_string()))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(table, request)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| StoreError::service("BatchGetItem", e))?;
                self.meter(out.consumed_capacity());
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(table).unwrap_or_default());
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                round += 1;
            }
        }
        Ok(found)
    }

    /// One TransactWriteItems call; cancellation comes back as positional reasons.
    /// `token` makes the SDK's own retries of this call idempotent (ClientRequestToken).
    pub async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
        token: &str,
    ) -> Result<TxOutcome, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .client_request_token(token)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter(out.consumed_capacity());
                Ok(TxOutcome::Committed)
            }
            Err(err) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(e)) =
                    err.as_service_error()
                {
                    let reasons = e
                        .cancellation_reasons()
                        .iter()
                        .map(|r| CancelReason::from_code(r.code()))
                        .collect();
                    return Ok(TxOutcome::Cancelled(reasons));
                }
                if matches!(
                    err.as_service_error(),
                    Some(TransactWriteItemsError::TransactionInProgressException(_))
                ) {
                    return Ok(TxOutcome::Cancelled(vec![CancelReason::Conflict]));
                }
                Err(StoreError::service("TransactWriteItems", err))
            }
        }
    }

    /// BatchWriteItem puts in calls of `BATCH_WRITE_MAX_ITEMS` (see `batch_write`).
    pub async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let requests = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item)).build();
                Ok(WriteRequest::builder()
                    .put_request(put.map_err(build_error)?)
                    .build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(table, requests).await
    }

    /// BatchWriteItem deletes of these keys (see `batch_write`).
    pub async fn batch_delete(&self, table: &str, keys: Vec<Item>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        let requests = keys
            .into_iter()
            .map(|key| {
                let delete = DeleteRequest::builder().set_key(Some(key)).build();
                Ok(WriteRequest::builder()
                    .delete_request(delete.map_err(build_error)?)
                    .build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(table, requests).await
    }

    /// BatchWriteItem in calls of `BATCH_WRITE_MAX_ITEMS`, retrying `UnprocessedItems` with
    /// backoff and a bound.
    async fn batch_write(
        &self,
        table: &str,
        requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
    ) -> Result<(), StoreError> {
        for chunk in requests.chunks(BATCH_WRITE_MAX_ITEMS) {
            let mut pending = chunk.to_vec();
            let mut round = 0;
            while !pending.is_empty() {
                if round == UNPROCESSED_MAX_ROUNDS {
                    return Err(StoreError::Unprocessed {
                        op: "BatchWriteItem",
                    });
                }
                if round > 0 {
                    backoff(round).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| StoreError::service("BatchWriteItem", e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(table))
                    .unwrap_or_default();
                round += 1;
            }
        }
        Ok(())
    }

    /// Every item of a GSI partition (all pages).
    pub async fn query_index(
        &self,
        table: &str,
        index: &str,
        attr: &str,
        value: String,
    ) -> Result<Vec<Item>, StoreError> {
        let query = (self.client.query().table_name(table).index_name(index))
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", attr)
            .expression_attribute_values(":v", aws_sdk_dynamodb::types::AttributeValue::S(value));
        Self::query_all(query).await
    }

    /// Every item a query matches, all pages.
    pub(crate) async fn query_all(
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<Item>, StoreError> {
        let mut pages = query.into_paginator().items().send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            out.push(item.map_err(|e| StoreError::service("Query", e))?);
        }
        Ok(out)
    }

    /// A record by key, decoded.
    pub(crate) async fn get_as<T: for<'de> serde::Deserialize<'de>>(
        &self,
        table: &str,
        key: Item,
    ) -> Result<Option<T>, StoreError> {
        self.get(table, key).await?.map(items::decode).transpose()
    }

    /// Writes a record (replacing any) under `pk`/`sk`.
    pub(crate) async fn put_as<T: serde::Serialize>(
        &self,
        table: &str,
        pk: String,
        sk: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let item = items::encode(pk, sk, value)?;
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::service("PutItem", e))?;
        Ok(())
    }

    pub(crate) async fn get(&self, table: &str, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::service("GetItem", e))?;
        Ok(out.item)
    }
}

/// Groups items by their `pk`.
pub(crate) fn by_pk(items: Vec<Item>) -> HashMap<String, Item> {
    items
        .into_iter()
        .filter_map(|i| items::string_attr(&i, items::PK).map(|pk| (pk, i)))
        .collect()
}

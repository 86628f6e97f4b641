//! Import jobs and their chunks (imports table), import numbers, lists and drop-folder
//! profiles (settings table). A chunk's counters reach its job exactly once: the chunk's done
//! marker and the job's counter update are one conditional transaction.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::import::job::{Counts, Job, JobStatus};
use crate::import::mapping::ImportSettings;
use crate::model::AccountId;

use super::contacts::UndoLog;
use super::items::{self, Item};
use super::{CancelReason, Store, StoreError, TxOutcome};
use crate::import::job::RevertSummary;
use crate::rollback::UndoRecord;

pub const GSI_ACCOUNT: &str = "by-account";

fn job_pk(account: &AccountId, import_id: &str) -> String {
    format!("ACC#{}#IMPORT#{import_id}", account.0)
}

impl Store {
    /// Where an import's undo records go (`ingest::Policy::undo`).
    pub fn undo_log(&self, table: &str, account: &AccountId, import_id: &str) -> UndoLog {
        UndoLog {
            table: table.to_owned(),
            pk: job_pk(account, import_id),
            chunk: None,
        }
    }
}

pub const GSI_ACTIVITY: &str = "by-activity";
const ACTIVE_ATTR: &str = "active";
const ACTIVE: &str = "ACTIVE";
const PROGRESS_ATTR: &str = "progress_at";

fn chunk_sk(n: u32) -> String {
    format!("CHUNK#{n:06}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn status(st: JobStatus) -> AttributeValue {
    s(serde_json::to_value(st)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default())
}

/// A contact list (R-WIZ-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactList {
    pub list_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl ContactList {
    /// A new list with a fresh id; the name trimmed to 200 characters.
    pub fn named(name: &str, now: DateTime<Utc>) -> Self {
        Self {
            list_id: format!("lst_{}", uuid::Uuid::new_v4().simple()),
            name: name.trim().chars().take(200).collect(),
            created_at: now,
        }
    }
}

/// Saved import settings for a drop folder (`drop/<account>/<profile>/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportProfile {
    pub profile_id: String,
    pub list_id: String,
    pub settings: ImportSettings,
    pub updated_at: DateTime<Utc>,
}

/// Attempts at the chunk-done transaction before the message is left to SQS.
const MARK_ATTEMPTS: u32 = 8;

/// What happened to a chunk's done marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkMark {
    /// First time: the counters were added to the job.
    Counted,
    /// The chunk was done before (a redelivery): nothing added.
    AlreadyDone,
    /// The job is no longer running (failed meanwhile): nothing added.
    JobNotRunning,
}

impl Store {
    /// The account's next import number (1, 2, …).
    pub async fn next_import_number(&self, account: &AccountId) -> Result<u64, StoreError> {
        let out = self
            .client()
            .update_item()
            .table_name(&self.tables().settings)
            .set_key(Some(items::key(format!("ACC#{}", account.0), "IMPORTSEQ")))
            .update_expression("ADD #n :one")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::service("UpdateItem", e))?;
        let value = out.attributes.and_then(|a| a.get("n").cloned());
        match value {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| StoreError::Decode {
                key: "IMPORTSEQ".into(),
                reason: v,
            }),
            _ => Err(StoreError::Decode {
                key: "IMPORTSEQ".into(),
                reason: "no counter".into(),
            }),
        }
    }

    /// Stores a new job; `false` when a job with its id already exists.
    pub async fn put_job(&self, table: &str, job: &Job) -> Result<bool, StoreError> {
        let mut item = items::encode(job_pk(&job.account_id, &job.import_id), "JOB", job)?;
        item.insert("gsi_account".into(), s(job.account_id.0.clone()));
        item.insert("gsi_created".into(), s(job.created_at.to_rfc3339()));
        if job.status.is_active() {
            item.insert(ACTIVE_ATTR.into(), s(ACTIVE));
            item.insert(
                PROGRESS_ATTR.into(),
                s(job.progress_at.unwrap_or(job.created_at).to_rfc3339()),
            );
        }
        let result = self
            .client()
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.as_service_error(), Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))) => Ok(false),
            Err(e) => Err(StoreError::service("PutItem", e)),
        }
    }

    pub async fn job(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
    ) -> Result<Option<Job>, StoreError> {
        self.get_as(table, items::key(job_pk(account, import_id), "JOB"))
            .await
    }

    /// The account's jobs, newest first (at most `limit`).
    pub async fn jobs(
        &self,
        table: &str,
        account: &AccountId,
        limit: i32,
    ) -> Result<Vec<Job>, StoreError> {
        let out = self
            .client()
            .query()
            .table_name(table)
            .index_name(GSI_ACCOUNT)
            .key_condition_expression("gsi_account = :a")
            .expression_attribute_values(":a", s(account.0.clone()))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::service("Query", e))?;
        let keys: Vec<Item> = out
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| Some(items::key(items::string_attr(&i, items::PK)?, "JOB")))
            .collect();
        let mut jobs: Vec<Job> = self
            .batch_get(table, keys)
            .await?
            .into_iter()
            .map(items::decode)
            .collect::<Result<_, _>>()?;
        jobs.sort_by_key(|j| std::cmp::Reverse(j.created_at));
        Ok(jobs)
    }

    /// Applies `SET`/condition to a job; `false` when the condition did not hold.
    async fn update_job(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        set: &str,
        condition: &str,
        values: HashMap<String, AttributeValue>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client()
            .update_item()
            .table_name(table)
            .set_key(Some(items::key(job_pk(account, import_id), "JOB")))
            .update_expression(set)
            .condition_expression(condition)
            .expression_attribute_names("#st", "status")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.as_service_error(), Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_))) => Ok(false),
            Err(e) => Err(StoreError::service("UpdateItem", e)),
        }
    }

    /// Saves wizard settings while the job is a draft.
    pub async fn save_import_settings(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        settings: &ImportSettings,
    ) -> Result<bool, StoreError> {
        let value = serde_dynamo::to_attribute_value(settings)
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let values = HashMap::from([
            (":s".to_owned(), value),
            (":draft".to_owned(), status(JobStatus::Draft)),
        ]);
        self.update_job(
            table,
            account,
            import_id,
            "SET settings = :s",
            "#st = :draft",
            values,
        )
        .await
    }

    /// Moves a job from one of `from` to `to`.
    pub async fn transition(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        from: &[JobStatus],
        to: JobStatus,
    ) -> Result<bool, StoreError> {
        let mut values = HashMap::from([(":to".to_owned(), status(to))]);
        let mut alternatives = Vec::new();
        for (i, st) in from.iter().enumerate() {
            values.insert(format!(":f{i}"), status(*st));
            alternatives.push(format!("#st = :f{i}"));
        }
        let set = if to.is_active() {
            values.insert(":active".into(), s(ACTIVE));
            values.insert(":now".into(), s(Utc::now().to_rfc3339()));
            "SET #st = :to, active = :active, progress_at = :now"
        } else {
            "SET #st = :to REMOVE active"
        };
        self.update_job(
            table,
            account,
            import_id,
            set,
            &alternatives.join(" OR "),
            values,
        )
        .await
    }

    /// Records the split: running, with the totals the progress bar needs.
    pub async fn mark_running(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        rows_total: u64,
        chunks_total: u64,
        dialect: &crate::import::csv::Dialect,
    ) -> Result<bool, StoreError> {
        let d = serde_dynamo::to_attribute_value(dialect)
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let values = HashMap::from([
            (":r".to_owned(), n(rows_total)),
            (":c".to_owned(), n(chunks_total)),
            (":d".to_owned(), d),
            (":run".to_owned(), status(JobStatus::Running)),
            (":queued".to_owned(), status(JobStatus::Queued)),
            (":now".to_owned(), s(Utc::now().to_rfc3339())),
        ]);
        self.update_job(
            table,
            account,
            import_id,
            "SET rows_total = :r, chunks_total = :c, dialect = :d, #st = :run, progress_at = :now",
            "#st = :queued",
            values,
        )
        .await
    }

    /// Fails a job that has not finished, with its reasons (R-WIZ-10).
    pub async fn fail_job(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        reasons: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let r = serde_dynamo::to_attribute_value(reasons)
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let values = HashMap::from([
            (":r".to_owned(), r),
            (":f".to_owned(), status(JobStatus::Failed)),
            (":t".to_owned(), s(now.to_rfc3339())),
            (":q".to_owned(), status(JobStatus::Queued)),
            (":run".to_owned(), status(JobStatus::Running)),
            (":rv".to_owned(), status(JobStatus::Reverting)),
        ]);
        self.update_job(
            table,
            account,
            import_id,
            "SET failure_reasons = :r, #st = :f, finished_at = :t REMOVE active",
            "#st = :q OR #st = :run OR #st = :rv",
            values,
        )
        .await
    }

    /// Marks chunk `number` done and adds its counts to the job, once: a redelivered chunk
    /// finds its marker and adds nothing.
    pub async fn mark_chunk_done(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        number: u32,
        counts: &Counts,
    ) -> Result<ChunkMark, StoreError> {
        let pk = job_pk(account, import_id);
        let marker = items::encode(
            pk.clone(),
            &chunk_sk(number),
            &serde_json::json!({"counts": counts}),
        )?;
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(marker))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Build(e.to_string()))?;
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(items::key(pk, "JOB")))
            .update_expression(
                "SET rows_done = rows_done + :rows, chunks_done = chunks_done + :one, counts.created = counts.created + :c, counts.updated = counts.updated + :u, counts.unchanged = counts.unchanged + :n, counts.blank = counts.blank + :b, counts.errors = counts.errors + :e, counts.merged = if_not_exists(counts.merged, :zero) + :m, progress_at = :now",
            )
            .condition_expression("#st = :run")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":rows", n(counts.rows))
            .expression_attribute_values(":m", n(counts.merged))
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":c", n(counts.created))
            .expression_attribute_values(":u", n(counts.updated))
            .expression_attribute_values(":n", n(counts.unchanged))
            .expression_attribute_values(":b", n(counts.blank))
            .expression_attribute_values(":e", n(counts.errors))
            .expression_attribute_values(":run", status(JobStatus::Running))
            .build()
            .map_err(|e| StoreError::Build(e.to_string()))?;
        let actions = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(update).build(),
        ];
        // Every chunk updates the one job item: under parallel workers real DynamoDB answers
        // TransactionConflict now and then. The transaction is idempotent (the marker's
        // condition), so it is retried here rather than redelivering the whole chunk. The
        // token only makes the SDK's own retries of one call safe: a redelivered chunk may
        // carry other counts, and a token reused with other parameters is refused for 10 min.
        for attempt in 0..MARK_ATTEMPTS {
            let token = uuid::Uuid::new_v4().to_string();
            match self.transact(actions.clone(), &token).await? {
                TxOutcome::Committed => return Ok(ChunkMark::Counted),
                TxOutcome::Cancelled(r) if r.first() == Some(&CancelReason::ConditionFailed) => {
                    return Ok(ChunkMark::AlreadyDone)
                }
                TxOutcome::Cancelled(r) if r.get(1) == Some(&CancelReason::ConditionFailed) => {
                    return Ok(ChunkMark::JobNotRunning)
                }
                TxOutcome::Cancelled(r)
                    if r.iter().all(|c| {
                        matches!(
                            c,
                            CancelReason::None | CancelReason::Conflict | CancelReason::Throttled
                        )
                    }) =>
                {
                    super::backoff(attempt + 1).await;
                }
                TxOutcome::Cancelled(r) => {
                    return Err(StoreError::Service {
                        op: "TransactWriteItems",
                        code: "TransactionCanceled".into(),
                        source: format!("{r:?}").into(),
                    })
                }
            }
        }
        Err(StoreError::Service {
            op: "TransactWriteItems",
            code: "TransactionConflict".into(),
            source: "chunk marker kept conflicting".into(),
        })
    }

    /// Whether chunk `number` is already done.
    pub async fn chunk_done(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        number: u32,
    ) -> Result<bool, StoreError> {
        Ok(self
            .get(
                table,
                items::key(job_pk(account, import_id), &chunk_sk(number)),
            )
            .await?
            .is_some())
    }

    /// Records a sign of life of a job in flight.
    pub async fn touch_job(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
    ) -> Result<bool, StoreError> {
        let values = HashMap::from([(":now".to_owned(), s(Utc::now().to_rfc3339()))]);
        self.update_job(
            table,
            account,
            import_id,
            "SET progress_at = :now",
            "attribute_exists(active) AND attribute_exists(#st)",
            values,
        )
        .await
    }

    /// Counts a reconciler retry of a stuck job and restarts its clock; returns the attempts
    /// so far, or `None` when the job is no longer in flight.
    pub async fn note_reconcile(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u32>, StoreError> {
        let out = self
            .client()
            .update_item()
            .table_name(table)
            .set_key(Some(items::key(job_pk(account, import_id), "JOB")))
            .update_expression(
                "SET reconcile_attempts = if_not_exists(reconcile_attempts, :zero) + :one, progress_at = :now",
            )
            .condition_expression("attribute_exists(active)")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match out {
            Ok(o) => Ok(o
                .attributes
                .and_then(|a| match a.get("reconcile_attempts") {
                    Some(AttributeValue::N(v)) => v.parse().ok(),
                    _ => None,
                })),
            Err(e) if matches!(e.as_service_error(), Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_))) => Ok(None),
            Err(e) => Err(StoreError::service("UpdateItem", e)),
        }
    }

    /// Jobs in flight whose last progress is older than `cutoff` (every account).
    pub async fn stale_jobs(
        &self,
        table: &str,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError> {
        let query = (self.client().query())
            .table_name(table)
            .index_name(GSI_ACTIVITY)
            .key_condition_expression("active = :a AND progress_at < :cutoff")
            .expression_attribute_values(":a", s(ACTIVE))
            .expression_attribute_values(":cutoff", s(cutoff.to_rfc3339()));
        let keys = (Self::query_all(query).await?.iter())
            .filter_map(|hit| items::string_attr(hit, "pk"))
            .map(|pk| items::key(pk, "JOB"))
            .collect();
        let found = self.batch_get(table, keys).await?;
        found.into_iter().map(items::decode).collect()
    }

    /// Starts a revert of a finished import: status `reverting`, the mode recorded. False when
    /// the job is not finished (or already reverting or reverted).
    pub async fn start_revert(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        summary: &RevertSummary,
    ) -> Result<bool, StoreError> {
        let encoded = serde_dynamo::to_attribute_value(summary)
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let values = HashMap::from([
            (":to".to_owned(), status(JobStatus::Reverting)),
            (":c".to_owned(), status(JobStatus::Completed)),
            (":ce".to_owned(), status(JobStatus::CompletedWithErrors)),
            (":f".to_owned(), status(JobStatus::Failed)),
            (":r".to_owned(), encoded),
            (":active".to_owned(), s(ACTIVE)),
            (":now".to_owned(), s(Utc::now().to_rfc3339())),
        ]);
        self.update_job(
            table,
            account,
            import_id,
            "SET #st = :to, revert = :r, active = :active, progress_at = :now",
            "#st = :c OR #st = :ce OR #st = :f",
            values,
        )
        .await
    }

    /// Finishes a revert with its counts; only one caller wins.
    pub async fn finish_revert(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        summary: &RevertSummary,
    ) -> Result<bool, StoreError> {
        let encoded = serde_dynamo::to_attribute_value(summary)
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let values = HashMap::from([
            (":to".to_owned(), status(JobStatus::Reverted)),
            (":rv".to_owned(), status(JobStatus::Reverting)),
            (":r".to_owned(), encoded),
        ]);
        self.update_job(
            table,
            account,
            import_id,
            "SET #st = :to, revert = :r REMOVE active",
            "#st = :rv",
            values,
        )
        .await
    }

    /// Calls `each` with every undo record of an import, page by page.
    pub async fn each_undo(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        mut each: impl FnMut(UndoRecord),
    ) -> Result<(), StoreError> {
        let mut start: Option<String> = None;
        loop {
            let (records, next) = self
                .undo_page(table, account, import_id, start.as_deref(), 1000)
                .await?;
            records.into_iter().for_each(&mut each);
            match next {
                Some(n) => start = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// A page of an import's undo records, in contact-id order, after `start_after` (a sort
    /// key from the previous page).
    pub async fn undo_page(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        start_after: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<UndoRecord>, Option<String>), StoreError> {
        let pk = job_pk(account, import_id);
        let mut query = self
            .client()
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :u)")
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":u", s(items::UNDO_SK_PREFIX))
            .consistent_read(true)
            .limit(limit);
        if let Some(sk) = start_after {
            query = query.set_exclusive_start_key(Some(items::key(pk, sk)));
        }
        let out = query
            .send()
            .await
            .map_err(|e| StoreError::service("Query", e))?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| items::string_attr(k, "sk"));
        let records = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(items::undo_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((records, next))
    }

    /// Finishes a running job whose chunks are all done, with its settled contact counts;
    /// only one caller wins.
    pub async fn finish_job(
        &self,
        table: &str,
        account: &AccountId,
        import_id: &str,
        to: JobStatus,
        counts: &Counts,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let values = HashMap::from([
            (":to".to_owned(), status(to)),
            (":run".to_owned(), status(JobStatus::Running)),
            (":t".to_owned(), s(now.to_rfc3339())),
            (":c".to_owned(), n(counts.created)),
            (":u".to_owned(), n(counts.updated)),
            (":n".to_owned(), n(counts.unchanged)),
        ]);
        self.update_job(
            table,
            account,
            import_id,
            "SET #st = :to, finished_at = :t, counts.created = :c, counts.updated = :u, counts.unchanged = :n REMOVE active",
            "#st = :run AND chunks_done = chunks_total",
            values,
        )
        .await
    }

    pub async fn put_profile(
        &self,
        account: &AccountId,
        profile: &ImportProfile,
    ) -> Result<(), StoreError> {
        let pk = format!("ACC#{}#PROFILE#{}", account.0, profile.profile_id);
        self.put_as(&self.tables().settings, pk, "PROFILE", profile)
            .await
    }

    pub async fn profile(
        &self,
        account: &AccountId,
        profile_id: &str,
    ) -> Result<Option<ImportProfile>, StoreError> {
        let key = items::key(format!("ACC#{}#PROFILE#{profile_id}", account.0), "PROFILE");
        self.get_as(&self.tables().settings, key).await
    }
}

/// The mapping an account last confirmed for a set of headers (suggested first next time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedMapping {
    pub mapping: std::collections::BTreeMap<String, String>,
    pub updated_at: DateTime<Utc>,
}

/// The key of a header set: order and case do not matter.
pub fn header_set_key(columns: &[String]) -> String {
    use sha2::Digest;
    let mut names: Vec<String> = columns.iter().map(|c| c.trim().to_lowercase()).collect();
    names.sort();
    names.dedup();
    hex::encode(sha2::Sha256::digest(names.join("\u{1f}")))
}

impl Store {
    pub async fn remember_mapping(
        &self,
        account: &AccountId,
        columns: &[String],
        mapping: &RememberedMapping,
    ) -> Result<(), StoreError> {
        let pk = format!("ACC#{}#MAPPING#{}", account.0, header_set_key(columns));
        self.put_as(&self.tables().settings, pk, "MAPPING", mapping)
            .await
    }

    pub async fn remembered_mapping(
        &self,
        account: &AccountId,
        columns: &[String],
    ) -> Result<Option<RememberedMapping>, StoreError> {
        let key = items::key(
            format!("ACC#{}#MAPPING#{}", account.0, header_set_key(columns)),
            "MAPPING",
        );
        self.get_as(&self.tables().settings, key).await
    }
}

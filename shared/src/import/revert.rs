//! The revert job's shell (R-XLS-6 delete by label, R-XLS-8 rollback): pages of the import's
//! undo records, each contact undone by `rollback::decide` in one conditional transaction,
//! the next page sent as its own message, counts taken from the records' final states. Safe to
//! repeat at any point: a record leaves `pending` in the same transaction as its contact, so a
//! redelivered page changes nothing twice.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::job::{Job, JobStatus, RevertSummary};
use super::pipeline::{PipelineError, QueueMessage};
use crate::model::AccountId;
use crate::rollback::{self, RevertMode, Step, UndoRecord, UndoState};
use crate::store::TxOutcome;
use crate::App;

/// Undo records per page (per message).
const PAGE: i32 = 100;
/// Attempts per contact before it is kept with a reason.
const ATTEMPTS: u32 = 4;

/// One page of a revert (the SQS message body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertMessage {
    pub account_id: AccountId,
    pub import_id: String,
    /// The sort key the previous page ended at.
    pub start_after: Option<String>,
}

/// Starts reverting a finished import. False when the job is not finished.
pub async fn start(app: &App, job: &Job, mode: RevertMode) -> Result<bool, PipelineError> {
    let cfg = app.imports()?;
    let summary = RevertSummary {
        mode,
        ..RevertSummary::default()
    };
    if !app
        .store
        .start_revert(&cfg.table, &job.account_id, &job.import_id, &summary)
        .await?
    {
        return Ok(false);
    }
    let first = RevertMessage {
        account_id: job.account_id.clone(),
        import_id: job.import_id.clone(),
        start_after: None,
    };
    super::wizard::send(app, &cfg.chunk_queue_url, &QueueMessage::Revert(first)).await?;
    tracing::info!(account_id = %job.account_id, import_id = %job.import_id, mode = ?mode, "revert started");
    Ok(true)
}

/// Reverts one page and sends the next, or finishes the job.
pub async fn page(app: &App, msg: &RevertMessage) -> Result<(), PipelineError> {
    let cfg = app.imports()?;
    let store = &app.store;
    let Some(job) = store
        .job(&cfg.table, &msg.account_id, &msg.import_id)
        .await?
    else {
        return Ok(());
    };
    if job.status != JobStatus::Reverting {
        return Ok(());
    }
    let mode = job.revert.as_ref().map(|r| r.mode).unwrap_or_default();
    let log = store.undo_log(&cfg.table, &job.account_id, &job.import_id);
    let (records, next) = store
        .undo_page(
            &cfg.table,
            &job.account_id,
            &job.import_id,
            msg.start_after.as_deref(),
            PAGE,
        )
        .await?;
    let mut pending: Vec<UndoRecord> = records
        .into_iter()
        .filter(|r| r.state == UndoState::Pending)
        .collect();
    for attempt in 0..ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        let ids: Vec<_> = pending.iter().map(|r| r.contact_id.clone()).collect();
        let current = store.contacts(&job.account_id, &ids).await?;
        let mut retry = Vec::new();
        for record in pending {
            let step = if attempt + 1 == ATTEMPTS {
                Step::Keep("kept: it kept changing while the import was reverted".into())
            } else {
                rollback::decide(&record, current.get(&record.contact_id), mode, &job.list_id)
            };
            let actions = store.revert_actions(&job.account_id, &log, &record, &step)?;
            if actions.is_empty() {
                continue;
            }
            let token = uuid::Uuid::new_v4().to_string();
            if let TxOutcome::Cancelled(_) = store.transact(actions, &token).await? {
                retry.push(record);
            }
        }
        // A record another worker already settled is no longer pending: drop it.
        pending = still_pending(app, &job, retry).await?;
    }
    store
        .touch_job(&cfg.table, &job.account_id, &job.import_id)
        .await?;
    match next {
        Some(sk) => {
            let message = RevertMessage {
                start_after: Some(sk),
                ..msg.clone()
            };
            super::wizard::send(app, &cfg.chunk_queue_url, &QueueMessage::Revert(message)).await
        }
        None => finish(app, &job, mode).await,
    }
}

async fn still_pending(
    app: &App,
    job: &Job,
    records: Vec<UndoRecord>,
) -> Result<Vec<UndoRecord>, PipelineError> {
    if records.is_empty() {
        return Ok(records);
    }
    let log = app
        .store
        .undo_log(&app.imports()?.table, &job.account_id, &job.import_id);
    let ids: Vec<_> = records.iter().map(|r| r.contact_id.clone()).collect();
    let mut fresh = app.store.undo_records(&log, &ids).await?;
    Ok(ids
        .iter()
        .filter_map(|id| fresh.remove(id))
        .filter(|r| r.state == UndoState::Pending)
        .collect())
}

/// Counts every record's final state and finishes the job (only one caller wins).
async fn finish(app: &App, job: &Job, mode: RevertMode) -> Result<(), PipelineError> {
    let cfg = app.imports()?;
    let mut summary = RevertSummary {
        mode,
        finished_at: Some(Utc::now()),
        ..RevertSummary::default()
    };
    app.store
        .each_undo(&cfg.table, &job.account_id, &job.import_id, |r| {
            match r.state {
                UndoState::Restored => summary.restored += 1,
                UndoState::Deleted => summary.deleted += 1,
                UndoState::Kept => summary.kept += 1,
                UndoState::Pending => {}
            }
        })
        .await?;
    if app
        .store
        .finish_revert(&cfg.table, &job.account_id, &job.import_id, &summary)
        .await?
    {
        tracing::info!(account_id = %job.account_id, import_id = %job.import_id, restored = summary.restored, deleted = summary.deleted, kept = summary.kept, "revert finished");
    }
    Ok(())
}

/// The contacts a revert kept, with the reasons (`GET /v1/imports/{id}/revert`).
pub async fn kept(app: &App, job: &Job) -> Result<Vec<UndoRecord>, PipelineError> {
    let cfg = app.imports()?;
    let mut out = Vec::new();
    app.store
        .each_undo(&cfg.table, &job.account_id, &job.import_id, |r| {
            if r.state == UndoState::Kept {
                out.push(r)
            }
        })
        .await?;
    Ok(out)
}

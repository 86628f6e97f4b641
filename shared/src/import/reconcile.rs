//! The scheduled reconciler (issue 6): no job stays in flight without progress beyond the
//! redrive window — a running job whose chunks are all done is finished, a stuck one has its
//! work sent again (split re-sends only what is not done; a revert re-walks its pending
//! records) a bounded number of times, then fails with the reason. A drop-folder object that
//! never got its job (a missed S3 event) is sent through the same path an event takes.
//! `decide` is pure; `run` is the shell.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::job::{Job, JobStatus};
use super::pipeline::{PipelineError, QueueMessage};
use super::revert::RevertMessage;
use crate::App;

/// Retries of a stuck job before it fails.
pub const MAX_ATTEMPTS: u32 = 3;

/// What to do with a job in flight that made no progress since the cutoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Every chunk is done: only the finish was lost.
    Finish,
    /// Send the split again (queued or running).
    RetrySplit,
    /// Walk the revert's pending records again.
    RetryRevert,
    Fail(String),
}

pub fn decide(job: &Job, stuck_after: Duration) -> Action {
    if job.status == JobStatus::Running
        && job.chunks_total > 0
        && job.chunks_done == job.chunks_total
    {
        return Action::Finish;
    }
    if job.reconcile_attempts >= MAX_ATTEMPTS {
        return Action::Fail(format!(
            "no progress for {} minutes, {} times over; given up",
            stuck_after.num_minutes(),
            MAX_ATTEMPTS
        ));
    }
    match job.status {
        JobStatus::Reverting => Action::RetryRevert,
        _ => Action::RetrySplit,
    }
}

/// What one reconciler run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub finished: u32,
    pub retried: u32,
    pub failed: u32,
    pub drops_found: u32,
}

/// The id of the job a drop-folder object starts: the same for its S3 event and for the
/// reconciler (object key and ETag), so neither can start it twice.
pub fn drop_import_id(key: &str, etag: &str) -> String {
    use sha2::{Digest, Sha256};
    let etag = etag.trim_matches('"');
    format!(
        "imp_{}",
        &hex::encode(Sha256::digest(format!("{key}\n{etag}")))[..32]
    )
}

/// One reconciler pass at `now`.
pub async fn run(
    app: &App,
    now: DateTime<Utc>,
    stuck_after: Duration,
    drop_grace: Duration,
) -> Result<Report, PipelineError> {
    let cfg = app.imports()?;
    let mut report = Report::default();
    for job in app.store.stale_jobs(&cfg.table, now - stuck_after).await? {
        let action = decide(&job, stuck_after);
        tracing::warn!(account_id = %job.account_id, import_id = %job.import_id, status = ?job.status, action = ?action, "stuck job");
        match action {
            Action::Finish => {
                super::pipeline::finish_if_done(app, &job).await?;
                report.finished += 1;
            }
            Action::Fail(reason) => {
                app.store
                    .fail_job(&cfg.table, &job.account_id, &job.import_id, &[reason], now)
                    .await?;
                report.failed += 1;
            }
            Action::RetrySplit | Action::RetryRevert => {
                if app
                    .store
                    .note_reconcile(&cfg.table, &job.account_id, &job.import_id, now)
                    .await?
                    .is_none()
                {
                    continue;
                }
                let (queue, message) = if action == Action::RetrySplit {
                    let m = QueueMessage::Split {
                        account_id: job.account_id.clone(),
                        import_id: job.import_id.clone(),
                    };
                    (&cfg.split_queue_url, m)
                } else {
                    let m = QueueMessage::Revert(RevertMessage {
                        account_id: job.account_id.clone(),
                        import_id: job.import_id.clone(),
                        start_after: None,
                    });
                    (&cfg.chunk_queue_url, m)
                };
                super::wizard::send(app, queue, &message).await?;
                report.retried += 1;
            }
        }
    }
    report.drops_found = missed_drops(app, now - drop_grace).await?;
    Ok(report)
}

/// Drop-folder objects older than `cutoff` without their job: sent to the split queue as the
/// S3 event that was missed.
async fn missed_drops(app: &App, cutoff: DateTime<Utc>) -> Result<u32, PipelineError> {
    let cfg = app.imports()?;
    let mut pages = app
        .s3
        .list_objects_v2()
        .bucket(&cfg.bucket)
        .prefix("drop/")
        .into_paginator()
        .send();
    let mut found = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| PipelineError::S3 {
            op: "ListObjectsV2",
            message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
        })?;
        for obj in page.contents() {
            let (Some(key), Some(etag)) = (obj.key(), obj.e_tag()) else {
                continue;
            };
            let old = obj
                .last_modified()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), 0))
                .is_some_and(|t| t < cutoff);
            let Some(account) = key.split('/').nth(1) else {
                continue;
            };
            if !old {
                continue;
            }
            let account = crate::model::AccountId(account.to_owned());
            let id = drop_import_id(key, etag);
            if app.store.job(&cfg.table, &account, &id).await?.is_some() {
                continue;
            }
            let event = serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"object": {"key": key, "eTag": etag.trim_matches('"')}}}]});
            app.sqs
                .send_message()
                .queue_url(&cfg.split_queue_url)
                .message_body(event.to_string())
                .send()
                .await
                .map_err(|e| PipelineError::Sqs {
                    op: "SendMessage",
                    message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                })?;
            tracing::warn!(account_id = %account, import_id = %id, "drop-folder object without a job: sent again");
            found += 1;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: JobStatus, done: u64, total: u64, attempts: u32) -> Job {
        let mut j = Job::draft(
            "imp_1".into(),
            crate::model::AccountId("acc_1".into()),
            1,
            "lst_1".into(),
            "f.csv",
            "uploads/f.csv".into(),
            Utc::now(),
        );
        j.status = status;
        j.chunks_done = done;
        j.chunks_total = total;
        j.reconcile_attempts = attempts;
        j
    }

    #[test]
    fn reconcile_finishes_a_running_job_whose_chunks_are_all_done() {
        let j = job(JobStatus::Running, 4, 4, 0);
        assert_eq!(decide(&j, Duration::minutes(60)), Action::Finish);
    }

    #[test]
    fn reconcile_retries_a_stuck_job_then_fails_it_with_the_reason() {
        let stuck = Duration::minutes(60);
        assert_eq!(
            decide(&job(JobStatus::Running, 1, 4, 0), stuck),
            Action::RetrySplit
        );
        assert_eq!(
            decide(&job(JobStatus::Queued, 0, 0, 2), stuck),
            Action::RetrySplit
        );
        assert_eq!(
            decide(&job(JobStatus::Reverting, 0, 4, 1), stuck),
            Action::RetryRevert
        );
        let Action::Fail(reason) = decide(&job(JobStatus::Running, 1, 4, 3), stuck) else {
            panic!("fails after {MAX_ATTEMPTS} retries");
        };
        assert!(reason.contains("no progress for 60 minutes"), "{reason}");
    }

    #[test]
    fn drop_import_id_is_the_same_for_an_event_etag_and_a_listed_quoted_etag() {
        assert_eq!(
            drop_import_id("drop/a/p/f.csv", "abc"),
            drop_import_id("drop/a/p/f.csv", "\"abc\"")
        );
        assert_ne!(
            drop_import_id("drop/a/p/f.csv", "abc"),
            drop_import_id("drop/a/p/g.csv", "abc")
        );
    }
}

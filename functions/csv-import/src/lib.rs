//! The import pipeline's queue worker (SQS, partial batch responses): split requests from the
//! wizard, chunk work orders, S3 ObjectCreated events of drop folders (`drop/<account>/<profile>/`)
//! and dead letters. A file or settings problem fails the job with its reason; anything else is
//! retried by SQS and, after the queue's redrive count, fails the job from the dead-letter queue.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use intake_shared::import::job::JobStatus;
use intake_shared::import::pipeline::{self, PipelineError, QueueMessage};
use intake_shared::import::{reconcile, revert, wizard};
use intake_shared::model::AccountId;
use intake_shared::App;

pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        if let Err(e) = handle_record(app, &record).await {
            tracing::warn!(message_id = ?record.message_id, error = %e, "message will be retried");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

async fn handle_record(app: &App, record: &SqsMessage) -> Result<(), PipelineError> {
    let body = record.body.as_deref().unwrap_or_default();
    let dead = record
        .event_source_arn
        .as_deref()
        .is_some_and(|a| a.contains("DeadLetter"));
    if let Ok(message) = serde_json::from_str::<QueueMessage>(body) {
        let (account, import_id) = match &message {
            QueueMessage::Split {
                account_id,
                import_id,
            } => (account_id.clone(), import_id.clone()),
            QueueMessage::Chunk(m) => (m.account_id.clone(), m.import_id.clone()),
            QueueMessage::Revert(m) => (m.account_id.clone(), m.import_id.clone()),
        };
        if dead {
            let what = match &message {
                QueueMessage::Split { .. } => "splitting the file".to_owned(),
                QueueMessage::Chunk(m) => format!(
                    "chunk {} (rows from {})",
                    m.spec.number,
                    m.spec.first_index + 1
                ),
                QueueMessage::Revert(_) => {
                    "reverting (start the revert again: it continues where it stopped)".to_owned()
                }
            };
            return fail(
                app,
                &account,
                &import_id,
                format!("{what} kept failing and was given up after the queue's retries"),
            )
            .await;
        }
        return settle(
            app,
            &account,
            &import_id,
            run(app, &account, &message).await,
        )
        .await;
    }
    let event: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if event.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(());
    }
    for r in event
        .get("Records")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
    {
        let key = r
            .pointer("/s3/object/key")
            .and_then(|k| k.as_str())
            .map(decode_key)
            .unwrap_or_default();
        let tag = r
            .pointer("/s3/object/eTag")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        drop_folder(app, &key, tag).await?;
    }
    Ok(())
}

async fn run(app: &App, account: &AccountId, message: &QueueMessage) -> Result<(), PipelineError> {
    let settings = app
        .store
        .account(account)
        .await?
        .map(|a| a.settings)
        .unwrap_or_default();
    match message {
        QueueMessage::Split { import_id, .. } => {
            let table = &app.imports()?.table;
            let Some(job) = app.store.job(table, account, import_id).await? else {
                return Ok(());
            };
            if matches!(job.status, JobStatus::Queued | JobStatus::Running) {
                pipeline::split(app, &job, &settings).await?;
            }
            Ok(())
        }
        QueueMessage::Chunk(m) => pipeline::process_chunk(app, m, &settings).await.map(|_| ()),
        QueueMessage::Revert(m) => revert::page(app, m).await,
    }
}

/// A problem with the file or the settings fails the job (retrying cannot fix it); the rest is
/// returned for SQS to retry.
async fn settle(
    app: &App,
    account: &AccountId,
    import_id: &str,
    result: Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    match result {
        Err(e @ (PipelineError::File(_) | PipelineError::Csv(_) | PipelineError::Settings(_))) => {
            let reason = match &e {
                PipelineError::Settings(problems) => problems
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            fail(app, account, import_id, reason).await
        }
        other => other,
    }
}

async fn fail(
    app: &App,
    account: &AccountId,
    import_id: &str,
    reason: String,
) -> Result<(), PipelineError> {
    let table = &app.imports()?.table;
    if app
        .store
        .fail_job(table, account, import_id, &[reason], Utc::now())
        .await?
    {
        tracing::warn!(account_id = %account, import_id, "import failed");
    }
    Ok(())
}

/// S3 keys arrive URL-encoded (`+` for spaces from AWS; moto also encodes `/`).
pub fn decode_key(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An object in `drop/<account>/<profile>/` starts an import with the profile's settings. The
/// job id derives from the object key and ETag, so a repeated event (or the reconciler's
/// resend of a missed one) finds its job.
async fn drop_folder(app: &App, key: &str, tag: &str) -> Result<(), PipelineError> {
    let parts: Vec<&str> = key.splitn(4, '/').collect();
    let ["drop", account, profile_id, file] = parts.as_slice() else {
        tracing::warn!("object outside drop/<account>/<profile>/ ignored");
        return Ok(());
    };
    let account = AccountId((*account).to_owned());
    let Some(profile) = app.store.profile(&account, profile_id).await? else {
        tracing::warn!(account_id = %account, profile_id, "drop folder has no profile; object ignored");
        return Ok(());
    };
    let import_id = reconcile::drop_import_id(key, tag);
    let table = app.imports()?.table.clone();
    let mut job = wizard::new_job(
        app,
        &account,
        import_id.clone(),
        profile.list_id.clone(),
        file,
        Some(key.to_owned()),
        Utc::now(),
    )
    .await?;
    job.settings = Some(profile.settings.clone());
    job.profile_id = Some(profile.profile_id.clone());
    job.status = JobStatus::Queued;
    if app.store.put_job(&table, &job).await? {
        tracing::info!(account_id = %account, import_id, profile_id, "drop-folder import queued");
    }
    let settings = app
        .store
        .account(&account)
        .await?
        .map(|a| a.settings)
        .unwrap_or_default();
    wizard::create_custom_fields(app, &account, &profile.settings, &settings).await?;
    let message = QueueMessage::Split {
        account_id: account.clone(),
        import_id: import_id.clone(),
    };
    settle(
        app,
        &account,
        &import_id,
        run(app, &account, &message).await,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_keys_decode_both_aws_and_moto_forms() {
        assert_eq!(
            decode_key("drop/acc/p1/my+file%C3%A6.csv"),
            "drop/acc/p1/my fileæ.csv"
        );
        assert_eq!(
            decode_key("drop%2Facc%2Fp1%2Fa+b.csv"),
            "drop/acc/p1/a b.csv"
        );
        assert_eq!(decode_key("drop/acc/p1/100%"), "drop/acc/p1/100%");
    }
}

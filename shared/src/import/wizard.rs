//! What the wizard API needs beyond the pipeline: creating jobs (label, list, upload URL),
//! the job's API view, starting (custom fields created, split requested) and the error report
//! as CSV with cells escaped against formula injection.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::job::Job;
use super::mapping::{ImportSettings, RowError};
use super::pipeline::{PipelineError, QueueMessage};
use crate::model::AccountId;
use crate::settings::Settings;
use crate::store::imports::ContactList;
use crate::App;

/// How long an upload URL stays valid.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// The list an import targets (R-WIZ-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ListChoice {
    Id(String),
    New(String),
}

/// Keeps a file name safe as an S3 key part.
pub fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if cleaned.trim_matches(['.', '_']).is_empty() {
        "upload.csv".into()
    } else {
        cleaned
    }
}

/// Resolves the list: an existing one of the account (`None` when unknown) or a new one.
pub async fn resolve_list(
    app: &App,
    account: &AccountId,
    choice: &ListChoice,
    now: DateTime<Utc>,
) -> Result<Option<String>, PipelineError> {
    match choice {
        ListChoice::Id(id) => Ok(app.store.list(account, id).await?.map(|l| l.list_id)),
        ListChoice::New(name) => {
            let list = ContactList::named(name, now);
            app.store.put_list(account, &list).await?;
            Ok(Some(list.list_id))
        }
    }
}

/// A new draft job for `object_key` (a wizard upload or a drop-folder object).
pub async fn new_job(
    app: &App,
    account: &AccountId,
    import_id: String,
    list_id: String,
    file_name: &str,
    object_key: Option<String>,
    now: DateTime<Utc>,
) -> Result<Job, PipelineError> {
    let number = app.store.next_import_number(account).await?;
    let object_key = object_key
        .unwrap_or_else(|| format!("uploads/{}/{import_id}/{}", account.0, safe_name(file_name)));
    Ok(Job::draft(
        import_id,
        account.clone(),
        number,
        list_id,
        file_name,
        object_key,
        now,
    ))
}

/// A presigned PUT for the job's object.
pub async fn upload_url(app: &App, job: &Job) -> Result<String, PipelineError> {
    let cfg = app.imports()?;
    let presign = aws_sdk_s3::presigning::PresigningConfig::expires_in(UPLOAD_URL_TTL)
        .map_err(|e| PipelineError::File(e.to_string()))?;
    let req = app
        .s3
        .put_object()
        .bucket(&cfg.bucket)
        .key(&job.object_key)
        .presigned(presign)
        .await
        .map_err(|e| PipelineError::File(e.to_string()))?;
    Ok(req.uri().to_owned())
}

/// The API view of a job (API.md `GET /v1/imports/{id}`).
pub fn view(job: &Job) -> serde_json::Value {
    serde_json::json!({
        "id": job.import_id,
        "label": job.label,
        "status": job.status,
        "list_id": job.list_id,
        "file_name": job.file_name,
        "rows_total": job.rows_total,
        "rows_done": job.rows_done,
        "created": job.counts.created,
        "updated": job.counts.updated,
        "unchanged": job.counts.unchanged,
        "blank": job.counts.blank,
        "errors": job.counts.errors,
        "merged": job.counts.merged,
        "revert": job.revert,
        "failure_reasons": job.failure_reasons,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    })
}

/// Adds the import's new custom fields to the account (R-WIZ-4: created on the spot, as text).
pub async fn create_custom_fields(
    app: &App,
    account: &AccountId,
    settings: &ImportSettings,
    current: &Settings,
) -> Result<(), PipelineError> {
    let next = current.with_custom_fields(settings.create_custom_fields.iter().map(String::as_str));
    if next != *current {
        app.store.put_settings(account, &next).await?;
    }
    Ok(())
}

/// Queues a started job for splitting.
pub async fn request_split(app: &App, job: &Job) -> Result<(), PipelineError> {
    let cfg = app.imports()?;
    let message = QueueMessage::Split {
        account_id: job.account_id.clone(),
        import_id: job.import_id.clone(),
    };
    send(app, &cfg.split_queue_url, &message).await
}

/// Sends one message of the import queues.
pub async fn send(app: &App, queue_url: &str, message: &QueueMessage) -> Result<(), PipelineError> {
    let body = serde_json::to_string(message).map_err(|e| PipelineError::File(e.to_string()))?;
    app.sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| PipelineError::Sqs {
            op: "SendMessage",
            message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
        })?;
    Ok(())
}

/// A CSV cell safe to open in a spreadsheet: a leading `=`, `+`, `-`, `@`, tab or CR would
/// start a formula, so the cell gets a leading apostrophe.
pub fn escape_cell(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

/// The error report as CSV: row, column, value, reason.
pub fn errors_csv(errors: &[RowError]) -> Result<Vec<u8>, ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(["row", "column", "value", "reason"])?;
    for e in errors {
        let row = e.row.to_string();
        w.write_record([
            row.as_str(),
            &escape_cell(e.column.as_deref().unwrap_or("")),
            &escape_cell(e.value.as_deref().unwrap_or("")),
            &escape_cell(&e.reason),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_csv_escapes_formula_cells_and_quotes_separators() {
        let errors = vec![RowError {
            row: 3,
            column: Some("E-mail".into()),
            value: Some("=HYPERLINK(\"x\",\"y\")".into()),
            reason: "invalid, really".into(),
        }];
        let out = String::from_utf8(errors_csv(&errors).unwrap()).unwrap();
        assert_eq!(out, "row,column,value,reason\n3,E-mail,\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\",\"invalid, really\"\n");
        for bad in ["+1", "-1", "@SUM(A1)", "\tx"] {
            assert!(escape_cell(bad).starts_with('\''), "{bad}");
        }
        assert_eq!(escape_cell("Ola"), "Ola");
    }

    #[test]
    fn file_names_are_made_safe_for_keys() {
        assert_eq!(safe_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(safe_name("Kunder 2024 (Ø).csv"), "Kunder_2024____.csv");
        assert_eq!(safe_name("..."), "upload.csv");
    }
}

//! An import job as the wizard and the pipeline see it: status (R-WIZ-10), label (R-XLS-6),
//! settings, counters and failure reasons.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::csv::Dialect;
use super::mapping::ImportSettings;
use crate::model::AccountId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Draft,
    Validating,
    Queued,
    Running,
    Completed,
    CompletedWithErrors,
    Failed,
    Reverting,
    Reverted,
}

impl JobStatus {
    /// The wizard's tab (R-WIZ-10): in progress is listed under Draft.
    pub fn tab(&self) -> &'static str {
        match self {
            Self::Draft | Self::Validating | Self::Queued | Self::Running => "draft",
            Self::Completed | Self::CompletedWithErrors | Self::Reverting | Self::Reverted => {
                "completed"
            }
            Self::Failed => "failed",
        }
    }

    /// In flight: work is queued for it and the reconciler watches its progress.
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Queued | Self::Running | Self::Reverting)
    }

    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::CompletedWithErrors | Self::Failed | Self::Reverted
        )
    }
}

/// Counts of outcomes: contacts created, updated or unchanged (a client row with contact-person
/// groups gives several), blank rows, rows with errors, and in-file duplicates merged into an
/// earlier row (R-XLS-8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub blank: u64,
    pub errors: u64,
    #[serde(default)]
    pub merged: u64,
    /// File rows these counts cover (kept on the job as `rows_done`).
    #[serde(skip)]
    pub rows: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.blank += other.blank;
        self.errors += other.errors;
        self.merged += other.merged;
        self.rows += other.rows;
    }
}

/// A stored import job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub import_id: String,
    pub account_id: AccountId,
    pub number: u64,
    /// "Import 2026-11-22 #3": stamped on every contact the import creates or changes.
    pub label: String,
    pub list_id: String,
    pub file_name: String,
    pub object_key: String,
    pub status: JobStatus,
    #[serde(default)]
    pub settings: Option<ImportSettings>,
    #[serde(default)]
    pub dialect: Option<Dialect>,
    #[serde(default)]
    pub profile_id: Option<String>,
    #[serde(default)]
    pub rows_total: u64,
    #[serde(default)]
    pub rows_done: u64,
    #[serde(default)]
    pub counts: Counts,
    #[serde(default)]
    pub chunks_total: u64,
    #[serde(default)]
    pub chunks_done: u64,
    #[serde(default)]
    pub failure_reasons: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Set when a revert (or delete by label) was asked for; counts once it finished.
    #[serde(default)]
    pub revert: Option<RevertSummary>,
    /// The last sign of life of a job in flight (queued, running, reverting): the reconciler
    /// looks after jobs whose progress is older than the redrive window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reconcile_attempts: u32,
}

/// What a revert did (R-XLS-6, R-XLS-8): contacts restored to their before-image, created
/// contacts deleted, and contacts kept (changed since, linked, deleted since) with reasons in
/// `GET /v1/imports/{id}/revert`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertSummary {
    pub mode: crate::rollback::RevertMode,
    #[serde(default)]
    pub restored: u64,
    #[serde(default)]
    pub deleted: u64,
    #[serde(default)]
    pub kept: u64,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// A new draft: import number `number` of `account`, reading `object_key`.
    pub fn draft(
        import_id: String,
        account_id: AccountId,
        number: u64,
        list_id: String,
        file_name: &str,
        object_key: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            import_id,
            account_id,
            number,
            label: label(now, number),
            list_id,
            file_name: file_name.chars().take(255).collect(),
            object_key,
            status: JobStatus::Draft,
            settings: None,
            dialect: None,
            profile_id: None,
            rows_total: 0,
            rows_done: 0,
            counts: Counts::default(),
            chunks_total: 0,
            chunks_done: 0,
            failure_reasons: Vec::new(),
            created_at: now,
            finished_at: None,
            revert: None,
            progress_at: None,
            reconcile_attempts: 0,
        }
    }
}

/// The label of import number `n` started on `day` (R-XLS-6).
pub fn label(day: DateTime<Utc>, n: u64) -> String {
    format!("Import {} #{n}", day.format("%Y-%m-%d"))
}

/// The final status once every chunk is done (R-WIZ-10): failed when no row could be
/// imported and some row failed, with errors when some did, else completed.
/// The job's final outcome counts. A chunk redelivered after a crash sees its own earlier
/// writes as unchanged, so its counters under-count creates and updates; the import's undo
/// records (one per contact: `created` made by it, `updated` changed by it) do not. A clean
/// run's counters can be higher (two rows reaching one contact through different keys both
/// count), so each is the larger of the two; the number of outcomes is the same on every
/// delivery, so the rest are unchanged.
pub fn settled(c: &Counts, created: u64, updated: u64) -> Counts {
    let outcomes = c.created + c.updated + c.unchanged;
    let created = created.max(c.created);
    let updated = updated.max(c.updated);
    Counts {
        created,
        updated,
        unchanged: outcomes.saturating_sub(created + updated),
        ..*c
    }
}

pub fn final_status(c: &Counts) -> JobStatus {
    let imported = c.created + c.updated + c.unchanged;
    match (imported, c.errors) {
        (0, e) if e > 0 => JobStatus::Failed,
        (_, 0) => JobStatus::Completed,
        _ => JobStatus::CompletedWithErrors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_counts_move_replayed_rows_from_unchanged_to_what_the_undo_records_say() {
        let replayed = Counts {
            created: 3,
            updated: 1,
            unchanged: 6,
            errors: 2,
            merged: 1,
            ..Counts::default()
        };
        let s = settled(&replayed, 5, 2);
        assert_eq!((s.created, s.updated, s.unchanged), (5, 2, 3));
        assert_eq!((s.errors, s.merged), (2, 1), "row counts are kept");
        let clean = Counts {
            created: 1,
            updated: 2,
            ..Counts::default()
        };
        let s = settled(&clean, 1, 1);
        assert_eq!(
            (s.created, s.updated, s.unchanged),
            (1, 2, 0),
            "two rows updating one contact through different keys both count"
        );
    }

    #[test]
    fn job_final_status_follows_counts() {
        let c = |created, errors| Counts {
            created,
            errors,
            ..Counts::default()
        };
        assert_eq!(final_status(&c(3, 0)), JobStatus::Completed);
        assert_eq!(final_status(&c(3, 1)), JobStatus::CompletedWithErrors);
        assert_eq!(final_status(&c(0, 2)), JobStatus::Failed);
        assert_eq!(
            final_status(&Counts {
                blank: 2,
                ..Counts::default()
            }),
            JobStatus::Completed
        );
    }

    #[test]
    fn r_wiz_10_running_jobs_are_listed_under_draft() {
        assert_eq!(JobStatus::Running.tab(), "draft");
        assert_eq!(JobStatus::CompletedWithErrors.tab(), "completed");
        assert_eq!(JobStatus::Failed.tab(), "failed");
    }
}

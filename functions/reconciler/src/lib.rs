//! The reconciler's handler: one pass of `import::reconcile::run` at `now`, with the stuck-job
//! window from configuration and a five-minute grace for drop-folder objects whose event may
//! still be on its way.

use chrono::{DateTime, Duration, Utc};
use intake_shared::import::pipeline::PipelineError;
use intake_shared::import::reconcile::{self, Report};
use intake_shared::App;

/// Drop-folder objects younger than this may still have their S3 event in flight.
pub const DROP_GRACE_SECONDS: i64 = 300;

pub async fn handle(app: &App, now: DateTime<Utc>) -> Result<Report, PipelineError> {
    let stuck_after = Duration::seconds(app.imports()?.stuck_after_seconds);
    let report =
        reconcile::run(app, now, stuck_after, Duration::seconds(DROP_GRACE_SECONDS)).await?;
    tracing::info!(
        finished = report.finished,
        retried = report.retried,
        failed = report.failed,
        drops_found = report.drops_found,
        "reconciled"
    );
    Ok(report)
}

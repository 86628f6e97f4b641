//! The scheduled reconciler (issue 6) end to end: a job whose split message was lost is found
//! by its old progress and run again; a drop-folder object whose S3 event was missed gets its
//! job (the same id the event would have given); the template schedules it and the runner
//! hosts the schedule.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use intake_shared::import::job::JobStatus;
use intake_shared::import::reconcile::drop_import_id;
use intake_tests::TestEnv;
use serde_json::json;

fn settings() -> serde_json::Value {
    json!({
        "header_row": true,
        "mapping": {"First": "first_name", "Email": "email", "Mobile": "mobile", "City": "city"},
        "opt_in": {"email_marketing": {"value": "unknown"}, "sms_marketing": {"value": "unknown"}},
        "primary_key": "mobile", "secondary_key": "email", "compliance_acknowledged": true
    })
}

const FILE: &str = "First,Email,Mobile,City\nOla,ola@example.no,41234567,Oslo\nKari,kari@example.no,41234568,Bergen\n";

#[tokio::test]
async fn reconcile_runs_a_queued_job_again_when_its_split_message_was_lost() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let id = env.upload_import(&key, FILE.as_bytes()).await;
    let r = env
        .call(
            "PUT",
            &format!("/v1/imports/{id}/settings"),
            &key,
            Some(settings()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Started, but the split message never reached the queue.
    let app = env.apps["ReconcilerFunction"].clone();
    let table = app.imports().unwrap().table.clone();
    assert!(app
        .store
        .transition(
            &table,
            &account,
            &id,
            &[JobStatus::Draft],
            JobStatus::Queued
        )
        .await
        .unwrap());
    let now = Utc::now();
    let early = intake_reconciler::handle(&app, now).await.unwrap();
    assert_eq!(early.retried, 0, "not stuck yet: {early:?}");
    let later = intake_reconciler::handle(&app, now + Duration::hours(3))
        .await
        .unwrap();
    assert_eq!(later.retried, 1, "{later:?}");
    let job = env.wait_import(&key, &id).await;
    assert_eq!(
        (&job["status"], &job["created"]),
        (&json!("completed"), &json!(2)),
        "{job}"
    );
    assert_eq!(env.contacts(&account).await.len(), 2);
    let done = intake_reconciler::handle(&app, Utc::now() + Duration::hours(6))
        .await
        .unwrap();
    assert_eq!(
        done.retried + done.failed + done.finished,
        0,
        "a finished job is left alone: {done:?}"
    );
}

#[tokio::test]
async fn reconcile_imports_a_drop_folder_object_whose_event_was_missed() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let profile = json!({"list": {"new": "Drops"}, "settings": settings()});
    let r = env
        .call("PUT", "/v1/import-profiles/p1", &key, Some(profile))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let object = format!("drop/{}/p1/kunder.csv", account.0);
    let put = env
        .clients
        .s3
        .put_object()
        .bucket(env.bucket())
        .key(&object)
        .body(FILE.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let first = env.first_in_tab(&key, "completed").await;
    let id = drop_import_id(&object, put.e_tag().unwrap());
    assert_eq!(
        first["id"],
        id.as_str(),
        "the event's job id is the reconciler's"
    );
    // As if the event had been lost: nothing of the job exists.
    let app = env.apps["ReconcilerFunction"].clone();
    let table = app.imports().unwrap().table.clone();
    let pk = format!("ACC#{}#IMPORT#{id}", account.0);
    let items = env
        .clients
        .dynamodb
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert!(
        items.len() > 1,
        "the job, its chunk marker and undo records"
    );
    for item in items {
        env.clients
            .dynamodb
            .delete_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
    }
    let fresh = intake_reconciler::handle(&app, Utc::now()).await.unwrap();
    assert_eq!(
        fresh.drops_found, 0,
        "a fresh object may still have its event on the way"
    );
    let report = intake_reconciler::handle(&app, Utc::now() + Duration::minutes(10))
        .await
        .unwrap();
    assert_eq!(report.drops_found, 1, "{report:?}");
    let job = env.wait_import(&key, &id).await;
    assert_eq!(
        (&job["status"], &job["rows_done"]),
        (&json!("completed"), &json!(2)),
        "{job}"
    );
    assert_eq!(
        env.contacts(&account).await.len(),
        2,
        "the same people, not twice"
    );
    let again = intake_reconciler::handle(&app, Utc::now() + Duration::minutes(20))
        .await
        .unwrap();
    assert_eq!(again.drops_found, 0, "found once");
}

#[test]
fn reconcile_is_scheduled_every_15_minutes_by_the_template() {
    let t = intake_local_runner::template::Template::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
    )
    .unwrap();
    let reconciler = intake_local_runner::template::ScheduleEvent {
        function: "ReconcilerFunction".into(),
        every_seconds: 900,
    };
    assert!(t.schedules.contains(&reconciler), "{:?}", t.schedules);
    assert_eq!(
        intake_local_runner::template::rate_seconds("rate(1 hour)"),
        Some(3600)
    );
    assert_eq!(
        intake_local_runner::template::rate_seconds("cron(0 * * * ? *)"),
        None
    );
}

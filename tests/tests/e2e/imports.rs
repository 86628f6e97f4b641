//! File import end to end (issue 4): presigned upload → S3 → settings → start → split queue →
//! chunk queue → workers → job finished; through moto and DynamoDB Local.

use intake_tests::TestEnv;
use serde_json::{json, Value};

fn settings(mapping: Value, primary: &str, secondary: Option<&str>) -> Value {
    json!({
        "header_row": true,
        "mapping": mapping,
        "skip_unmapped": true,
        "opt_in": {"email_marketing": {"value": "unknown"}, "sms_marketing": {"value": "unknown"}},
        "master": "file",
        "primary_key": primary,
        "secondary_key": secondary,
        "compliance_acknowledged": true
    })
}

fn basic_mapping() -> Value {
    json!({"First": "first_name", "Email": "email", "Mobile": "mobile", "City": "city"})
}

#[tokio::test]
async fn import_creates_contacts_from_an_uploaded_file() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let file = "First,Email,Mobile,City\nOla,ola@example.no,412 34 567,Oslo\nKari,kari@example.no,+47 41234568,Bergen\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    let job = env
        .run_import(
            &key,
            &id,
            settings(basic_mapping(), "mobile", Some("email")),
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        (
            job["created"].as_u64(),
            job["rows_total"].as_u64(),
            job["rows_done"].as_u64()
        ),
        (Some(2), Some(2), Some(2))
    );
    let contacts = env.contacts(&account).await;
    assert_eq!(contacts.len(), 2);
    let ola = contacts
        .iter()
        .find(|c| c.fields.first_name.as_deref() == Some("Ola"))
        .unwrap();
    assert_eq!(ola.mobile.as_ref().unwrap().as_str(), "+4741234567");
    assert!(
        ola.labels.contains(job["label"].as_str().unwrap()),
        "R-XLS-6: the import's label is on the contact"
    );
    assert_eq!(
        ola.lists.len(),
        1,
        "R-WIZ-1: the contact joins the import's list"
    );
}

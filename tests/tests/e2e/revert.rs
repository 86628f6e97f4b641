//! Undoing imports (issue 6) end to end: full rollback to the exact pre-import table, contacts
//! changed since kept and listed, and RAYNET's delete by label keeping linked contacts.

use intake_tests::TestEnv;
use serde_json::{json, Value};

fn settings() -> Value {
    json!({
        "header_row": true,
        "mapping": {"First": "first_name", "Email": "email", "Mobile": "mobile", "City": "city"},
        "opt_in": {"email_marketing": {"value": "unknown"}, "sms_marketing": {"value": "unknown"}},
        "master": "file",
        "primary_key": "mobile",
        "secondary_key": "email",
        "compliance_acknowledged": true
    })
}

/// Three existing contacts; returns Ann's id.
async fn seed(env: &TestEnv, key: &str) -> String {
    let ann = env.upsert(key, json!({"first_name": "Ann", "mobile": "41234567", "email": "ann@example.no", "city": "Oslo"})).await;
    env.upsert(
        key,
        json!({"first_name": "Bo", "mobile": "41234568", "city": "Bergen"}),
    )
    .await;
    env.upsert(
        key,
        json!({"first_name": "Uno", "mobile": "41234569", "city": "Moss"}),
    )
    .await;
    ann
}

/// A file that updates the seeded contacts (Ann swaps her email, so identity items move; Bo
/// gains one; Uno's values are unchanged but he joins the import's list), creates two and
/// repeats one of the new ones.
async fn import_file(env: &TestEnv, key: &str) -> String {
    let file = "First,Email,Mobile,City\n\
        Ann,ann.new@example.no,41234567,Tromsø\n\
        Bo,bo@example.no,41234568,Bergen\n\
        Uno,,41234569,Moss\n\
        New,new@example.no,41234570,Bodø\n\
        Newer,newer@example.no,41234571,Molde\n\
        New again,,41234570,Hamar\n";
    let id = env.upload_import(key, file.as_bytes()).await;
    let job = env.run_import(key, &id, settings()).await;
    assert_eq!(
        (
            &job["created"],
            &job["updated"],
            &job["unchanged"],
            &job["merged"]
        ),
        (&json!(2), &json!(3), &json!(0), &json!(1)),
        "{job}"
    );
    id
}

/// Today's new members of a list.
async fn growth(env: &TestEnv, key: &str, list: &str) -> Value {
    let body = env
        .call("GET", &format!("/v1/lists/{list}/growth"), key, None)
        .await
        .body;
    body["days"].as_array().unwrap().last().unwrap()["new_contacts"].clone()
}

async fn revert(env: &TestEnv, key: &str, id: &str, body: Option<Value>) -> Value {
    let r = env
        .call("POST", &format!("/v1/imports/{id}/revert"), key, body)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let job = env.wait_import(key, id).await;
    assert_eq!(job["status"], "reverted", "{job}");
    job
}

#[tokio::test]
async fn r_xls_8_revert_restores_the_exact_pre_import_table_of_contacts_and_identity_items() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    seed(&env, &key).await;
    let before = env.snapshot(&account).await;
    let id = import_file(&env, &key).await;
    assert_ne!(
        env.snapshot(&account).await,
        before,
        "the import changed the table"
    );
    let list = env
        .call("GET", &format!("/v1/imports/{id}"), &key, None)
        .await
        .body["list_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        growth(&env, &key, &list).await,
        5,
        "two created and three updated joined the list"
    );
    let job = revert(&env, &key, &id, None).await;
    assert_eq!(
        job["revert"],
        json!({"mode": "full", "restored": 3, "deleted": 2, "kept": 0, "finished_at": job["revert"]["finished_at"]}),
        "{job}"
    );
    assert_eq!(
        env.snapshot(&account).await,
        before,
        "every contact and identity item is as it was before the import"
    );
    assert_eq!(
        growth(&env, &key, &list).await,
        0,
        "the revert takes back the list growth"
    );
    let again = env
        .call("POST", &format!("/v1/imports/{id}/revert"), &key, None)
        .await;
    assert_eq!(again.status, 409, "a reverted import is not reverted twice");
}

#[tokio::test]
async fn r_xls_8_revert_keeps_and_lists_a_contact_edited_through_the_api_after_the_import() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let ann = seed(&env, &key).await;
    let id = import_file(&env, &key).await;
    env.upsert(
        &key,
        json!({"mobile": "41234567", "note": "called after the import"}),
    )
    .await;
    let job = revert(&env, &key, &id, None).await;
    assert_eq!(
        (
            &job["revert"]["restored"],
            &job["revert"]["deleted"],
            &job["revert"]["kept"]
        ),
        (&json!(2), &json!(2), &json!(1)),
        "{job}"
    );
    let report = env
        .call("GET", &format!("/v1/imports/{id}/revert"), &key, None)
        .await
        .body;
    assert_eq!(report["kept"][0]["contact_id"], ann.as_str(), "{report}");
    assert!(report["kept"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("changed since"));
    let contacts = env.contacts(&account).await;
    let kept = contacts.iter().find(|c| c.id.0 == ann).unwrap();
    assert_eq!(
        (kept.fields.city.as_deref(), kept.fields.note.as_deref()),
        (Some("Tromsø"), Some("called after the import")),
        "the later edit is not clobbered"
    );
    let bo = contacts
        .iter()
        .find(|c| c.fields.first_name.as_deref() == Some("Bo"))
        .unwrap();
    assert!(
        bo.email.is_none(),
        "Bo is restored: the import's email is gone"
    );
    assert_eq!(contacts.len(), 3, "the two created contacts are deleted");
}

#[tokio::test]
async fn r_xls_6_delete_by_label_deletes_created_contacts_and_keeps_linked_ones() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    seed(&env, &key).await;
    let id = import_file(&env, &key).await;
    let linked = env
        .upsert(&key, json!({"mobile": "41234571", "lists": ["vip"]}))
        .await;
    let job = revert(&env, &key, &id, Some(json!({"mode": "delete_created"}))).await;
    assert_eq!(
        (
            &job["revert"]["mode"],
            &job["revert"]["deleted"],
            &job["revert"]["kept"],
            &job["revert"]["restored"]
        ),
        (&json!("delete_created"), &json!(1), &json!(1), &json!(0)),
        "{job}"
    );
    let report = env
        .call("GET", &format!("/v1/imports/{id}/revert"), &key, None)
        .await
        .body;
    assert_eq!(report["kept"][0]["contact_id"], linked.as_str(), "{report}");
    let contacts = env.contacts(&account).await;
    assert_eq!(contacts.len(), 4, "3 seeded + the linked one");
    let ann = contacts
        .iter()
        .find(|c| c.fields.first_name.as_deref() == Some("Ann"))
        .unwrap();
    assert_eq!(
        ann.fields.city.as_deref(),
        Some("Tromsø"),
        "delete by label leaves what the import updated"
    );
}

#[tokio::test]
async fn r_xls_6_contacts_are_listed_by_the_import_that_labelled_them_page_by_page() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    seed(&env, &key).await;
    let id = import_file(&env, &key).await;
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/v1/imports/{id}/contacts?limit=2&cursor={}",
                c.replace('#', "%23")
            ),
            None => format!("/v1/imports/{id}/contacts?limit=2"),
        };
        let page = env.call("GET", &path, &key, None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for c in page.body["contacts"].as_array().unwrap() {
            assert!(
                c["contact"]["labels"]
                    .as_array()
                    .unwrap()
                    .contains(&page.body["label"]),
                "{c}"
            );
            seen.push((
                c["contact"]["first_name"].as_str().unwrap().to_owned(),
                c["outcome"].as_str().unwrap().to_owned(),
            ));
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen.sort();
    let want: Vec<(String, String)> = [
        ("Ann", "updated"),
        ("Bo", "updated"),
        ("New again", "created"),
        ("Newer", "created"),
        ("Uno", "updated"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn r_xls_8_revert_ends_at_the_pre_import_table_when_its_worker_dies_at_random_steps() {
    let env = TestEnv::new().await;
    for run in 0..20u32 {
        let (account, key) = env.account("NO").await;
        seed(&env, &key).await;
        let before = env.snapshot(&account).await;
        let id = import_file(&env, &key).await;
        // Five revert transactions (2 deletes, 3 restores); one of them dies, 1-2 times.
        let skip = (run * 7 + 3) % 5;
        env.faults.fail_after(
            "TransactWriteItems",
            skip,
            intake_tests::Fault::Crash,
            1 + run % 2,
        );
        let job = revert(&env, &key, &id, None).await;
        env.faults
            .fail_after("TransactWriteItems", 0, intake_tests::Fault::Crash, 0);
        assert_eq!(
            (
                &job["revert"]["restored"],
                &job["revert"]["deleted"],
                &job["revert"]["kept"]
            ),
            (&json!(3), &json!(2), &json!(0)),
            "run {run}: {job}"
        );
        assert_eq!(env.snapshot(&account).await, before, "run {run}");
    }
}

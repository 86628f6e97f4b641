//! Exactly once under at-least-once delivery (issue 6): a file with duplicates far apart (so
//! duplicates that would fall into different chunks by position) over existing contacts is
//! imported once cleanly, then again and again with one fault injected at a random call — the
//! worker dying after its parse (the look-up fails), after its look-ups (a contact write
//! fails), after its writes (the chunk marker's transaction fails), transaction conflicts,
//! throttling, unprocessed keys, and every chunk message delivered twice. Every run must end
//! with the clean run's contacts, identity items, versions and counts.

use std::collections::BTreeMap;

use intake_tests::{Fault, TestEnv};
use serde_json::{json, Value};

const RUNS: u64 = 20;
const ROWS: u64 = 240;
const PEOPLE: u64 = 150;

fn file() -> String {
    let mut f = String::from("First,Email,Mobile,City\n");
    for i in 0..ROWS {
        let p = i % PEOPLE;
        let email = if i % 97 == 5 {
            "not-an-email".to_owned()
        } else {
            format!("p{p}@example.no")
        };
        f.push_str(&format!("P{p},{email},4{:07},City{i}\n", 1_300_000 + p));
    }
    f
}

fn settings() -> Value {
    json!({
        "header_row": true,
        "mapping": {"First": "first_name", "Email": "email", "Mobile": "mobile", "City": "city"},
        "opt_in": {"email_marketing": {"value": "unknown"}, "sms_marketing": {"value": "unknown"}},
        "primary_key": "mobile", "secondary_key": "email", "compliance_acknowledged": true
    })
}

/// The account's table, without ids and timestamps: every contact's values, version and
/// ownership, and every identity item with its owner's mobile.
async fn canonical(env: &TestEnv, account: &intake_shared::model::AccountId) -> Vec<String> {
    let contacts = env.contacts(account).await;
    let mobile_of: BTreeMap<String, String> = contacts
        .iter()
        .map(|c| {
            let m = c
                .mobile
                .as_ref()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            (c.id.0.clone(), m)
        })
        .collect();
    let mut out: Vec<String> = contacts
        .iter()
        .map(|c| {
            format!(
                "contact {:?} {:?} {:?} {:?} lists={} labels={} v{} owns={:?}",
                c.fields.first_name,
                c.email.as_ref().map(|e| e.normalized().to_owned()),
                c.mobile.as_ref().map(|m| m.as_str().to_owned()),
                c.fields.city,
                c.lists.len(),
                c.labels.len(),
                c.version,
                (c.owns.email, c.owns.mobile)
            )
        })
        .collect();
    for item in env.store.scan_account(account).await.unwrap() {
        let pk = intake_shared::store::items::string_attr(&item, "pk").unwrap_or_default();
        if pk.contains("#EMAIL#") || pk.contains("#MOBILE#") {
            let owner =
                intake_shared::store::items::string_attr(&item, "contact_id").unwrap_or_default();
            let value = pk.splitn(3, '#').nth(2).unwrap_or_default().to_owned();
            out.push(format!("identity {value} -> {:?}", mobile_of.get(&owner)));
        }
    }
    out.sort();
    out
}

fn counts(job: &Value) -> Value {
    json!([
        job["status"],
        job["created"],
        job["updated"],
        job["unchanged"],
        job["merged"],
        job["errors"],
        job["blank"],
        job["rows_done"]
    ])
}

/// One import into a fresh account of `env` (existing contacts seeded first): the final state
/// and counts. `duplicate` re-sends every chunk message once while the import runs.
async fn run(
    env: &TestEnv,
    duplicate: bool,
    fault: Option<(&str, Fault, u32, u32)>,
) -> (Vec<String>, Value, Vec<String>) {
    let (account, key) = env.account("NO").await;
    for p in (0..PEOPLE).step_by(7) {
        let r = env
            .call("PUT", "/v1/contacts", &key, Some(json!({"contact": {"mobile": format!("4{:07}", 1_300_000 + p), "city": "Before"}})))
            .await;
        assert!(r.status < 300, "{}", r.body);
    }
    let id = env.upload_import(&key, file().as_bytes()).await;
    let seen = env.delivered.lock().unwrap().len();
    env.calls.take();
    if let Some((op, f, skip, n)) = fault {
        env.faults.fail_after(op, skip, f, n);
    }
    let resend = duplicate.then(|| {
        let (delivered, sqs, queue) = (
            env.delivered.clone(),
            env.clients.sqs.clone(),
            env.refs["ChunkQueue"].clone(),
        );
        tokio::spawn(async move {
            let mut sent = seen;
            loop {
                let fresh: Vec<String> = {
                    let log = delivered.lock().unwrap();
                    let out = log[sent..]
                        .iter()
                        .filter(|(q, _)| q == "ChunkQueue")
                        .map(|(_, b)| b.clone())
                        .collect();
                    sent = log.len();
                    out
                };
                for body in fresh {
                    let _ = sqs
                        .send_message()
                        .queue_url(&queue)
                        .message_body(body)
                        .send()
                        .await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    });
    env.run_import_patient(&key, &id, settings()).await;
    let calls = env.calls.take();
    if let Some((op, f, _, _)) = fault {
        env.faults.fail_after(op, 0, f, 0);
    }
    if let Some(task) = resend {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        task.abort();
    }
    let job = env
        .call("GET", &format!("/v1/imports/{id}"), &key, None)
        .await
        .body;
    (canonical(env, &account).await, counts(&job), calls)
}

/// A small deterministic generator, so a failing run can be repeated from its number.
fn pick(run: u64, salt: u64, below: u32) -> u32 {
    let x =
        (run + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((x >> 17) % u64::from(below.max(1))) as u32
}

async fn suite(op: &'static str, fault: Fault, max_n: u32, salt: u64) {
    let env = TestEnv::with_options(40, 4).await;
    let (clean_state, clean_counts, calls) = run(&env, false, None).await;
    let calls = calls.iter().filter(|c| *c == op).count() as u32;
    assert!(calls > 0, "{op} is called by an import");
    assert_eq!(clean_counts[0], "completed_with_errors", "{clean_counts}");
    for r in 0..RUNS {
        let skip = pick(r, salt, calls);
        let n = 1 + pick(r, salt + 1, max_n);
        let (state, counts, _) = run(&env, false, Some((op, fault, skip, n))).await;
        assert_eq!(
            counts, clean_counts,
            "run {r}: {fault:?} on {op} call {skip} (x{n})"
        );
        assert_eq!(
            state, clean_state,
            "run {r}: {fault:?} on {op} call {skip} (x{n})"
        );
    }
    println!("{op} {fault:?}: {RUNS} runs, {calls} calls in a clean run, same state and counts");
}

#[tokio::test]
async fn import_is_exactly_once_when_the_worker_dies_after_parsing() {
    suite("BatchGetItem", Fault::Crash, 1, 11).await;
}

#[tokio::test]
async fn import_is_exactly_once_when_the_worker_dies_after_lookups_or_after_writes() {
    suite("TransactWriteItems", Fault::Crash, 1, 23).await;
}

#[tokio::test]
async fn import_is_exactly_once_when_the_worker_dies_before_its_counters() {
    let env = TestEnv::with_options(40, 4).await;
    let (clean_state, clean_counts, _) = run(&env, false, None).await;
    for r in 0..RUNS {
        // The chunk-marker transaction (counters and done marker) fails 1 to 3 times.
        let n = 1 + pick(r, 71, 3);
        env.faults
            .fail_matching("TransactWriteItems", "CHUNK#", Fault::Crash, n);
        let (state, counts, _) = run(&env, false, None).await;
        env.faults
            .fail_matching("TransactWriteItems", "CHUNK#", Fault::Crash, 0);
        assert_eq!(counts, clean_counts, "run {r}: marker crashed x{n}");
        assert_eq!(state, clean_state, "run {r}: marker crashed x{n}");
    }
}

#[tokio::test]
async fn import_is_exactly_once_under_transaction_conflicts() {
    suite("TransactWriteItems", Fault::TransactionConflict, 3, 37).await;
}

#[tokio::test]
async fn import_is_exactly_once_under_throttling() {
    suite("BatchGetItem", Fault::Throttle, 4, 41).await;
}

#[tokio::test]
async fn import_is_exactly_once_when_keys_come_back_unprocessed() {
    suite("BatchGetItem", Fault::Unprocessed, 3, 53).await;
}

#[tokio::test]
async fn import_is_exactly_once_when_every_chunk_message_arrives_twice() {
    let env = TestEnv::with_options(40, 4).await;
    let (clean_state, clean_counts, _) = run(&env, false, None).await;
    for r in 0..RUNS {
        let (state, counts, _) = run(&env, true, None).await;
        assert_eq!(counts, clean_counts, "run {r}");
        assert_eq!(state, clean_state, "run {r}");
    }
}

#[tokio::test]
async fn import_redelivered_after_an_api_edit_keeps_the_edit_when_the_chunk_had_already_written() {
    let env = TestEnv::with_options(1000, 1).await;
    let (account, key) = env.account("NO").await;
    let file = "First,Email,Mobile,City\nAnn,ann@example.no,41234567,Oslo\nBo,bo@example.no,41234568,Bergen\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    // The worker writes its contacts, then dies at the chunk marker, again and again.
    env.faults
        .fail_matching("TransactWriteItems", "CHUNK#", Fault::Crash, 1000);
    env.start_import(&key, &id, settings()).await;
    let wait = |n: usize| {
        let delivered = env.delivered.clone();
        async move {
            for _ in 0..200 {
                if delivered
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(q, _)| q == "ChunkQueue")
                    .count()
                    >= n
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("chunk not delivered {n} times");
        }
    };
    wait(1).await;
    while env.contacts(&account).await.len() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = env
        .call(
            "PUT",
            "/v1/contacts",
            &key,
            Some(json!({"contact": {"mobile": "41234567", "city": "Edited"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after_edit = env
        .delivered
        .lock()
        .unwrap()
        .iter()
        .filter(|(q, _)| q == "ChunkQueue")
        .count();
    wait(after_edit + 2).await;
    env.faults
        .fail_matching("TransactWriteItems", "CHUNK#", Fault::Crash, 0);
    let job = env.wait_import(&key, &id).await;
    assert_eq!(
        (&job["status"], &job["created"], &job["updated"]),
        (&json!("completed"), &json!(2), &json!(0)),
        "{job}"
    );
    let ann = env
        .contacts(&account)
        .await
        .into_iter()
        .find(|c| c.fields.first_name.as_deref() == Some("Ann"))
        .unwrap();
    assert_eq!(
        ann.fields.city.as_deref(),
        Some("Edited"),
        "a redelivered chunk does not apply the file again over a later edit"
    );
}

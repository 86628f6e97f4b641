//! The public contact API end to end (R-API-1, R-GEN-1, R-IMP-4 through the API), including
//! the race, cost, bad-input, idempotency and fault-injection acceptance checks of issue 2.

use intake_tests::{Fault, TestEnv};
use serde_json::{json, Value};

async fn put(env: &TestEnv, key: &str, contact: Value) -> intake_tests::Reply {
    env.call(
        "PUT",
        "/v1/contacts",
        key,
        Some(json!({ "contact": contact })),
    )
    .await
}

#[tokio::test]
async fn api_race_creates_exactly_one_contact_when_16_upserts_of_one_new_identity_run_concurrently()
{
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let spellings = ["+47 412 34 567", "0047 41234567", "41234567"];
    let emails = ["Ola@Example.no", "ola@example.NO", " ola@example.no "];
    let replies = futures::future::join_all((0..16).map(|i| {
        let body = json!({"contact": {"mobile": spellings[i % 3], "email": emails[i % 3]}});
        let (env, key) = (&env, &key);
        async move { env.call("PUT", "/v1/contacts", key, Some(body)).await }
    }))
    .await;
    let ids: std::collections::BTreeSet<String> = replies
        .iter()
        .map(|r| {
            assert!(
                r.status == 200 || r.status == 201,
                "{} {}",
                r.status,
                r.body
            );
            r.body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "all 16 answers point at one contact");
    let created = replies
        .iter()
        .filter(|r| r.body["outcome"] == "created")
        .count();
    assert_eq!(created, 1);
    assert_eq!(env.contact_count(&account).await, 1);
    let id = ids.into_iter().next().unwrap();
    let identities = env.identities(&account).await;
    assert_eq!(identities.len(), 2, "{identities:?}");
    assert!(identities.iter().all(|(_, owner)| *owner == id));
    assert!(identities
        .keys()
        .any(|k| k.ends_with("#MOBILE#+4741234567")));
    assert!(identities
        .keys()
        .any(|k| k.ends_with("#EMAIL#ola@example.no")));
}

#[tokio::test]
async fn r_imp_4_api_creates_two_contacts_when_mobiles_differ_and_email_shared_under_mobile_only() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let only_mobile = json!({"primary": "mobile", "secondary": null});
    for mobile in ["41234567", "41234568"] {
        let r = env
            .call("PUT", "/v1/contacts", &key, Some(json!({"contact": {"mobile": mobile, "email": "family@example.no"}, "match": only_mobile})))
            .await;
        assert_eq!(
            (r.status, r.body["outcome"].as_str()),
            (201, Some("created")),
            "{}",
            r.body
        );
    }
    assert_eq!(env.contact_count(&account).await, 2);
    let found = env
        .call("GET", "/v1/contacts?email=FAMILY%40example.no", &key, None)
        .await;
    assert_eq!(found.status, 200);
    let mobiles: Vec<&str> = found.body["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["mobile"].as_str().unwrap())
        .collect();
    assert_eq!(mobiles.len(), 2, "{}", found.body);
    assert!(mobiles.contains(&"+4741234567") && mobiles.contains(&"+4741234568"));
}

#[tokio::test]
async fn r_gen_1_api_update_leaves_omitted_fields_untouched() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    let first = put(
        &env,
        &key,
        json!({"mobile": "41234567", "first_name": "Ola", "city": "Oslo", "custom": {"shoe": 44}}),
    )
    .await;
    let id = first.body["id"].as_str().unwrap().to_owned();
    let second = put(
        &env,
        &key,
        json!({"mobile": "+4741234567", "last_name": "Nordmann", "city": ""}),
    )
    .await;
    assert_eq!(
        (
            second.status,
            second.body["outcome"].as_str(),
            second.body["matched_on"].as_str()
        ),
        (200, Some("updated"), Some("mobile"))
    );
    let got = env
        .call("GET", &format!("/v1/contacts/{id}"), &key, None)
        .await;
    assert_eq!(got.body["first_name"], "Ola");
    assert_eq!(got.body["last_name"], "Nordmann");
    assert_eq!(got.body["city"], "Oslo", "an empty value never erases");
    assert_eq!(got.body["custom"]["shoe"], 44);
    assert_eq!(got.body["version"], 2);
}

#[tokio::test]
async fn api_unchanged_upsert_writes_nothing() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    let contact = json!({"mobile": "41234567", "email": "ola@example.no", "first_name": "Ola", "email_marketing": true});
    assert_eq!(put(&env, &key, contact.clone()).await.status, 201);
    env.calls.take();
    let again = put(&env, &key, contact).await;
    assert_eq!(
        (again.status, again.body["outcome"].as_str()),
        (200, Some("unchanged"))
    );
    assert_eq!(env.calls.writes(), 0, "calls: {:?}", env.calls.take());
}

#[tokio::test]
async fn api_batch_of_100_new_contacts_uses_a_bounded_number_of_calls() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let contacts: Vec<Value> = (0..100).map(|i| json!({"mobile": format!("4{:07}", 1_000_000 + i), "email": format!("p{i}@example.no")})).collect();
    env.calls.take();
    let (before, before_model) = (
        env.store.consumed_capacity(),
        env.store.modelled_write_capacity(),
    );
    let r = env
        .call(
            "POST",
            "/v1/contacts:batchUpsert",
            &key,
            Some(json!({ "contacts": contacts })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    assert!(
        results.iter().all(|x| x["outcome"] == "created"),
        "{}",
        r.body
    );
    let calls = env.calls.take();
    let reported = env.store.consumed_capacity() - before;
    let modelled = env.store.modelled_write_capacity() - before_model;
    println!(
        "batch of 100 new contacts: {} DynamoDB calls ({} TransactWriteItems, {} BatchGetItem); write units by AWS pricing {:.1} = {:.2} per contact; DynamoDB Local reported {:.1}",
        calls.len(),
        calls.iter().filter(|c| *c == "TransactWriteItems").count(),
        calls.iter().filter(|c| *c == "BatchGetItem").count(),
        modelled,
        modelled / 100.0,
        reported
    );
    assert_eq!(
        modelled,
        100.0 * (2.0 + 2.0 + 1.0 + 2.0 * 2.0),
        "per contact: its item, two GSI entries, its change-feed entry, two identity items"
    );
    assert!(calls.len() <= 8, "{calls:?}");
    assert_eq!(env.contact_count(&account).await, 100);
}

#[tokio::test]
async fn api_batch_reports_each_bad_item_and_applies_the_others() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let body = json!({"contacts": [
        {"mobile": "41234567"},
        {"email": "not-an-email"},
        {"first_name": "No identifier"},
        {"emial": "typo@example.no"},
        {"mobile": "+47 412 34 567", "city": "Bergen"}
    ]});
    let r = env
        .call("POST", "/v1/contacts:batchUpsert", &key, Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let res = r.body["results"].as_array().unwrap();
    assert_eq!(res[0]["outcome"], "created");
    assert_eq!(
        (
            res[1]["error"]["code"].as_str(),
            res[1]["error"]["field"].as_str()
        ),
        (Some("invalid_email"), Some("email"))
    );
    assert_eq!(res[2]["error"]["code"], "no_identifier");
    assert_eq!(res[3]["error"]["code"], "malformed_contact");
    assert_eq!(
        (res[4]["outcome"].as_str(), res[4]["id"].clone()),
        (Some("updated"), res[0]["id"].clone()),
        "later item applies after the earlier one"
    );
    assert_eq!(env.contact_count(&account).await, 1);
}

#[tokio::test]
async fn api_refuses_batch_when_over_100_contacts() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let contacts: Vec<Value> = (0..101)
        .map(|i| json!({"email": format!("p{i}@example.no")}))
        .collect();
    let r = env
        .call(
            "POST",
            "/v1/contacts:batchUpsert",
            &key,
            Some(json!({ "contacts": contacts })),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (413, Some("too_many_contacts"))
    );
    assert_eq!(env.contact_count(&account).await, 0);
}

#[tokio::test]
async fn api_bad_input_is_refused_with_its_status_and_writes_nothing() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    env.calls.take();
    let auth = format!("Bearer {key}");
    let malformed = env
        .send(
            "PUT",
            "/v1/contacts",
            &[("authorization", &auth)],
            "{\"contact\": {",
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.body["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let email = put(
        &env,
        &key,
        json!({"email": "ola@@example.no", "mobile": "41234567"}),
    )
    .await;
    assert_eq!(
        (email.status, email.body["error"]["field"].as_str()),
        (422, Some("email"))
    );
    let mobile = put(
        &env,
        &key,
        json!({"mobile": "12", "email": "ola@example.no"}),
    )
    .await;
    assert_eq!(
        (mobile.status, mobile.body["error"]["field"].as_str()),
        (422, Some("mobile"))
    );
    let huge = json!({"contact": {"email": "a@example.no", "note": "x".repeat(2 * 1024 * 1024)}})
        .to_string();
    let big = env
        .send("PUT", "/v1/contacts", &[("authorization", &auth)], huge)
        .await;
    assert_eq!(big.status, 413);
    let none = put(&env, &key, json!({"first_name": "Nobody"})).await;
    assert_eq!(
        (none.status, none.body["error"]["code"].as_str()),
        (422, Some("no_identifier"))
    );
    assert_eq!(env.calls.writes(), 0, "{:?}", env.calls.take());
    assert_eq!(env.contact_count(&account).await, 0);
}

#[tokio::test]
async fn api_refuses_with_401_when_key_missing_or_wrong() {
    let env = TestEnv::new().await;
    let none = env.send("PUT", "/v1/contacts", &[], "{}").await;
    assert_eq!(none.status, 401);
    let wrong = env
        .call(
            "PUT",
            "/v1/contacts",
            "ik_wrong",
            Some(json!({"contact": {"email": "a@example.no"}})),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let operator = env
        .call("GET", "/v1/contacts/x", intake_tests::OPERATOR_KEY, None)
        .await;
    assert_eq!(
        operator.status, 401,
        "the operator key is not an account key"
    );
}

#[tokio::test]
async fn api_never_shows_another_accounts_contact() {
    let env = TestEnv::new().await;
    let (_, key_a) = env.account("NO").await;
    let (account_b, key_b) = env.account("NO").await;
    let a = put(
        &env,
        &key_a,
        json!({"email": "secret@example.no", "mobile": "41234567"}),
    )
    .await;
    let id = a.body["id"].as_str().unwrap();
    assert_eq!(
        env.call("GET", &format!("/v1/contacts/{id}"), &key_b, None)
            .await
            .status,
        404
    );
    let look = env
        .call(
            "GET",
            "/v1/contacts?email=secret%40example.no",
            &key_b,
            None,
        )
        .await;
    assert_eq!(look.body["contacts"], json!([]));
    let b = put(
        &env,
        &key_b,
        json!({"email": "secret@example.no", "mobile": "41234567"}),
    )
    .await;
    assert_eq!(
        b.body["outcome"], "created",
        "B's upsert never matches A's contact"
    );
    assert_ne!(b.body["id"], a.body["id"]);
    assert_eq!(env.contact_count(&account_b).await, 1);
}

#[tokio::test]
async fn api_idempotency_key_replays_first_answer_and_refuses_other_body() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let auth = format!("Bearer {key}");
    let body = json!({"contact": {"email": "ola@example.no"}}).to_string();
    let headers = [
        ("authorization", auth.as_str()),
        ("idempotency-key", "retry-1"),
    ];
    let first = env
        .send("PUT", "/v1/contacts", &headers, body.clone())
        .await;
    assert_eq!(first.status, 201);
    env.calls.take();
    let replay = env.send("PUT", "/v1/contacts", &headers, body).await;
    assert_eq!(
        (replay.status, &replay.body),
        (201, &first.body),
        "the same answer, outcome created included"
    );
    assert_eq!(
        replay
            .headers
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(env.calls.count("TransactWriteItems"), 0);
    let other = env
        .send(
            "PUT",
            "/v1/contacts",
            &headers,
            json!({"contact": {"email": "kari@example.no"}}).to_string(),
        )
        .await;
    assert_eq!(
        (other.status, other.body["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    assert_eq!(env.contact_count(&account).await, 1);
}

#[tokio::test]
async fn ingest_retries_and_succeeds_when_transaction_conflict_injected() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    env.faults
        .fail_next("TransactWriteItems", Fault::TransactionConflict, 3);
    env.calls.take();
    let r = put(
        &env,
        &key,
        json!({"mobile": "41234567", "email": "ola@example.no"}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["outcome"].as_str()),
        (201, Some("created")),
        "{}",
        r.body
    );
    assert_eq!(env.faults.remaining("TransactWriteItems"), 0);
    assert_eq!(
        env.calls.count("TransactWriteItems"),
        4,
        "three conflicts, then the write"
    );
    assert_eq!(env.contact_count(&account).await, 1);
    assert_eq!(env.identities(&account).await.len(), 2);
}

#[tokio::test]
async fn ingest_gives_up_with_409_and_writes_nothing_when_conflicts_never_end() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    env.faults
        .fail_next("TransactWriteItems", Fault::TransactionConflict, 1000);
    let r = put(&env, &key, json!({"mobile": "41234567"})).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (409, Some("write_conflict")),
        "{}",
        r.body
    );
    assert_eq!(env.contact_count(&account).await, 0);
}

#[tokio::test]
async fn api_moves_identity_items_when_email_changes() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let a = put(
        &env,
        &key,
        json!({"mobile": "41234567", "email": "old@example.no"}),
    )
    .await;
    let id = a.body["id"].as_str().unwrap().to_owned();
    let r = put(
        &env,
        &key,
        json!({"mobile": "41234567", "email": "new@example.no"}),
    )
    .await;
    assert_eq!(r.body["outcome"], "updated");
    let identities = env.identities(&account).await;
    assert!(
        identities.keys().all(|k| !k.contains("old@example.no")),
        "{identities:?}"
    );
    assert!(identities
        .iter()
        .any(|(k, owner)| k.ends_with("#EMAIL#new@example.no") && *owner == id));
    let by_new = put(
        &env,
        &key,
        json!({"email": "NEW@example.no", "first_name": "Ola"}),
    )
    .await;
    assert_eq!(
        (
            by_new.body["id"].as_str(),
            by_new.body["matched_on"].as_str()
        ),
        (Some(id.as_str()), Some("email"))
    );
}

#[tokio::test]
async fn api_lookup_by_mobile_normalises_with_account_country() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    put(&env, &key, json!({"mobile": "+47 412 34 567"})).await;
    let r = env
        .call("GET", "/v1/contacts?mobile=41234567", &key, None)
        .await;
    assert_eq!(r.body["contacts"][0]["mobile"], "+4741234567", "{}", r.body);
    let bad = env.call("GET", "/v1/contacts?mobile=abc", &key, None).await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (422, Some("mobile"))
    );
}

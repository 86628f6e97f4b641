//! Reading out (issue 8): change polling while writes go on, lists and their members, consent
//! history — through the API on DynamoDB Local.

use std::collections::{BTreeMap, HashSet};

use intake_tests::TestEnv;
use serde_json::{json, Value};

const CONTACTS: usize = 1000;

/// Writes `CONTACTS` contacts in batches of 50, updating every 5th one again eight batches
/// later (after the client has paged past it) so versions move while the client pages.
async fn write_all(env: &TestEnv, key: &str) {
    for batch in 0..CONTACTS / 50 {
        let mut contacts: Vec<Value> = (batch * 50..(batch + 1) * 50)
            .map(|i| json!({"email": format!("p{i}@example.no"), "first_name": "First"}))
            .collect();
        if batch >= 8 {
            let earlier = (batch - 8) * 50;
            contacts.extend(
                (earlier..earlier + 50)
                    .step_by(5)
                    .map(|i| json!({"email": format!("p{i}@example.no"), "first_name": format!("Again {batch}")})),
            );
        }
        let r = env
            .call(
                "POST",
                "/v1/contacts:batchUpsert",
                key,
                Some(json!({"contacts": contacts, "match": {"primary": "email"}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[tokio::test]
async fn r_api_2_polling_sees_every_change_once_and_in_order_while_1000_contacts_are_written() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let start = chrono::Utc::now() - chrono::Duration::seconds(1);
    let done = std::sync::atomic::AtomicBool::new(false);
    let writer = async {
        write_all(&env, &key).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let reader = async {
        let mut seen: Vec<(String, u64)> = Vec::new();
        let mut url = format!(
            "/v1/contacts?updated_since={}&limit=50",
            start.format("%Y-%m-%dT%H:%M:%S%.6fZ")
        );
        let mut pages = 0;
        let mut quiet_since: Option<std::time::Instant> = None;
        loop {
            let r = env.call("GET", &url, &key, None).await;
            assert_eq!(r.status, 200, "{}", r.body);
            pages += 1;
            for c in r.body["contacts"].as_array().unwrap() {
                seen.push((
                    c["id"].as_str().unwrap().into(),
                    c["version"].as_u64().unwrap(),
                ));
            }
            url = format!(
                "/v1/contacts?cursor={}&limit=50",
                r.body["next_cursor"].as_str().unwrap()
            );
            if r.body["has_more"] == json!(true) {
                continue;
            }
            // Caught up: stop once the writer has finished and a settle window has passed.
            if done.load(std::sync::atomic::Ordering::SeqCst) {
                let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > std::time::Duration::from_millis(2500) {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        (seen, pages)
    };
    let ((), (seen, pages)) = tokio::join!(writer, reader);

    let unique: HashSet<&(String, u64)> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no version is delivered twice");
    let mut by_id: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (id, v) in &seen {
        by_id.entry(id).or_default().push(*v);
    }
    assert!(
        by_id.values().all(|vs| vs.windows(2).all(|w| w[0] < w[1])),
        "each contact's changes arrive in order"
    );
    let stored = env.contacts(&account).await;
    assert_eq!(stored.len(), CONTACTS);
    for c in &stored {
        assert_eq!(
            by_id.get(c.id.0.as_str()).and_then(|vs| vs.last()),
            Some(&c.version),
            "every contact is seen at its latest version"
        );
    }
    let updated = stored.iter().filter(|c| c.version > 1).count();
    println!(
        "polling: {} deliveries over {pages} pages for {CONTACTS} contacts ({updated} updated while paging)",
        seen.len()
    );
    assert_eq!(updated, 120);
    assert!(
        seen.len() > CONTACTS,
        "some contacts were delivered again after an update (versions moved while paging): {} deliveries",
        seen.len()
    );
}

#[tokio::test]
async fn polling_refuses_a_bad_time_cursor_or_limit() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    for (url, code) in [
        (
            "/v1/contacts?updated_since=yesterday",
            "invalid_updated_since",
        ),
        ("/v1/contacts?cursor=not-ours", "invalid_cursor"),
        (
            "/v1/contacts?updated_since=2026-01-01T00:00:00Z&limit=0",
            "invalid_limit",
        ),
        (
            "/v1/contacts?updated_since=2026-01-01T00:00:00Z&limit=501",
            "invalid_limit",
        ),
    ] {
        let r = env.call("GET", url, &key, None).await;
        assert_eq!(
            (r.status, &r.body["error"]["code"]),
            (400, &json!(code)),
            "{url}"
        );
    }
}

#[tokio::test]
async fn r_wiz_1_lists_are_created_listed_and_page_their_members() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    let created = env
        .call(
            "POST",
            "/v1/lists",
            &key,
            Some(json!({"name": "  Newsletter "})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["name"], "Newsletter");
    let id = created.body["list_id"].as_str().unwrap().to_owned();
    let all = env.call("GET", "/v1/lists", &key, None).await.body;
    assert_eq!(all["lists"][0]["list_id"], json!(id), "{all}");
    let one = env
        .call("GET", &format!("/v1/lists/{id}"), &key, None)
        .await;
    assert_eq!((one.status, &one.body["name"]), (200, &json!("Newsletter")));
    for i in 0..5 {
        env.upsert(
            &key,
            json!({"email": format!("m{i}@example.no"), "lists": [id]}),
        )
        .await;
    }
    env.upsert(&key, json!({"email": "other@example.no"})).await;
    let mut members = Vec::new();
    let mut url = format!("/v1/lists/{id}/contacts?limit=2");
    loop {
        let page = env.call("GET", &url, &key, None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for c in page.body["contacts"].as_array().unwrap() {
            assert!(c["lists"].as_array().unwrap().contains(&json!(id)));
            members.push(c["email"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => url = format!("/v1/lists/{id}/contacts?limit=2&cursor={next}"),
            None => break,
        }
    }
    members.sort();
    assert_eq!(
        members,
        (0..5)
            .map(|i| format!("m{i}@example.no"))
            .collect::<Vec<_>>()
    );
    let missing = env.call("GET", "/v1/lists/lst_nope", &key, None).await;
    assert_eq!(missing.status, 404);
    let (_, other_key) = env.account("NO").await;
    let foreign = env
        .call("GET", &format!("/v1/lists/{id}/contacts"), &other_key, None)
        .await;
    assert_eq!(foreign.status, 404, "another account's list is not found");
    let nameless = env
        .call("POST", "/v1/lists", &key, Some(json!({"name": " "})))
        .await;
    assert_eq!(nameless.status, 422);
}

#[tokio::test]
async fn r_feed_10_consent_history_lists_every_change_with_date_source_and_version() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    let id = env
        .upsert(&key, json!({"email": "c@example.no", "email_marketing": {"status": "opted_in", "at": "2026-01-05T10:00:00Z"}}))
        .await;
    env.upsert(
        &key,
        json!({"email": "c@example.no", "first_name": "No consent change"}),
    )
    .await;
    env.upsert(&key, json!({"email": "c@example.no", "email_marketing": {"status": "opted_out", "at": "2026-02-01T08:00:00Z"}, "sms_marketing": "opted_in"}))
        .await;
    let h = env
        .call(
            "GET",
            &format!("/v1/contacts/{id}/consent-history"),
            &key,
            None,
        )
        .await;
    assert_eq!(h.status, 200, "{}", h.body);
    let events: Vec<(String, String, Option<String>, u64)> = h.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["channel"].as_str().unwrap().into(),
                e["status"].as_str().unwrap().into(),
                e["at"].as_str().map(str::to_owned),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(events.len(), 3, "{}", h.body);
    assert_eq!(
        events[0],
        (
            "email_marketing".into(),
            "opted_in".into(),
            Some("2026-01-05T10:00:00Z".into()),
            1
        )
    );
    assert_eq!(
        (&events[1].0, &events[1].1, events[1].3),
        (&"email_marketing".to_owned(), &"opted_out".to_owned(), 3)
    );
    assert_eq!(
        (&events[2].0, &events[2].1),
        (&"sms_marketing".to_owned(), &"opted_in".to_owned())
    );
    assert!(
        h.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["source"] == "api"),
        "{}",
        h.body
    );
    let missing = env
        .call("GET", "/v1/contacts/nope/consent-history", &key, None)
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn contact_delete_releases_its_values_erases_its_consent_history_and_tells_pollers() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let id = env
        .upsert(
            &key,
            json!({"email": "gone@example.no", "email_marketing": true}),
        )
        .await;
    let member = env
        .call(
            "POST",
            "/v1/api-keys",
            &key,
            Some(json!({"role": "member"})),
        )
        .await;
    let member_key = member.body["api_key"].as_str().unwrap().to_owned();
    let path = format!("/v1/contacts/{id}");
    let refused = env.call("DELETE", &path, &member_key, None).await;
    assert_eq!(refused.status, 403, "admins only: {}", refused.body);

    let deleted = env.call("DELETE", &path, &key, None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(env.call("GET", &path, &key, None).await.status, 404);
    assert_eq!(env.call("DELETE", &path, &key, None).await.status, 404);
    let left: Vec<String> = env
        .store
        .scan_account(&account)
        .await
        .unwrap()
        .iter()
        .filter_map(|i| intake_shared::store::items::string_attr(i, "sk"))
        .collect();
    assert_eq!(
        left,
        ["DELETED"],
        "only the tombstone is left: no contact, identity or consent item"
    );

    let again = env.upsert(&key, json!({"email": "gone@example.no"})).await;
    assert_ne!(again, id, "the email was released: a new contact claims it");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let feed = env.call("GET", "/v1/contacts", &key, None).await.body;
    assert_eq!(feed["deleted"][0]["id"], json!(id), "{feed}");
    let ids: Vec<&str> = feed["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [again.as_str()], "{feed}");
}

//! ERP feeds end to end (issue 7): a local HTTP server serves two successive customer XML
//! snapshots; the first sync creates (customers sharing an email merged and reported), the
//! second updates, OPTIN dates decide both ways, a class becomes a tag and a list, a removed
//! customer stays, a new field flags drift; activation is refused with unmapped fields; private
//! addresses are refused unless the account allows them.

use std::sync::{Arc, Mutex};

use intake_shared::model::ConsentStatus;
use intake_tests::TestEnv;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A local HTTP server: `answer` turns each request line into (status line, extra headers,
/// body); the reply closes the connection.
async fn serve<F>(answer: F) -> u16
where
    F: Fn(&str) -> (String, String, String) + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let head = request.lines().next().unwrap_or_default();
                let (status, extra, body) = answer(head);
                let reply = format!(
                    "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

/// Serves whatever `body` holds, and records each request line.
async fn server(body: Arc<Mutex<String>>, seen: Arc<Mutex<Vec<String>>>) -> u16 {
    serve(move |head| {
        seen.lock().unwrap().push(head.to_owned());
        let text = body.lock().unwrap().clone();
        (
            "200 OK".into(),
            "content-type: application/xml\r\n".into(),
            text,
        )
    })
    .await
}

fn customer(code: &str, name: &str, email: &str, optin: &str, date: &str, class: &str) -> String {
    format!(
        r#"<Customer code="{code}" name="{name}" email="{email}" class="{class}" shoe="42"><datafields><data code="OPTIN" content="{optin}" param="{date}"/></datafields></Customer>"#
    )
}

fn snapshot(customers: &[String], extra: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Customers>{}{extra}</Customers>"#,
        customers.join("")
    )
}

#[tokio::test]
async fn r_feed_syncs_two_snapshots_with_merges_optin_dates_tags_lists_and_drift() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("EE").await;
    let r = env
        .call(
            "PUT",
            "/v1/settings",
            &key,
            Some(json!({"default_country": "EE", "allow_private_feed_urls": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = Arc::new(Mutex::new(snapshot(
        &[
            customer("C1", "Tõnu", "tonu@example.ee", "no", "2024-01-10", "VIP"),
            customer(
                "C2",
                "Mari",
                "mari@example.ee",
                "yes",
                "01.02.2024",
                "Retail",
            ),
            customer(
                "C3",
                "Shared One",
                "shared@example.ee",
                "yes",
                "2024-01-01",
                "Retail",
            ),
            customer(
                "C4",
                "Shared Two",
                "shared@example.ee",
                "yes",
                "2024-01-01",
                "Retail",
            ),
            customer(
                "C5",
                "Gone Later",
                "gone@example.ee",
                "yes",
                "2024-01-01",
                "Retail",
            ),
        ],
        "",
    )));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = server(body.clone(), seen.clone()).await;
    let mapping = json!({"code": "custom:erp_code", "name": "first_name", "email": "email", "OPTIN": "consent", "class": "ignore"});
    let created = env
        .call("POST", "/v1/feeds", &key, Some(json!({
            "url": format!("http://127.0.0.1:{port}/customers.xml"), "key": "s3cret-key",
            "mapping": mapping, "list_id": "lst_erp",
            "tag_rules": [{"field": "class", "equals": "VIP", "tag": "VIP customer", "list": "lst_vip"}],
            "schedule": {"every": "day", "at": "06:00", "timezone": "Europe/Tallinn"}
        })))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        !created.body.to_string().contains("s3cret"),
        "the key is never returned"
    );
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["active"], false);

    let refused = env
        .call("POST", &format!("/v1/feeds/{id}/activate"), &key, None)
        .await;
    assert_eq!(
        (refused.status, &refused.body["error"]["details"]),
        (409, &json!(["shoe"])),
        "R-FEED-4: {}",
        refused.body
    );
    let mut full = mapping.clone();
    full["shoe"] = json!("ignore");
    let r = env
        .call(
            "PUT",
            &format!("/v1/feeds/{id}/mapping"),
            &key,
            Some(json!({"mapping": full, "tag_rules": created.body["tag_rules"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let active = env
        .call("POST", &format!("/v1/feeds/{id}/activate"), &key, None)
        .await;
    assert_eq!(
        (active.status, &active.body["active"]),
        (200, &json!(true)),
        "{}",
        active.body
    );

    let first = env
        .call("POST", &format!("/v1/feeds/{id}/run"), &key, None)
        .await
        .body;
    assert_eq!(
        (&first["status"], &first["created"], &first["items"]),
        (&json!("completed"), &json!(4), &json!(5)),
        "{first}"
    );
    assert_eq!(
        first["merged_duplicates"],
        json!([{"item": 4, "into_item": 3}]),
        "R-FEED-5: the shared email is merged and reported"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|l| l.contains("key=s3cret-key")),
        "the key goes with the request"
    );

    let contacts = env.contacts(&account).await;
    let by = |email: &str| {
        contacts
            .iter()
            .find(|c| c.email.as_ref().map(|e| e.normalized()) == Some(email))
            .unwrap()
            .clone()
    };
    let tonu = by("tonu@example.ee");
    assert_eq!(tonu.email_marketing.status, ConsentStatus::OptedOut);
    assert!(
        tonu.tags.contains("VIP customer")
            && tonu.lists.contains("lst_vip")
            && tonu.lists.contains("lst_erp"),
        "R-FEED-6"
    );
    assert_eq!(tonu.custom["erp_code"], "C1");
    let settings = env.call("GET", "/v1/settings", &key, None).await.body;
    assert!(
        settings["custom_fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "erp_code"),
        "R-FEED-3: a missing contact field is created on the spot: {settings}"
    );
    assert!(
        tonu.email_marketing
            .source
            .as_deref()
            .unwrap()
            .starts_with("feed:"),
        "R-FEED-10: source recorded"
    );
    assert!(!by("mari@example.ee").tags.contains("VIP customer"));

    *body.lock().unwrap() = snapshot(
        &[
            customer("C1", "Tõnu", "tonu@example.ee", "yes", "2024-03-01", "VIP"),
            customer(
                "C2",
                "Mari M.",
                "mari@example.ee",
                "no",
                "2023-12-01",
                "Retail",
            ),
        ],
        r#"<Customer code="C6" name="New" email="new@example.ee" class="Retail" shoe="40" loyalty="gold"><datafields><data code="OPTIN" content="yes" param="2024-03-01"/></datafields></Customer>"#,
    );
    let second = env
        .call("POST", &format!("/v1/feeds/{id}/run"), &key, None)
        .await
        .body;
    assert_eq!(
        (&second["created"], &second["updated"]),
        (&json!(1), &json!(2)),
        "{second}"
    );
    assert_eq!(
        second["new_fields"],
        json!(["loyalty"]),
        "R-FEED-8: drift flagged, the sync went on"
    );
    let contacts = env.contacts(&account).await;
    let by = |email: &str| {
        contacts
            .iter()
            .find(|c| c.email.as_ref().map(|e| e.normalized()) == Some(email))
            .unwrap()
            .clone()
    };
    assert_eq!(
        by("tonu@example.ee").email_marketing.status,
        ConsentStatus::OptedIn,
        "R-FEED-7: a newer opt-in cancels the opt-out"
    );
    let mari = by("mari@example.ee");
    assert_eq!(
        mari.email_marketing.status,
        ConsentStatus::OptedIn,
        "R-FEED-7: an older opt-out does not override"
    );
    assert_eq!(mari.fields.first_name.as_deref(), Some("Mari M."));
    assert!(
        contacts
            .iter()
            .any(|c| c.email.as_ref().map(|e| e.normalized()) == Some("gone@example.ee")),
        "a removed customer stays"
    );
    let fields = env
        .call("GET", &format!("/v1/feeds/{id}/fields"), &key, None)
        .await
        .body;
    assert_eq!(fields["unmapped"], json!(["loyalty"]), "{fields}");
    let runs = env
        .call("GET", &format!("/v1/feeds/{id}/runs"), &key, None)
        .await
        .body;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    let read_back = env
        .call("GET", "/v1/contacts?email=tonu@example.ee", &key, None)
        .await
        .body;
    let consent = &read_back["contacts"][0]["email_marketing"];
    assert_eq!(
        (&consent["status"], &consent["at"], &consent["source"]),
        (
            &json!("opted_in"),
            &json!("2024-03-01T00:00:00Z"),
            &json!(format!("feed:{id}"))
        ),
        "R-FEED-10: status, date and source read back for the ERP: {read_back}"
    );
}

#[tokio::test]
async fn feed_refuses_loopback_private_and_metadata_urls_without_the_accounts_permission() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("EE").await;
    for url in [
        "http://127.0.0.1:9/x.xml",
        "http://10.0.0.1/x.xml",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let f = env
            .call(
                "POST",
                "/v1/feeds",
                &key,
                Some(json!({"url": url, "mapping": {}})),
            )
            .await;
        assert_eq!(f.status, 201, "{}", f.body);
        let id = f.body["id"].as_str().unwrap();
        let run = env
            .call("POST", &format!("/v1/feeds/{id}/run"), &key, None)
            .await
            .body;
        assert_eq!(run["status"], "failed", "{run}");
        assert!(
            ["private or local address", "link-local address"]
                .iter()
                .any(|reason| run["failure"].as_str().unwrap().contains(reason)),
            "{url}: {run}"
        );
    }
    let bad = env
        .call(
            "POST",
            "/v1/feeds",
            &key,
            Some(json!({"url": "file:///etc/passwd"})),
        )
        .await;
    assert_eq!(
        (bad.status, &bad.body["error"]["code"]),
        (422, &json!("invalid_url"))
    );
}

#[tokio::test]
async fn r_feed_2_the_schedule_runs_an_active_feed_once_per_period_through_the_runner() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("EE").await;
    env.call(
        "PUT",
        "/v1/settings",
        &key,
        Some(json!({"default_country": "EE", "allow_private_feed_urls": true})),
    )
    .await;
    let body = Arc::new(Mutex::new(snapshot(
        &[customer(
            "C1",
            "Tõnu",
            "tonu@example.ee",
            "yes",
            "2024-01-10",
            "VIP",
        )],
        "",
    )));
    let port = server(body, Arc::new(Mutex::new(Vec::new()))).await;
    let mapping = json!({"code": "ignore", "name": "first_name", "email": "email", "OPTIN": "consent", "class": "ignore", "shoe": "ignore"});
    let mut ids = Vec::new();
    for activate in [true, false] {
        let f = env
            .call(
                "POST",
                "/v1/feeds",
                &key,
                Some(json!({
                    "url": format!("http://127.0.0.1:{port}/c.xml"), "mapping": mapping,
                    "schedule": {"every": "day", "at": "06:00", "timezone": "Europe/Tallinn"}
                })),
            )
            .await;
        let id = f.body["id"].as_str().unwrap().to_owned();
        if activate {
            let a = env
                .call("POST", &format!("/v1/feeds/{id}/activate"), &key, None)
                .await;
            assert_eq!(a.status, 200, "{}", a.body);
        }
        ids.push(id);
    }
    let tick = intake_local_runner::functions::scheduled_handler(
        "FeedSchedulerFunction",
        env.apps["FeedSchedulerFunction"].clone(),
    )
    .expect("the runner hosts the feed schedule");
    let later = chrono::Utc::now() + chrono::Duration::days(2);
    tick(later).await;
    tick(later + chrono::Duration::minutes(15)).await;
    let runs = |id: String| {
        let env = &env;
        let key = key.clone();
        async move {
            env.call("GET", &format!("/v1/feeds/{id}/runs"), &key, None)
                .await
                .body["runs"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(runs(ids[0].clone()).await, 1, "due once, run once");
    assert_eq!(runs(ids[1].clone()).await, 0, "an inactive feed never runs");
    tick(later + chrono::Duration::days(1)).await;
    assert_eq!(runs(ids[0].clone()).await, 2, "the next day it runs again");
    let bad = env
        .call("POST", "/v1/feeds", &key, Some(json!({"url": "http://example.com/x", "schedule": {"every": "day", "at": "06:00", "timezone": "Mars/Base"}})))
        .await;
    assert_eq!(
        (bad.status, &bad.body["error"]["field"]),
        (422, &json!("schedule.timezone"))
    );
}

#[tokio::test]
async fn r_feed_9_list_growth_counts_new_members_per_day_from_every_channel() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    let file = "First,Email,Mobile\nOla,ola@example.no,41234567\nKari,kari@example.no,41234568\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    let s = json!({
        "header_row": true, "mapping": {"First": "first_name", "Email": "email", "Mobile": "mobile"},
        "opt_in": {"email_marketing": {"value": "unknown"}, "sms_marketing": {"value": "unknown"}},
        "primary_key": "mobile", "compliance_acknowledged": true
    });
    let job = env.run_import(&key, &id, s).await;
    let list = job["list_id"].as_str().unwrap().to_owned();
    // The API adds a new contact and an existing one (already a member: not new).
    for mobile in ["41234569", "41234567"] {
        let r = env
            .call(
                "PUT",
                "/v1/contacts",
                &key,
                Some(json!({"contact": {"mobile": mobile, "lists": [list]}})),
            )
            .await;
        assert!(r.status < 300, "{}", r.body);
    }
    let today = chrono::Utc::now().date_naive();
    let g = env
        .call(
            "GET",
            &format!(
                "/v1/lists/{list}/growth?from={}&to={today}",
                today - chrono::Duration::days(2)
            ),
            &key,
            None,
        )
        .await;
    assert_eq!(g.status, 200, "{}", g.body);
    let days = g.body["days"].as_array().unwrap();
    assert_eq!(days.len(), 3, "every day of the range");
    assert_eq!(
        days[2],
        json!({"date": today.to_string(), "new_contacts": 3}),
        "{}",
        g.body
    );
    assert_eq!(days[0]["new_contacts"], 0);
    let bad = env
        .call(
            "GET",
            &format!("/v1/lists/{list}/growth?from=2026-13-01"),
            &key,
            None,
        )
        .await;
    assert_eq!(
        (bad.status, &bad.body["error"]["field"]),
        (422, &json!("from"))
    );
    assert_eq!(
        env.call("GET", "/v1/lists/lst_nope/growth", &key, None)
            .await
            .status,
        404
    );
}

/// Serves `head` and then `filler` bytes up to `total` (with that content-length), lazily.
async fn big_server(total: u64) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = s.read(&mut buf).await;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {total}\r\nconnection: close\r\n\r\n<Customers>");
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 1 << 20];
                let mut sent = 11u64;
                while sent < total {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                    sent += chunk.len() as u64;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn feed_run_fails_with_the_reason_for_billion_laughs_external_entities_and_a_1_gb_body() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("EE").await;
    env.call(
        "PUT",
        "/v1/settings",
        &key,
        Some(json!({"allow_private_feed_urls": true})),
    )
    .await;
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol9 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Customers><Customer name="&lol9;"/></Customers>"#;
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]><Customers><Customer><name>&x;</name></Customer></Customers>"#;
    for (doc, reason) in [(laughs, "DTD"), (xxe, "DTD")] {
        let port = server(
            Arc::new(Mutex::new(doc.to_owned())),
            Arc::new(Mutex::new(Vec::new())),
        )
        .await;
        let f = env
            .call(
                "POST",
                "/v1/feeds",
                &key,
                Some(json!({"url": format!("http://127.0.0.1:{port}/x.xml")})),
            )
            .await;
        let id = f.body["id"].as_str().unwrap();
        let run = env
            .call("POST", &format!("/v1/feeds/{id}/run"), &key, None)
            .await
            .body;
        assert_eq!(run["status"], "failed", "{run}");
        assert!(run["failure"].as_str().unwrap().contains(reason), "{run}");
    }
    let port = big_server(1 << 30).await;
    let f = env
        .call(
            "POST",
            "/v1/feeds",
            &key,
            Some(json!({"url": format!("http://127.0.0.1:{port}/huge.xml")})),
        )
        .await;
    let id = f.body["id"].as_str().unwrap();
    let started = std::time::Instant::now();
    let run = env
        .call("POST", &format!("/v1/feeds/{id}/run"), &key, None)
        .await
        .body;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["failure"].as_str().unwrap().contains("larger than"),
        "{run}"
    );
    println!(
        "1 GiB feed refused after {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Answers by path: `/401`, `/404`, `/malformed`, `/to-metadata` (a redirect to the metadata
/// address), `/hop` (a relative redirect to `/ok`) and `/ok`.
async fn routed_server() -> u16 {
    serve(|head| {
        let path = head.split(' ').nth(1).unwrap_or("/");
        let ok = snapshot(
            &[customer(
                "C1",
                "Hop",
                "hop@example.ee",
                "yes",
                "2024-01-01",
                "VIP",
            )],
            "",
        );
        let (status, extra, body) = match path.split('?').next().unwrap() {
            "/401" => ("401 Unauthorized", "", "no".to_owned()),
            "/malformed" => (
                "200 OK",
                "",
                "<Customers><Customer name=\"x\"></Customers>".to_owned(),
            ),
            "/to-metadata" => (
                "302 Found",
                "location: http://169.254.169.254/latest/meta-data\r\n",
                String::new(),
            ),
            "/hop" => ("302 Found", "location: /ok\r\n", String::new()),
            "/ok" => ("200 OK", "", ok),
            _ => ("404 Not Found", "", "missing".to_owned()),
        };
        (status.to_owned(), extra.to_owned(), body)
    })
    .await
}

#[tokio::test]
async fn feed_run_fails_with_a_clear_reason_for_401_404_malformed_xml_and_a_redirect_to_metadata() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("EE").await;
    env.call(
        "PUT",
        "/v1/settings",
        &key,
        Some(json!({"allow_private_feed_urls": true})),
    )
    .await;
    let port = routed_server().await;
    let feed = |path: &str| json!({"url": format!("http://127.0.0.1:{port}{path}"), "mapping": {"code": "ignore", "name": "first_name", "email": "email", "OPTIN": "consent", "class": "ignore", "shoe": "ignore"}});
    for (path, reason) in [
        ("/401", "the feed server answered 401"),
        ("/404", "the feed server answered 404"),
        ("/malformed", "XML"),
        ("/to-metadata", "169.254.169.254, a link-local address"),
        ("/hop", ""),
    ] {
        let f = env.call("POST", "/v1/feeds", &key, Some(feed(path))).await;
        assert_eq!(f.status, 201, "{}", f.body);
        let id = f.body["id"].as_str().unwrap();
        let run = env
            .call("POST", &format!("/v1/feeds/{id}/run"), &key, None)
            .await
            .body;
        if reason.is_empty() {
            assert_eq!(
                (&run["status"], &run["created"]),
                (&json!("completed"), &json!(1)),
                "a relative redirect is followed (and re-checked): {run}"
            );
            continue;
        }
        assert_eq!(run["status"], "failed", "{path}: {run}");
        let failure = run["failure"].as_str().unwrap();
        assert!(failure.contains(reason), "{path}: {failure}");
        let fields = env
            .call("GET", &format!("/v1/feeds/{id}/fields"), &key, None)
            .await;
        assert_eq!(fields.status, 422, "{path}: {}", fields.body);
        assert!(
            fields.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{path}: {}",
            fields.body
        );
    }
}

#[tokio::test]
async fn r_feed_5_customers_sharing_an_email_stay_apart_when_the_customer_code_is_the_key() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("EE").await;
    env.call(
        "PUT",
        "/v1/settings",
        &key,
        Some(json!({"allow_private_feed_urls": true})),
    )
    .await;
    let body = Arc::new(Mutex::new(snapshot(
        &[
            customer("C1", "First", "first@example.ee", "yes", "2024-01-01", "A"),
            customer(
                "C3",
                "Shared One",
                "shared@example.ee",
                "yes",
                "2024-01-01",
                "A",
            ),
            customer(
                "C4",
                "Shared Two",
                "shared@example.ee",
                "no",
                "2024-01-01",
                "A",
            ),
        ],
        "",
    )));
    let port = server(body.clone(), Arc::new(Mutex::new(Vec::new()))).await;
    let f = env
        .call("POST", "/v1/feeds", &key, Some(json!({
            "url": format!("http://127.0.0.1:{port}/customers.xml"),
            "mapping": {"code": "external_id", "name": "first_name", "email": "email", "OPTIN": "consent", "class": "ignore", "shoe": "ignore"},
            "primary_key": "external_id",
        })))
        .await;
    assert_eq!(
        (f.status, &f.body["primary_key"]),
        (201, &json!("external_id")),
        "{}",
        f.body
    );
    let id = f.body["id"].as_str().unwrap().to_owned();
    let first = env
        .call("POST", &format!("/v1/feeds/{id}/run"), &key, None)
        .await
        .body;
    assert_eq!(
        (&first["created"], &first["merged_duplicates"]),
        (&json!(3), &json!([])),
        "distinct codes are distinct customers, even with one email: {first}"
    );
    let shared = env
        .call("GET", "/v1/contacts?email=shared@example.ee", &key, None)
        .await
        .body;
    let mut codes: Vec<&str> = shared["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["external_id"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, ["C3", "C4"], "{shared}");

    // C1 changes its email in the ERP: the code still finds the same contact.
    *body.lock().unwrap() = snapshot(
        &[customer(
            "C1",
            "First",
            "renamed@example.ee",
            "yes",
            "2024-01-01",
            "A",
        )],
        "",
    );
    let second = env
        .call("POST", &format!("/v1/feeds/{id}/run"), &key, None)
        .await
        .body;
    assert_eq!(
        (&second["created"], &second["updated"]),
        (&json!(0), &json!(1)),
        "{second}"
    );
    let by_code = env
        .call("GET", "/v1/contacts?external_id=C1", &key, None)
        .await
        .body;
    let contacts = by_code["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1, "{by_code}");
    assert_eq!(contacts[0]["email"], "renamed@example.ee");
    let old = env
        .call("GET", "/v1/contacts?email=first@example.ee", &key, None)
        .await
        .body;
    assert_eq!(old["contacts"], json!([]), "the old email was released");
}

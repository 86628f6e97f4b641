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

async fn get(env: &TestEnv, key: &str, id: &str) -> Value {
    env.call("GET", &format!("/v1/contacts/{id}"), key, None)
        .await
        .body
}

#[tokio::test]
async fn r_imp_2_import_with_primary_only_updates_by_primary_and_creates_new_mobiles() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let existing = env
        .upsert(
            &key,
            json!({"mobile": "41234567", "email": "shared@example.no", "first_name": "Old"}),
        )
        .await;
    let file =
        "First,Email,Mobile\nNew,shared@example.no,41234567\nSibling,shared@example.no,41234568\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    let job = env
        .run_import(
            &key,
            &id,
            settings(
                json!({"First": "first_name", "Email": "email", "Mobile": "mobile"}),
                "mobile",
                None,
            ),
        )
        .await;
    assert_eq!(
        (job["updated"].as_u64(), job["created"].as_u64()),
        (Some(1), Some(1)),
        "{job}"
    );
    assert_eq!(get(&env, &key, &existing).await["first_name"], "New");
    assert_eq!(
        env.contacts(&account).await.len(),
        2,
        "R-IMP-4: a new mobile is its own contact even with a shared email"
    );
}

#[tokio::test]
async fn r_imp_3_import_falls_through_to_the_secondary_key_when_primary_is_unknown_or_empty() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let by_email = env
        .upsert(
            &key,
            json!({"email": "kari@example.no", "mobile": "41234599"}),
        )
        .await;
    let file = "First,Email,Mobile\nKari,kari@example.no,41234568\nEmptyPrimary,kari@example.no,\nNobody,new@example.no,41234569\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    let job = env
        .run_import(
            &key,
            &id,
            settings(
                json!({"First": "first_name", "Email": "email", "Mobile": "mobile"}),
                "mobile",
                Some("email"),
            ),
        )
        .await;
    assert_eq!(
        (
            job["updated"].as_u64(),
            job["created"].as_u64(),
            job["errors"].as_u64()
        ),
        (Some(2), Some(1), Some(0)),
        "{job}"
    );
    assert_eq!(
        get(&env, &key, &by_email).await["first_name"],
        "EmptyPrimary",
        "both rows matched by email, in file order"
    );
    assert_eq!(env.contacts(&account).await.len(), 2);
}

#[tokio::test]
async fn r_mst_1_and_r_mst_2_file_master_overwrites_existing_master_fills_only_empty_fields() {
    for (master, city, company) in [("file", "Bergen", "Acme"), ("existing", "Oslo", "Acme")] {
        let env = TestEnv::new().await;
        let (_, key) = env.account("NO").await;
        let id = env
            .upsert(&key, json!({"mobile": "41234567", "city": "Oslo"}))
            .await;
        let file = "Mobile,City,Company,First\n41234567,Bergen,Acme,\n";
        let import = env.upload_import(&key, file.as_bytes()).await;
        let mut s = settings(
            json!({"Mobile": "mobile", "City": "city", "Company": "company", "First": "first_name"}),
            "mobile",
            None,
        );
        s["master"] = json!(master);
        let job = env.run_import(&key, &import, s).await;
        assert_eq!(job["updated"], 1, "{master}: {job}");
        let c = get(&env, &key, &id).await;
        assert_eq!(
            (c["city"].as_str(), c["company"].as_str()),
            (Some(city), Some(company)),
            "{master}"
        );
        assert!(
            c["first_name"].is_null(),
            "an empty cell never erases or writes"
        );
    }
}

#[tokio::test]
async fn r_wiz_4_import_creates_custom_fields_and_skips_unmapped_columns() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let file = "Mobile,Shoe,Secret\n41234567,44,do-not-import\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    let mut s = settings(
        json!({"Mobile": "mobile", "Shoe": "custom:shoe_size"}),
        "mobile",
        None,
    );
    s["create_custom_fields"] = json!(["shoe_size"]);
    let job = env.run_import(&key, &id, s).await;
    assert_eq!(job["created"], 1, "{job}");
    let c = &env.contacts(&account).await[0];
    assert_eq!(c.custom["shoe_size"], "44");
    assert!(!format!("{c:?}").contains("do-not-import"));
    let settings = env.call("GET", "/v1/settings", &key, None).await;
    assert_eq!(
        settings.body["custom_fields"][0]["name"], "shoe_size",
        "the field was created on the spot"
    );
}

#[tokio::test]
async fn r_wiz_4_unmapped_column_is_refused_without_skip_unmapped() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    let id = env.upload_import(&key, b"Mobile,Extra\n41234567,x\n").await;
    let mut s = settings(json!({"Mobile": "mobile"}), "mobile", None);
    s["skip_unmapped"] = json!(false);
    let r = env
        .call("PUT", &format!("/v1/imports/{id}/settings"), &key, Some(s))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("mapping.Extra")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn r_wiz_6_import_reads_opt_in_columns_with_the_accounts_vocabulary() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let vocab = json!({"opt_in": {"email_marketing": {"in": ["OptIn", "Yes", "True"], "out": ["OptOut", "No", "False"]}, "sms_marketing": {"in": ["yes"], "out": ["no"]}}, "default_country": "NO"});
    assert_eq!(
        env.call("PUT", "/v1/settings", &key, Some(vocab))
            .await
            .status,
        200
    );
    let file = "Email,News\na@example.no,optin\nb@example.no,OPTOUT\nc@example.no,TRUE\nd@example.no,no\ne@example.no,\nf@example.no,perhaps\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    let mut s = settings(json!({"Email": "email"}), "email", None);
    s["opt_in"] = json!({"email_marketing": {"column": "News"}});
    let job = env.run_import(&key, &id, s).await;
    assert_eq!(
        (
            job["created"].as_u64(),
            job["errors"].as_u64(),
            job["status"].as_str()
        ),
        (Some(5), Some(1), Some("completed_with_errors")),
        "{job}"
    );
    let status = |email: &str, contacts: &[intake_shared::model::Contact]| {
        contacts
            .iter()
            .find(|c| c.email.as_ref().unwrap().normalized() == email)
            .map(|c| c.email_marketing.status.as_str())
    };
    let contacts = env.contacts(&account).await;
    assert_eq!(status("a@example.no", &contacts), Some("opted_in"));
    assert_eq!(status("b@example.no", &contacts), Some("opted_out"));
    assert_eq!(status("c@example.no", &contacts), Some("opted_in"));
    assert_eq!(status("d@example.no", &contacts), Some("opted_out"));
    assert_eq!(
        status("e@example.no", &contacts),
        Some("unknown"),
        "an empty cell leaves consent untouched"
    );
    let errors = env
        .call("GET", &format!("/v1/imports/{id}/errors"), &key, None)
        .await;
    assert_eq!(
        (
            errors.body["errors"][0]["row"].as_u64(),
            errors.body["errors"][0]["column"].as_str()
        ),
        (Some(7), Some("News"))
    );
}

#[tokio::test]
async fn r_wiz_5_and_r_wiz_8_settings_missing_opt_in_or_compliance_get_422() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    let id = env
        .upload_import(&key, b"Email,Mobile\na@example.no,41234567\n")
        .await;
    let mut no_opt_in = settings(
        json!({"Email": "email", "Mobile": "mobile"}),
        "mobile",
        Some("email"),
    );
    no_opt_in["opt_in"] = json!({"sms_marketing": {"value": "opted_in"}});
    let r = env
        .call(
            "PUT",
            &format!("/v1/imports/{id}/settings"),
            &key,
            Some(no_opt_in),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("opt_in.email_marketing")),
        "{}",
        r.body
    );
    let mut no_ack = settings(
        json!({"Email": "email", "Mobile": "mobile"}),
        "mobile",
        Some("email"),
    );
    no_ack["compliance_acknowledged"] = json!(false);
    let r = env
        .call(
            "PUT",
            &format!("/v1/imports/{id}/settings"),
            &key,
            Some(no_ack),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("compliance_acknowledged")),
        "{}",
        r.body
    );
    let start = env
        .call("POST", &format!("/v1/imports/{id}/start"), &key, None)
        .await;
    assert_eq!(
        start.status, 422,
        "no import without saved, valid settings: {}",
        start.body
    );
}

#[tokio::test]
async fn r_xls_4_row_errors_name_row_and_column_and_good_rows_still_import() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let file = "First,Email,Mobile\nOk,ok@example.no,41234567\n\"Multi\nline\",bad-email,41234568\nNoKeys,,\n,,\nAlso ok,also@example.no,41234570\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    let job = env
        .run_import(
            &key,
            &id,
            settings(
                json!({"First": "first_name", "Email": "email", "Mobile": "mobile"}),
                "mobile",
                Some("email"),
            ),
        )
        .await;
    assert_eq!(
        (
            job["created"].as_u64(),
            job["errors"].as_u64(),
            job["blank"].as_u64()
        ),
        (Some(2), Some(2), Some(1)),
        "{job}"
    );
    assert_eq!(job["rows_total"], 5);
    let errors = env
        .call("GET", &format!("/v1/imports/{id}/errors"), &key, None)
        .await
        .body;
    let rows: Vec<(u64, &str)> = errors["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["column"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![(3, "Email"), (4, "Mobile")],
        "spreadsheet rows: header is row 1, a quoted line break stays in its row"
    );
    assert_eq!(
        env.contacts(&account).await.len(),
        2,
        "the bad row wrote nothing"
    );
}

#[tokio::test]
async fn r_xls_4_error_report_as_csv_escapes_formula_cells() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    let file = "Email\n=HYPERLINK(\"http://evil\")\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    let mut s = settings(json!({"Email": "email"}), "email", None);
    s["opt_in"] = json!({"email_marketing": {"value": "unknown"}});
    env.run_import(&key, &id, s).await;
    let auth = format!("Bearer {key}");
    let r = env
        .send(
            "GET",
            &format!("/v1/imports/{id}/errors"),
            &[("authorization", &auth), ("accept", "text/csv")],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    let router_body = env
        .router
        .call(
            http::Request::builder()
                .uri(format!("/v1/imports/{id}/errors"))
                .header("authorization", &auth)
                .header("accept", "text/csv")
                .body(bytes::Bytes::new())
                .unwrap(),
        )
        .await;
    let text = String::from_utf8(router_body.into_body().to_vec()).unwrap();
    assert!(
        text.starts_with("row,column,value,reason\n2,Email,\"'=HYPERLINK("),
        "{text}"
    );
}

#[tokio::test]
async fn r_wiz_3_preview_with_and_without_header_row() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let file = "\u{feff}Fornavn;E-postadresse;Mobilnummer\nOla;ola@example.no;41234567\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    let p = env
        .call("GET", &format!("/v1/imports/{id}/preview"), &key, None)
        .await
        .body;
    assert_eq!(
        (p["delimiter"].as_str(), p["columns"][0].as_str()),
        (Some(";"), Some("Fornavn")),
        "BOM stripped, semicolon found: {p}"
    );
    assert_eq!(
        p["suggested_mapping"],
        json!({"Fornavn": "first_name", "E-postadresse": "email", "Mobilnummer": "mobile"})
    );
    assert_eq!(p["rows"].as_array().unwrap().len(), 1);
    let raw = env
        .call(
            "GET",
            &format!("/v1/imports/{id}/preview?header_row=false"),
            &key,
            None,
        )
        .await
        .body;
    assert_eq!(
        (
            raw["columns"][2].as_str(),
            raw["rows"].as_array().unwrap().len()
        ),
        (Some("Column 3"), 2)
    );
    let mut s = settings(
        json!({"Column 1": "first_name", "Column 2": "email", "Column 3": "mobile"}),
        "mobile",
        None,
    );
    s["header_row"] = json!(false);
    let job = env.run_import(&key, &id, s).await;
    assert_eq!(
        (job["created"].as_u64(), job["errors"].as_u64()),
        (Some(1), Some(1)),
        "without a header the header line is row 1, and its 'Mobilnummer' is not a number: {job}"
    );
    assert_eq!(env.contacts(&account).await.len(), 1);
}

#[tokio::test]
async fn import_cross_chunk_duplicates_end_as_one_contact_in_file_order() {
    let env = TestEnv::with_chunk_rows(10).await;
    let (account, key) = env.account("NO").await;
    let mut file = String::from("First,Email,Mobile,City\n");
    for i in 0..100 {
        let person = i % 40;
        file.push_str(&format!(
            "P{person}-{i},p{person}@example.no,4{:07},City{i}\n",
            1_000_000 + person
        ));
    }
    let id = env.upload_import(&key, file.as_bytes()).await;
    let job = env
        .run_import(
            &key,
            &id,
            settings(basic_mapping(), "mobile", Some("email")),
        )
        .await;
    assert_eq!(
        (
            job["created"].as_u64(),
            job["updated"].as_u64(),
            job["merged"].as_u64(),
            job["rows_done"].as_u64()
        ),
        (Some(40), Some(0), Some(60), Some(100)),
        "R-XLS-8: duplicates inside the file are merged before they are written: {job}"
    );
    let contacts = env.contacts(&account).await;
    assert_eq!(contacts.len(), 40);
    for c in &contacts {
        let person: u64 = c.fields.first_name.as_ref().unwrap()[1..]
            .split('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let last = (0..100).filter(|i| i % 40 == person).max().unwrap();
        assert_eq!(
            c.fields.city.as_deref(),
            Some(format!("City{last}").as_str()),
            "the later row wins, as in file order"
        );
    }
    let chunks = env
        .delivered
        .lock()
        .unwrap()
        .iter()
        .filter(|(q, _)| q == "ChunkQueue")
        .count();
    assert!(chunks >= 10, "ten chunks ran: {chunks}");
}

#[tokio::test]
async fn import_chunk_delivered_twice_changes_nothing_and_counts_once() {
    let env = TestEnv::with_chunk_rows(5).await;
    let (account, key) = env.account("NO").await;
    let mut file = String::from("First,Email,Mobile,City\n");
    for i in 0..12 {
        file.push_str(&format!(
            "P{i},p{i}@example.no,4{:07},Oslo\n",
            2_000_000 + i
        ));
    }
    let id = env.upload_import(&key, file.as_bytes()).await;
    let job = env
        .run_import(
            &key,
            &id,
            settings(basic_mapping(), "mobile", Some("email")),
        )
        .await;
    let before = env.snapshot(&account).await;
    let chunk = env
        .delivered
        .lock()
        .unwrap()
        .iter()
        .find(|(q, _)| q == "ChunkQueue")
        .map(|(_, b)| b.clone())
        .unwrap();
    env.clients
        .sqs
        .send_message()
        .queue_url(&env.refs["ChunkQueue"])
        .message_body(chunk)
        .send()
        .await
        .unwrap();
    for _ in 0..50 {
        if env
            .delivered
            .lock()
            .unwrap()
            .iter()
            .filter(|(q, _)| q == "ChunkQueue")
            .count()
            > 3
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let again = env
        .call("GET", &format!("/v1/imports/{id}"), &key, None)
        .await
        .body;
    assert_eq!(
        (again["created"].clone(), again["rows_done"].clone()),
        (job["created"].clone(), job["rows_done"].clone()),
        "{again}"
    );
    assert_eq!(env.snapshot(&account).await, before);
}

#[tokio::test]
async fn import_of_the_same_file_again_reports_every_row_unchanged_and_writes_nothing() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let file = "First,Email,Mobile,City\nOla,ola@example.no,41234567,Oslo\nKari,kari@example.no,41234568,Bergen\nOla N.,ola@example.no,412 34 567,Tromsø\n";
    let first = env.upload_import(&key, file.as_bytes()).await;
    env.run_import(
        &key,
        &first,
        settings(basic_mapping(), "mobile", Some("email")),
    )
    .await;
    let before = env.snapshot(&account).await;
    let list = env
        .call("GET", &format!("/v1/imports/{first}"), &key, None)
        .await
        .body["list_id"]
        .clone();
    let second = env
        .upload_import_to(&key, json!({ "id": list }), file.as_bytes())
        .await;
    let job = env
        .run_import(
            &key,
            &second,
            settings(basic_mapping(), "mobile", Some("email")),
        )
        .await;
    assert_eq!(
        (
            job["unchanged"].as_u64(),
            job["created"].as_u64(),
            job["updated"].as_u64(),
            job["merged"].as_u64()
        ),
        (Some(2), Some(0), Some(0), Some(1)),
        "R-XLS-8: the conflicting duplicate is merged first, so nothing is written twice: {job}"
    );
    assert_eq!(
        env.snapshot(&account).await,
        before,
        "no contact or identity item changed, not even a label"
    );
}

#[tokio::test]
async fn import_validate_reports_what_would_happen_and_writes_nothing() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    env.upsert(&key, json!({"mobile": "41234567", "city": "Oslo"}))
        .await;
    let file = "First,Email,Mobile,City\nOla,ola@example.no,41234567,Bergen\nNew,new@example.no,41234568,Oslo\nNew again,new@example.no,41234568,Oslo\nBad,x,1,\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    let s = env
        .call(
            "PUT",
            &format!("/v1/imports/{id}/settings"),
            &key,
            Some(settings(basic_mapping(), "mobile", Some("email"))),
        )
        .await;
    assert_eq!(s.status, 200);
    let before = env.snapshot(&account).await;
    let r = env
        .call("POST", &format!("/v1/imports/{id}/validate"), &key, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.body["would_create"].as_u64(),
            r.body["would_update"].as_u64(),
            r.body["merged_duplicates"].as_u64(),
            r.body["errors"].as_u64(),
            r.body["rows"].as_u64()
        ),
        (Some(1), Some(1), Some(1), Some(1), Some(4)),
        "{}",
        r.body
    );
    assert_eq!(r.body["sample_errors"][0]["row"], 5);
    assert_eq!(
        r.body["sample_merged"],
        json!([{"row": 4, "into_row": 3}]),
        "R-XLS-8: the in-file duplicate is named"
    );
    assert_eq!(
        r.body["sample_normalised"][0],
        json!({"row": 2, "column": "Mobile", "from": "41234567", "to": "+4741234567"}),
        "R-XLS-8: normalisations are shown"
    );
    assert_eq!(r.body["normalised"], 3);
    assert_eq!(
        env.snapshot(&account).await,
        before,
        "a dry run writes nothing"
    );
    let job = env
        .call("GET", &format!("/v1/imports/{id}"), &key, None)
        .await
        .body;
    assert_eq!(job["status"], "draft");
}

#[tokio::test]
async fn import_drop_folder_object_starts_an_import_with_the_saved_profile() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let profile = json!({"list": {"new": "ERP drops"}, "settings": settings(basic_mapping(), "mobile", Some("email"))});
    let r = env
        .call("PUT", "/v1/import-profiles/nightly", &key, Some(profile))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let object = format!("drop/{}/nightly/kunder 2024.csv", account.0);
    let body = "First,Email,Mobile,City\nOla,ola@example.no,41234567,Oslo\n";
    env.clients
        .s3
        .put_object()
        .bucket(env.bucket())
        .key(&object)
        .content_type("text/csv")
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let found = env.first_in_tab(&key, "completed").await;
    assert_eq!(
        (found["created"].as_u64(), found["file_name"].as_str()),
        (Some(1), Some("kunder 2024.csv")),
        "{found}"
    );
    assert_eq!(env.contacts(&account).await.len(), 1);
}

#[tokio::test]
async fn r_wiz_10_a_file_that_is_not_csv_fails_with_its_reason() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    let id = env
        .upload_import(&key, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3 binary")
        .await;
    let preview = env
        .call("GET", &format!("/v1/imports/{id}/preview"), &key, None)
        .await;
    assert_eq!(
        (preview.status, preview.body["error"]["code"].as_str()),
        (422, Some("invalid_file"))
    );
    assert!(preview.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("PDF"));
    let failed = env
        .call("GET", "/v1/imports?status=failed", &key, None)
        .await;
    assert_eq!(failed.body["imports"], json!([]));
    let drafts = env
        .call("GET", "/v1/imports?status=draft", &key, None)
        .await;
    assert_eq!(
        drafts.body["imports"][0]["id"],
        id.as_str(),
        "R-WIZ-10: not started yet, listed under Draft"
    );
}

#[tokio::test]
async fn r_wiz_10_an_unterminated_quote_fails_the_started_import_with_the_row() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let profile = json!({"list": {"new": "Drops"}, "settings": settings(basic_mapping(), "mobile", Some("email"))});
    env.call("PUT", "/v1/import-profiles/p1", &key, Some(profile))
        .await;
    let body = "First,Email,Mobile,City\nOla,ola@example.no,41234567,Oslo\n\"Never closed,a@example.no,41234568,Oslo\n";
    env.clients
        .s3
        .put_object()
        .bucket(env.bucket())
        .key(format!("drop/{}/p1/broken.csv", account.0))
        .content_type("text/csv")
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let failed = env.first_in_tab(&key, "failed").await;
    assert!(
        failed["failure_reasons"][0]
            .as_str()
            .unwrap_or("")
            .contains("row 3"),
        "{failed}"
    );
    assert_eq!(
        env.contacts(&account).await.len(),
        0,
        "a structurally broken file imports nothing"
    );
}

#[tokio::test]
async fn r_ops_1_member_keys_cannot_import() {
    let env = TestEnv::new().await;
    let (_, admin) = env.account("NO").await;
    let (_, member) = env.key(&admin, "member").await;
    let r = env
        .call(
            "POST",
            "/v1/imports",
            &member,
            Some(json!({"list": {"new": "x"}, "file_name": "a.csv"})),
        )
        .await;
    assert_eq!(r.status, 403);
    let id = env.upload_import(&admin, b"Mobile\n41234567\n").await;
    for (method, path) in [
        ("PUT", format!("/v1/imports/{id}/settings")),
        ("POST", format!("/v1/imports/{id}/start")),
        ("POST", format!("/v1/imports/{id}/validate")),
    ] {
        let r = env
            .call(
                method,
                &path,
                &member,
                Some(settings(json!({"Mobile": "mobile"}), "mobile", None)),
            )
            .await;
        assert_eq!(r.status, 403, "{method} {path}");
    }
    assert_eq!(
        env.call("GET", &format!("/v1/imports/{id}"), &member, None)
            .await
            .status,
        200,
        "members may read status"
    );
}

#[tokio::test]
async fn import_of_generated_rows_with_duplicates_across_chunks_and_four_workers_counts_exactly() {
    let env = TestEnv::with_options(250, 4).await;
    let (account, key) = env.account("NO").await;
    let (file, people) = intake_tests::generate_contacts(5_000);
    let id = env.upload_import(&key, file.as_bytes()).await;
    let job = env
        .run_import_patient(&key, &id, intake_tests::generated_settings())
        .await;
    let sum = [
        "created",
        "updated",
        "unchanged",
        "blank",
        "errors",
        "merged",
    ]
    .iter()
    .map(|k| job[k].as_u64().unwrap())
    .sum::<u64>();
    assert_eq!(
        (sum, job["rows_done"].as_u64(), job["rows_total"].as_u64()),
        (5_000, Some(5_000), Some(5_000)),
        "{job}"
    );
    assert_eq!(job["created"].as_u64(), Some(people as u64), "{job}");
    assert_eq!(
        env.contact_count(&account).await,
        people,
        "exactly one contact per person"
    );
}

#[tokio::test]
async fn import_counts_stay_exact_when_the_chunk_marker_meets_transaction_conflicts() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    env.upsert(&key, json!({"mobile": "41234567", "city": "Tromsø"}))
        .await;
    let file = "First,Email,Mobile,City\nOla,ola@example.no,41234567,Oslo\nKari,kari@example.no,41234568,Bergen\n";
    let id = env.upload_import(&key, file.as_bytes()).await;
    // The chunk's contact write goes through; its done-marker transaction conflicts three times.
    // Redelivering the whole chunk instead would count the updated row as unchanged.
    let conflict = intake_tests::Fault::TransactionConflict;
    env.faults.fail_after("TransactWriteItems", 1, conflict, 3);
    let job = env
        .run_import(
            &key,
            &id,
            settings(basic_mapping(), "mobile", Some("email")),
        )
        .await;
    assert_eq!(
        env.faults.remaining("TransactWriteItems"),
        0,
        "the faults were injected"
    );
    let counts = (
        job["created"].as_u64(),
        job["updated"].as_u64(),
        job["unchanged"].as_u64(),
    );
    assert_eq!(counts, (Some(1), Some(1), Some(0)), "{job}");
    assert_eq!(env.contacts(&account).await.len(), 2);
}

fn encoded(text: &str, encoding: &'static encoding_rs::Encoding) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding.encode(text);
    assert!(!unmappable, "fixture text fits {}", encoding.name());
    bytes.into_owned()
}

#[tokio::test]
async fn import_reads_a_windows_1252_semicolon_file_as_norwegian_excel_writes_it() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let text = "Fornavn;Etternavn;E-postadresse;Mobilnummer;Poststed\r\nÅse;Ødegård;ase@example.no;412 34 567;Tromsø\r\nBjørn;Bæver;bjorn@example.no;41234568;Bodø\r\n";
    let file = encoded(text, encoding_rs::WINDOWS_1252);
    assert!(
        std::str::from_utf8(&file).is_err(),
        "the fixture is not UTF-8"
    );
    let id = env.upload_import(&key, &file).await;
    let p = env
        .call("GET", &format!("/v1/imports/{id}/preview"), &key, None)
        .await
        .body;
    assert_eq!(
        (p["encoding"].as_str(), p["delimiter"].as_str()),
        (Some("windows-1252"), Some(";")),
        "{p}"
    );
    assert_eq!(p["rows"][0][1], "Ødegård");
    let mut s = settings(
        json!({"Fornavn": "first_name", "Etternavn": "last_name", "E-postadresse": "email", "Mobilnummer": "mobile", "Poststed": "city"}),
        "mobile",
        Some("email"),
    );
    s["skip_unmapped"] = json!(false);
    let job = env.run_import(&key, &id, s).await;
    assert_eq!(
        (job["created"].as_u64(), job["errors"].as_u64()),
        (Some(2), Some(0)),
        "{job}"
    );
    let contacts = env.contacts(&account).await;
    let ase = contacts
        .iter()
        .find(|c| c.fields.last_name.as_deref() == Some("Ødegård"))
        .expect("Ødegård decoded");
    assert_eq!(
        (ase.fields.first_name.as_deref(), ase.fields.city.as_deref()),
        (Some("Åse"), Some("Tromsø"))
    );
}

#[tokio::test]
async fn import_reads_a_czech_windows_1250_file() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("CZ").await;
    let text = "Jméno,Příjmení,E-mail,Mobil\nJiří,Dvořák,jiri@example.cz,+420 601 123 456\nŽofie,Šťastná,zofie@example.cz,+420 601 123 457\n";
    let id = env
        .upload_import(&key, &encoded(text, encoding_rs::WINDOWS_1250))
        .await;
    let s = settings(
        json!({"Jméno": "first_name", "Příjmení": "last_name", "E-mail": "email", "Mobil": "mobile"}),
        "mobile",
        None,
    );
    let job = env.run_import(&key, &id, s).await;
    assert_eq!(job["created"], 2, "{job}");
    let names: std::collections::BTreeSet<String> = env
        .contacts(&account)
        .await
        .into_iter()
        .filter_map(|c| c.fields.last_name)
        .collect();
    assert_eq!(
        names,
        ["Dvořák", "Šťastná"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

#[tokio::test]
async fn r_xls_8_preview_suggests_the_accounts_last_confirmed_mapping_for_the_same_headers() {
    let env = TestEnv::new().await;
    let (_, key) = env.account("NO").await;
    let first = env
        .upload_import(&key, b"Navn,Epost,Tlf\nOla,ola@example.no,41234567\n")
        .await;
    let p = env
        .call("GET", &format!("/v1/imports/{first}/preview"), &key, None)
        .await
        .body;
    assert_eq!(
        (p["mapping_source"].as_str(), &p["suggested_mapping"]),
        (Some("dictionary"), &json!({"Epost": "email"})),
        "{p}"
    );
    let confirmed = json!({"Navn": "first_name", "Epost": "email", "Tlf": "mobile"});
    let s = env
        .call(
            "PUT",
            &format!("/v1/imports/{first}/settings"),
            &key,
            Some(settings(confirmed.clone(), "mobile", None)),
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.body);
    let second = env
        .upload_import(&key, b"Tlf,Navn,Epost\n41234568,Kari,kari@example.no\n")
        .await;
    let p = env
        .call("GET", &format!("/v1/imports/{second}/preview"), &key, None)
        .await
        .body;
    assert_eq!(
        (p["mapping_source"].as_str(), &p["suggested_mapping"]),
        (Some("remembered"), &confirmed),
        "same headers in another order: {p}"
    );
    let (_, other) = env.account("NO").await;
    let third = env
        .upload_import(&other, b"Navn,Epost,Tlf\nPer,per@example.no,41234569\n")
        .await;
    let p = env
        .call("GET", &format!("/v1/imports/{third}/preview"), &other, None)
        .await
        .body;
    assert_eq!(
        p["mapping_source"], "dictionary",
        "another account's mapping is never suggested"
    );
}

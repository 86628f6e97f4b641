//! Files as people have them (issue 5), end to end: every fixture in `tests/fixtures/files`
//! (written by `tests/fixtures/make_fixtures.py`, expectations in `manifest.json`) is uploaded,
//! previewed, imported through the queues and workers, and the stored contacts are compared
//! with what the manifest says the file holds. Hostile files must fail with their reason.

use std::time::Instant;

use intake_shared::model::Contact;
use intake_tests::TestEnv;
use serde_json::{json, Value};

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn manifest_entry(file: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    all.into_iter()
        .find(|e| e["file"] == file)
        .unwrap_or_else(|| panic!("{file} is in the manifest"))
}

fn bytes_of(file: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("files").join(file)).unwrap()
}

/// The stored value of a manifest field on a contact.
fn stored(c: &Contact, field: &str) -> Option<String> {
    match field {
        "email" => c.email.as_ref().map(|e| e.normalized().to_owned()),
        "mobile" => c.mobile.as_ref().map(|m| m.as_str().to_owned()),
        f => c
            .fields
            .slots()
            .into_iter()
            .find(|(n, _)| *n == f)
            .and_then(|(_, v)| v.clone()),
    }
}

fn assert_contacts(file: &str, contacts: &[Contact], expected: &[Value]) {
    assert_eq!(contacts.len(), expected.len(), "{file}: contact count");
    for want in expected {
        let email = want["email"].as_str().unwrap();
        let got = contacts
            .iter()
            .find(|c| stored(c, "email").as_deref() == Some(email))
            .unwrap_or_else(|| panic!("{file}: a contact with {email}"));
        for (field, value) in want.as_object().unwrap() {
            if field == "custom" {
                for (name, v) in value.as_object().unwrap() {
                    assert_eq!(
                        got.custom.get(name),
                        Some(v),
                        "{file}: {email} custom {name}"
                    );
                }
            } else {
                assert_eq!(
                    stored(got, field).as_deref(),
                    value.as_str(),
                    "{file}: {email} {field}"
                );
            }
        }
    }
}

/// Uploads, previews, imports and checks one fixture; returns the finished job.
async fn import_fixture(file: &str) -> Value {
    let entry = manifest_entry(file);
    let env = TestEnv::new().await;
    let (account, key) = env.account(entry["country"].as_str().unwrap()).await;
    let id = env.upload_import(&key, &bytes_of(file)).await;
    let preview = env
        .call("GET", &format!("/v1/imports/{id}/preview"), &key, None)
        .await;
    assert_eq!(preview.status, 200, "{file}: {}", preview.body);
    let p = &preview.body;
    let want = &entry["preview"];
    for field in ["encoding", "delimiter", "file_type", "sheet"] {
        if !want[field].is_null() {
            assert_eq!(p[field], want[field], "{file}: preview {field}: {p}");
        }
    }
    assert_eq!(p["columns"], want["columns"], "{file}: columns");
    if let Some(sheets) = want["sheets"].as_array() {
        let names: Vec<&Value> = p["sheets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["name"])
            .collect();
        assert_eq!(names, sheets.iter().collect::<Vec<_>>(), "{file}: sheets");
    }
    if let Some(suggested) = want["suggested"].as_object() {
        for (column, field) in suggested {
            assert_eq!(
                &p["suggested_mapping"][column], field,
                "{file}: suggestion for {column}"
            );
        }
    }
    let settings = json!({
        "header_row": true,
        "mapping": entry["mapping"],
        "create_custom_fields": entry.get("create_custom_fields").cloned().unwrap_or(json!([])),
        "skip_unmapped": false,
        "opt_in": {"email_marketing": {"value": "unknown"}, "sms_marketing": {"value": "unknown"}},
        "master": "file",
        "primary_key": entry["primary_key"],
        "secondary_key": entry["secondary_key"],
        "compliance_acknowledged": true
    });
    let job = env.run_import(&key, &id, settings).await;
    let expect = &entry["expect"];
    assert_eq!(
        (&job["created"], &job["errors"]),
        (&expect["created"], &expect["errors"]),
        "{file}: {job}"
    );
    if let Some(error) = expect.get("error") {
        let errors = env
            .call("GET", &format!("/v1/imports/{id}/errors"), &key, None)
            .await
            .body;
        let first = &errors["errors"][0];
        assert_eq!(
            (&first["row"], &first["column"]),
            (&error["row"], &error["column"]),
            "{file}: {errors}"
        );
    }
    let contacts = env.contacts(&account).await;
    assert_contacts(file, &contacts, entry["contacts"].as_array().unwrap());
    job
}

macro_rules! fixture_tests {
    ($($name:ident => $file:literal,)*) => {$(
        #[tokio::test]
        async fn $name() {
            import_fixture($file).await;
        }
    )*};
}

fixture_tests! {
    import_stores_contacts_when_the_file_is_utf8_comma_lf_with_quoted_newlines => "utf8-comma-lf.csv",
    import_stores_contacts_when_the_file_is_utf8_with_bom_semicolons_and_crlf => "utf8-bom-semicolon-crlf.csv",
    import_stores_contacts_when_the_file_is_utf8_tab_separated_with_cr_line_ends => "utf8-tab-cr.tsv",
    import_stores_contacts_when_the_file_is_utf8_pipe_separated => "utf8-pipe-crlf.csv",
    import_stores_contacts_when_the_file_is_windows_1252_semicolons => "windows-1252-semicolon-crlf.csv",
    import_stores_contacts_when_the_file_is_latin1_with_cr_line_ends => "iso-8859-1-comma-cr.csv",
    import_stores_contacts_when_the_file_is_iso_8859_2_czech => "iso-8859-2-semicolon-lf.csv",
    import_stores_contacts_when_the_file_is_utf16le_tab_text_as_excel_saves_it => "utf16le-bom-tab-crlf.txt",
    import_stores_contacts_when_the_file_is_utf16be_with_chinese_headers => "utf16be-bom-comma-lf.csv",
    import_stores_contacts_when_the_file_is_gbk_with_pipes_inside_characters => "gbk-pipe-crlf.csv",
    r_xls_1_import_stores_numeric_phone_cells_as_digits_and_date_cells_as_iso_dates => "numeric-phones-and-dates.xlsx",
    r_xls_2_import_stores_one_contact_per_row_when_each_row_is_a_contact_person => "raynet-one-row-per-person.xlsx",
    r_xls_2_import_stores_one_contact_per_person_group_sharing_the_clients_company_and_address => "raynet-client-with-six-person-groups.xlsx",
}

/// A hostile fixture through the wizard's preview and through a drop folder: the preview's
/// answer, the failed job (from the Failed tab) and the seconds both took.
async fn hostile(file: &str) -> (Value, Value, f64) {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let started = Instant::now();
    let id = env.upload_import(&key, &bytes_of(file)).await;
    let preview = env
        .call("GET", &format!("/v1/imports/{id}/preview"), &key, None)
        .await;
    let settings = json!({
        "header_row": true, "mapping": {"email": "email"}, "skip_unmapped": true,
        "opt_in": {"email_marketing": {"value": "unknown"}},
        "primary_key": "email", "compliance_acknowledged": true
    });
    let profile = json!({"list": {"new": "Drops"}, "settings": settings});
    let r = env
        .call("PUT", "/v1/import-profiles/p1", &key, Some(profile))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    env.clients
        .s3
        .put_object()
        .bucket(env.bucket())
        .key(format!("drop/{}/p1/{file}", account.0))
        .body(bytes_of(file).into())
        .send()
        .await
        .unwrap();
    let failed = env.first_in_tab(&key, "failed").await;
    assert!(
        env.contacts(&account).await.is_empty(),
        "{file}: nothing imported"
    );
    (preview.body, failed, started.elapsed().as_secs_f64())
}

fn reason(job: &Value) -> &str {
    job["failure_reasons"][0].as_str().unwrap_or_default()
}

#[tokio::test]
async fn import_refuses_a_zip_bomb_quickly_when_sizes_are_declared_or_lied_about() {
    for file in ["bomb-honest.xlsx", "bomb-lying.xlsx"] {
        let (preview, failed, secs) = hostile(file).await;
        assert_eq!(
            preview["error"]["code"], "invalid_file",
            "{file}: {preview}"
        );
        for message in [
            preview["error"]["message"].as_str().unwrap(),
            reason(&failed),
        ] {
            assert!(message.contains("zip bomb"), "{file}: {message}");
        }
        assert!(secs < 60.0, "{file}: refused in {secs:.1} s");
    }
}

#[tokio::test]
async fn import_refuses_a_pdf_and_names_what_it_is() {
    let (preview, failed, _) = hostile("not-a-spreadsheet.pdf").await;
    assert_eq!(preview["error"]["code"], "invalid_file", "{preview}");
    for message in [
        preview["error"]["message"].as_str().unwrap(),
        reason(&failed),
    ] {
        assert!(message.contains("PDF"), "{message}");
    }
}

#[tokio::test]
async fn import_fails_with_the_row_when_a_quote_is_never_closed() {
    let (_, failed, _) = hostile("unterminated-quote.csv").await;
    let want = manifest_entry("unterminated-quote.csv");
    assert!(
        reason(&failed).contains(want["hostile"].as_str().unwrap()),
        "{failed}"
    );
}

#[tokio::test]
async fn r_xls_3_cells_over_the_accounts_limit_are_row_errors_and_the_limit_is_configurable() {
    let env = TestEnv::new().await;
    let (account, key) = env.account("NO").await;
    let name = |n: usize| "x".repeat(n);
    let file = format!(
        "first_name,email\n{},a@example.no\n{},b@example.no\n",
        name(255),
        name(256)
    );
    let settings = json!({
        "header_row": true, "mapping": {"first_name": "first_name", "email": "email"},
        "opt_in": {"email_marketing": {"value": "unknown"}},
        "primary_key": "email", "compliance_acknowledged": true
    });
    let id = env.upload_import(&key, file.as_bytes()).await;
    let job = env.run_import(&key, &id, settings.clone()).await;
    assert_eq!(
        (&job["created"], &job["errors"]),
        (&json!(1), &json!(1)),
        "{job}"
    );
    let errors = env
        .call("GET", &format!("/v1/imports/{id}/errors"), &key, None)
        .await
        .body;
    assert_eq!(
        (&errors["errors"][0]["row"], &errors["errors"][0]["column"]),
        (&json!(3), &json!("first_name"))
    );
    assert!(errors["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("256 characters, the limit is 255"));

    let r = env
        .call(
            "PUT",
            "/v1/settings",
            &key,
            Some(json!({"default_country": "NO", "cell_limit": 1000})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = env
        .upload_import(
            &key,
            file.replace("a@", "c@").replace("b@", "d@").as_bytes(),
        )
        .await;
    let job = env.run_import(&key, &id, settings).await;
    assert_eq!(
        (&job["created"], &job["errors"]),
        (&json!(2), &json!(0)),
        "{job}"
    );
    assert_eq!(env.contacts(&account).await.len(), 3);
    let bad = env
        .call("PUT", "/v1/settings", &key, Some(json!({"cell_limit": 0})))
        .await;
    assert_eq!(
        (bad.status, &bad.body["error"]["field"]),
        (422, &json!("cell_limit"))
    );
}

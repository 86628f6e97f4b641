//! Import benchmark (issue 4): generates N realistic rows (mixed phone spellings, 10% duplicates
//! spread across chunks, ~1% invalid), imports them through the full local pipeline (presigned
//! upload, S3, SQS, split, parallel chunk workers, DynamoDB Local), re-imports the same file,
//! and writes the same contacts with a bare BatchWriteItem loader as the floor. Prints rows/s,
//! DynamoDB calls and write units per 1,000 rows, and peak memory.
//!
//! Needs the stand-ins up (`infra/local/up` or `infra/local/test` started them), then:
//! `cargo run --release -p intake-tests --bin import-bench -- [rows] [chunk_rows] [workers]`,
//! `… -- split [rows]` (split memory), `… -- xlsx [rows]` (the same rows as a workbook) or
//! `… -- hostile <case> [MiB]` (hostile files, issue 5).

use std::collections::BTreeMap;
use std::time::Instant;

use intake_shared::import::split::identity_hash;
use intake_shared::model::{AccountId, Contact, ContactId, Owns};
use intake_shared::normalize::{Country, Email, Mobile};
use intake_shared::rules::owned_keys;
use intake_shared::store::items;
use intake_tests::TestEnv;
use serde_json::json;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn settings() -> serde_json::Value {
    intake_tests::generated_settings()
}

async fn import(
    env: &TestEnv,
    key: &str,
    list: serde_json::Value,
    file: &[u8],
) -> (serde_json::Value, f64) {
    let id = env.upload_import_to(key, list, file).await;
    let started = Instant::now();
    let job = env.run_import_patient(key, &id, settings()).await;
    (job, started.elapsed().as_secs_f64())
}

fn per_thousand(calls: &[String], rows: usize) -> BTreeMap<String, f64> {
    let mut by_op: BTreeMap<String, f64> = BTreeMap::new();
    for c in calls {
        *by_op.entry(c.clone()).or_default() += 1000.0 / rows as f64;
    }
    by_op
}

/// The floor: the same contact and identity items written with BatchWriteItem, no checks.
async fn floor(env: &TestEnv, account: &AccountId, file: &str) -> (usize, usize, f64) {
    let no = Some(Country::parse("NO").unwrap());
    let mut items_out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in file.lines().skip(1).enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let (Ok(email), Ok(mobile)) = (Email::parse(cells[2]), Mobile::parse(cells[3], no)) else {
            continue;
        };
        if !seen.insert(identity_hash("mobile", mobile.as_str())) {
            continue;
        }
        let mut c = Contact::empty(ContactId(format!("floor-{i}")), chrono::Utc::now());
        c.fields.first_name = Some(cells[0].into());
        c.fields.city = Some(cells[4].into());
        c.email = Some(email.clone());
        c.mobile = Some(mobile.clone());
        c.version = 1;
        c.owns = Owns {
            email: true,
            mobile: true,
            external_id: false,
        };
        items_out.push(items::contact_to_item(account, &c).unwrap());
        for key in owned_keys(&c) {
            items_out.push(items::identity_item(account, &key, &c.id));
        }
    }
    let contacts = items_out.len() / 3;
    env.calls.take();
    let started = Instant::now();
    let table = env.store.tables().contacts.clone();
    let chunks: Vec<Vec<items::Item>> = items_out.chunks(25 * 20).map(|c| c.to_vec()).collect();
    let store = env.store.clone();
    futures::future::join_all(chunks.into_iter().map(|chunk| {
        let (store, table) = (store.clone(), table.clone());
        async move { store.batch_put(&table, chunk).await.unwrap() }
    }))
    .await;
    (
        contacts,
        env.calls.take().len(),
        started.elapsed().as_secs_f64(),
    )
}

/// Split-only mode: the peak memory a split of `rows` rows adds (nothing consumes the chunks).
async fn split_only(rows: usize) {
    let (file, _) = intake_tests::generate_contacts(rows);
    let env = TestEnv::with_options(2000, 0).await;
    let (account, key) = env.account("NO").await;
    let id = env.upload_import(&key, file.as_bytes()).await;
    let s = env
        .call(
            "PUT",
            &format!("/v1/imports/{id}/settings"),
            &key,
            Some(settings()),
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.body);
    let app = env.apps["CsvImportFunction"].clone();
    let table = app.imports().unwrap().table.clone();
    assert!(app
        .store
        .transition(
            &table,
            &account,
            &id,
            &[intake_shared::import::job::JobStatus::Draft],
            intake_shared::import::job::JobStatus::Queued
        )
        .await
        .unwrap());
    let job = app.store.job(&table, &account, &id).await.unwrap().unwrap();
    drop(file);
    let before = peak_rss_mib();
    let started = Instant::now();
    let total = intake_shared::import::pipeline::split(&app, &job, &Default::default())
        .await
        .unwrap();
    println!("split of {total} rows ({rows} generated): {:.1} s, peak RSS {before:.0} MiB before, {:.0} MiB after", started.elapsed().as_secs_f64(), peak_rss_mib());
}

/// Uploads `parts` (each produced on demand, 8 MiB at most) as one multipart object, so a
/// hostile file of gigabytes never sits in the bench's memory.
async fn upload_parts(env: &TestEnv, key: &str, parts: impl Iterator<Item = Vec<u8>>) -> u64 {
    let s3 = &env.clients.s3;
    let bucket = env.bucket();
    let up = s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id.unwrap();
    let (mut done, mut total) = (Vec::new(), 0u64);
    for (i, part) in parts.enumerate() {
        total += part.len() as u64;
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(&bucket)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(part.into())
            .send()
            .await
            .unwrap();
        done.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag)
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    total
}

/// `hostile <case> [MiB]`: a hostile file through the wizard (preview, settings, start) and the
/// queues until the job fails or is refused; prints the outcome, the time from upload to the
/// answer, and the process's peak memory (the runner and its workers run in this process).
async fn hostile(case: &str, mib: usize) {
    let env = TestEnv::with_options(2000, 4).await;
    let (account, key) = env.account("NO").await;
    let r = env
        .call(
            "POST",
            "/v1/imports",
            &key,
            Some(json!({"list": {"new": "Hostile"}, "file_name": case})),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let app = env.apps["ImportApiFunction"].clone();
    let table = app.imports().unwrap().table.clone();
    let job = app.store.job(&table, &account, &id).await.unwrap().unwrap();
    let part = 8usize << 20;
    let parts = mib.div_ceil(8);
    let fixture = |name: &str| {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/files")
                .join(name),
        )
        .unwrap()
    };
    let bytes = match case {
        "long-line" => {
            let head = b"first_name,email\n".to_vec();
            let body = (0..parts).map(move |i| {
                let mut p = if i == 0 { head.clone() } else { Vec::new() };
                p.resize(p.len() + part, b'x');
                p
            });
            upload_parts(&env, &job.object_key, body).await
        }
        "unterminated-quote" => {
            let head = b"first_name,email\n\"Ola,ola@example.no\n".to_vec();
            let row = b"Kari,kari@example.no\n";
            let body = (0..parts).map(move |i| {
                let mut p = if i == 0 { head.clone() } else { Vec::new() };
                p.extend(row.repeat(part / row.len()));
                p
            });
            upload_parts(&env, &job.object_key, body).await
        }
        "bomb-honest" | "bomb-lying" | "pdf" => {
            let name = if case == "pdf" {
                "not-a-spreadsheet.pdf".to_owned()
            } else {
                format!("{case}.xlsx")
            };
            upload_parts(&env, &job.object_key, std::iter::once(fixture(&name))).await
        }
        other => panic!(
            "unknown case {other}: long-line, unterminated-quote, bomb-honest, bomb-lying, pdf"
        ),
    };
    let before = peak_rss_mib();
    let started = Instant::now();
    let preview = env
        .call("GET", &format!("/v1/imports/{id}/preview"), &key, None)
        .await;
    let answer = if preview.status != 200 {
        format!(
            "preview {}: {}",
            preview.status, preview.body["error"]["message"]
        )
    } else {
        let s = json!({
            "header_row": true, "mapping": {"first_name": "first_name", "email": "email"},
            "opt_in": {"email_marketing": {"value": "unknown"}},
            "primary_key": "email", "compliance_acknowledged": true
        });
        env.start_import(&key, &id, s).await;
        let job = env
            .wait_import_for(&key, &id, std::time::Duration::from_secs(600))
            .await;
        format!("job {}: {}", job["status"], job["failure_reasons"])
    };
    println!(
        "{case}: {:.1} MiB uploaded; {answer}; {:.2} s from preview to the answer; peak RSS {before:.0} MiB before, {:.0} MiB after",
        bytes as f64 / 1048576.0,
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
}

/// A minimal XLSX (inline strings; all-digit cells as numbers, as Excel stores phone numbers)
/// holding the rows of a simple generated CSV.
fn xlsx_of(csv: &str) -> Vec<u8> {
    use std::io::Write;
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, line) in csv.lines().enumerate() {
        sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for cell in line.split(',') {
            if !cell.is_empty() && cell.len() < 15 && cell.bytes().all(|b| b.is_ascii_digit()) {
                sheet.push_str(&format!("<c><v>{cell}</v></c>"));
            } else {
                let text = cell.replace('&', "&amp;").replace('<', "&lt;");
                sheet.push_str(&format!(r#"<c t="inlineStr"><is><t>{text}</t></is></c>"#));
            }
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let parts = [
        ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.to_owned()),
        ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_owned()),
        ("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_owned()),
        ("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_owned()),
        ("xl/worksheets/sheet1.xml", sheet),
    ];
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut buf);
    for (name, body) in parts {
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    w.finish().unwrap();
    buf.into_inner()
}

/// `xlsx [rows]`: the generated rows as a workbook, imported through the whole pipeline.
async fn xlsx(rows: usize) {
    let (file, people) = intake_tests::generate_contacts(rows);
    let book = xlsx_of(&file);
    drop(file);
    println!(
        "xlsx of {rows} rows: {:.1} MiB",
        book.len() as f64 / 1048576.0
    );
    let env = TestEnv::with_options(2000, 4).await;
    let (account, key) = env.account("NO").await;
    let before = peak_rss_mib();
    let (job, secs) = import(&env, &key, json!({"new": "Bench"}), &book).await;
    println!(
        "  {}: {secs:.1} s = {:.0} rows/s; created {} (expected {people}), contacts stored {}; peak RSS {before:.0} MiB before, {:.0} MiB after",
        job["status"],
        rows as f64 / secs,
        job["created"],
        env.contact_count(&account).await,
        peak_rss_mib()
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("xlsx") {
        let rows = std::env::args()
            .nth(2)
            .and_then(|r| r.parse().ok())
            .unwrap_or(100_000);
        return xlsx(rows).await;
    }
    if std::env::args().nth(1).as_deref() == Some("hostile") {
        let case = std::env::args()
            .nth(2)
            .unwrap_or_else(|| "long-line".into());
        let mib = std::env::args()
            .nth(3)
            .and_then(|m| m.parse().ok())
            .unwrap_or(2048);
        return hostile(&case, mib).await;
    }
    if std::env::args().nth(1).as_deref() == Some("split") {
        let rows = std::env::args()
            .nth(2)
            .and_then(|r| r.parse().ok())
            .unwrap_or(1_000_000);
        return split_only(rows).await;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rows = args.first().copied().unwrap_or(100_000);
    let chunk_rows = args.get(1).copied().unwrap_or(2000);
    let workers = args.get(2).copied().unwrap_or(4);
    let (file, people) = intake_tests::generate_contacts(rows);
    println!("rows {rows}, distinct valid people {people}, chunk rows {chunk_rows}, workers {workers}, file {:.1} MiB", file.len() as f64 / 1048576.0);
    let env = TestEnv::with_options(chunk_rows, workers).await;
    let worker = env.apps["CsvImportFunction"].store.clone();
    let (account, key) = env.account("NO").await;
    let rss_before = peak_rss_mib();
    env.calls.take();
    let units_before = worker.modelled_write_capacity();
    let (job, secs) = import(&env, &key, json!({"new": "Bench"}), file.as_bytes()).await;
    let calls = env.calls.take();
    let units = worker.modelled_write_capacity() - units_before;
    let contacts = env.contact_count(&account).await;
    println!(
        "\nfirst import: {} in {secs:.1} s = {:.0} rows/s",
        job["status"],
        rows as f64 / secs
    );
    println!("  created {} updated {} unchanged {} errors {} (rows_done {}); contacts stored {contacts} (expected {people})", job["created"], job["updated"], job["unchanged"], job["errors"], job["rows_done"]);
    println!(
        "  DynamoDB calls per 1,000 rows: {:.1} total {:?}",
        calls.len() as f64 * 1000.0 / rows as f64,
        per_thousand(&calls, rows)
    );
    let created = job["created"].as_f64().unwrap_or(1.0).max(1.0);
    println!("  write units (AWS pricing): {units:.0} = {:.2} per created contact (updates of duplicates included)", units / created);
    println!(
        "  peak RSS after the first import: {:.0} MiB",
        peak_rss_mib()
    );
    let list = json!({"id": job["list_id"]});
    let units_before = worker.modelled_write_capacity();
    let (again, secs2) = import(&env, &key, list, file.as_bytes()).await;
    let calls2 = env.calls.take();
    let writes2 = calls2.iter().filter(|c| *c == "TransactWriteItems").count();
    println!("\nre-import of the same file: {} in {secs2:.1} s = {:.0} rows/s; unchanged {}; TransactWriteItems {writes2}; write units {:.0}", again["status"], rows as f64 / secs2, again["unchanged"], worker.modelled_write_capacity() - units_before);
    println!(
        "  DynamoDB calls per 1,000 rows: {:.1} total {:?}",
        calls2.len() as f64 * 1000.0 / rows as f64,
        per_thousand(&calls2, rows)
    );
    println!("  peak RSS after the re-import: {:.0} MiB", peak_rss_mib());
    let floor_account = AccountId(format!("floor-{}", uuid::Uuid::new_v4().simple()));
    let (n, floor_calls, floor_secs) = floor(&env, &floor_account, &file).await;
    println!("\nfloor (bare BatchWriteItem of the same {n} contacts + 2 identity items each): {floor_secs:.1} s = {:.0} contacts/s, {floor_calls} calls", n as f64 / floor_secs);
    println!("  pipeline / floor time: {:.2}x", secs / floor_secs);
    println!("\npeak RSS of the whole process (generator, file, runner, 4 workers): {rss_before:.0} MiB before the import; after the floor loader (all its items in memory at once) {:.0} MiB", peak_rss_mib());
}

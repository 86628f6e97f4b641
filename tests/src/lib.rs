//! Test harness for the end-to-end tests: each `TestEnv` gets its own tables (created from
//! `template.yaml` on DynamoDB Local), the runner's router for in-process requests, and two SDK
//! interceptors — a wire-level call counter and a fault injector.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use bytes::Bytes;
use intake_local_runner::server::Router;
use intake_shared::model::AccountId;
use intake_shared::store::Store;
use serde_json::Value;

pub const OPERATOR_KEY: &str = "test-operator-key";

/// Every DynamoDB request attempt that went on the wire, by operation name.
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<String>>>);

impl CallLog {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    pub fn count(&self, op: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|o| *o == op).count()
    }

    pub fn total(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Calls that write (anything but reads).
    pub fn writes(&self) -> usize {
        let reads = [
            "GetItem",
            "BatchGetItem",
            "Query",
            "Scan",
            "DescribeTable",
            "ListTables",
        ];
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|o| !reads.contains(&o.as_str()))
            .count()
    }
}

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| m.name().to_owned())
        .unwrap_or_default()
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn modify_before_transmit(
        &self,
        _: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.lock().unwrap().push(operation(cfg));
        Ok(())
    }
}

/// A fault the injector can answer with instead of DynamoDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `TransactionCanceledException` with `TransactionConflict` (real DynamoDB under
    /// contention; DynamoDB Local never sends it). The transaction is NOT applied.
    TransactionConflict,
    /// A `ValidationException` nothing retries: the worker's step fails as if it died there.
    /// Nothing is applied.
    Crash,
    /// `ProvisionedThroughputExceededException` (the SDK retries it). Nothing is applied.
    Throttle,
    /// BatchGetItem only: an answer with every key left in `UnprocessedKeys`.
    Unprocessed,
}

#[derive(Debug, Clone)]
struct Injected(Fault, Option<serde_json::Value>);

impl Storable for Injected {
    type Storer = StoreReplace<Self>;
}

/// Per operation: the fault, calls still to let through, calls still to fail.
type FaultPlan = BTreeMap<String, (Fault, u32, u32, Option<String>)>;

/// Replaces the next `n` calls of an operation with a fault. The real request is turned into
/// a harmless `DescribeLimits` so nothing is applied, then the answer is swapped.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<FaultPlan>>);

impl Faults {
    pub fn fail_next(&self, op: &str, fault: Fault, n: u32) {
        self.fail_after(op, 0, fault, n);
    }

    /// Lets `skip` calls of `op` through, then fails the next `n`.
    pub fn fail_after(&self, op: &str, skip: u32, fault: Fault, n: u32) {
        self.0
            .lock()
            .unwrap()
            .insert(op.to_owned(), (fault, skip, n, None));
    }

    /// Fails the next `n` calls of `op` whose request body contains `needle` (others pass).
    pub fn fail_matching(&self, op: &str, needle: &str, fault: Fault, n: u32) {
        self.0
            .lock()
            .unwrap()
            .insert(op.to_owned(), (fault, 0, n, Some(needle.to_owned())));
    }

    pub fn remaining(&self, op: &str) -> u32 {
        self.0
            .lock()
            .unwrap()
            .get(op)
            .map(|(_, _, n, _)| *n)
            .unwrap_or(0)
    }
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "Faults"
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        let body = ctx.request().body().bytes().unwrap_or_default().to_vec();
        let fault = {
            let mut faults = self.0.lock().unwrap();
            match faults.get_mut(&op) {
                Some((_, _, _, Some(needle)))
                    if !body.windows(needle.len()).any(|w| w == needle.as_bytes()) =>
                {
                    None
                }
                Some((_, skip, _, _)) if *skip > 0 => {
                    *skip -= 1;
                    None
                }
                Some((fault, _, n, _)) if *n > 0 => {
                    *n -= 1;
                    Some(*fault)
                }
                _ => None,
            }
        };
        if let Some(fault) = fault {
            let keys = (fault == Fault::Unprocessed)
                .then(|| ctx.request().body().bytes())
                .flatten()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .map(|v| v["RequestItems"].clone());
            let req = ctx.request_mut();
            req.headers_mut()
                .insert("x-amz-target", "DynamoDB_20120810.DescribeLimits");
            req.headers_mut().insert("content-length", "2");
            *req.body_mut() = SdkBody::from("{}");
            cfg.interceptor_state().store_put(Injected(fault, keys));
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Injected(fault, keys)) = cfg.load::<Injected>().cloned() {
            let (status, body) = match fault {
                Fault::TransactionConflict => (400u16, r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#.to_owned()),
                Fault::Crash => (400, r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"injected: the worker died here"}"#.to_owned()),
                Fault::Throttle => (400, r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected throttling"}"#.to_owned()),
                Fault::Unprocessed => (200, serde_json::json!({"Responses": {}, "UnprocessedKeys": keys.unwrap_or_default()}).to_string()),
            };
            let resp = ctx.response_mut();
            *resp.status_mut() = status.try_into()?;
            resp.headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            *resp.body_mut() = SdkBody::from(body);
            cfg.interceptor_state().unset::<Injected>();
        }
        Ok(())
    }
}

/// One test's private system: its own tables, router and store.
pub struct TestEnv {
    pub router: Router,
    pub store: Store,
    pub calls: CallLog,
    pub faults: Faults,
    pub prefix: String,
    pub clients: intake_local_runner::Clients,
    /// Physical names of the template's resources (`UploadsBucket`, queue URLs, tables).
    pub refs: BTreeMap<String, String>,
    /// Message bodies the queue pollers delivered, by queue.
    pub delivered: intake_local_runner::stack::Delivered,
    /// Every function's app, by logical id.
    pub apps: BTreeMap<String, std::sync::Arc<intake_shared::App>>,
}

/// A response: status, JSON body (or `Null`), headers.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: http::HeaderMap,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_chunk_rows(2000).await
    }

    /// A system whose imports cut chunks of `chunk_rows` rows (small chunks exercise
    /// cross-chunk identity groups and parallel workers).
    pub async fn with_chunk_rows(chunk_rows: usize) -> Self {
        Self::with_options(chunk_rows, 4).await
    }

    /// A system with `workers` pollers per queue (0: nothing consumes the queues).
    pub async fn with_options(chunk_rows: usize, workers: usize) -> Self {
        capture_logs();
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await;
        let (calls, faults) = (CallLog::default(), Faults::default());
        let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(var("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"))
            .interceptor(calls.clone())
            .interceptor(faults.clone())
            .build();
        let moto = var("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5000");
        let clients = intake_local_runner::Clients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(conf),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .endpoint_url(&moto)
                    .force_path_style(true)
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&sdk)
                    .endpoint_url(var("AWS_ENDPOINT_URL_SQS", &moto))
                    .build(),
            ),
        };
        let prefix = format!("t{}-", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut params = intake_local_runner::params(OPERATOR_KEY);
        params.insert("ChunkRows".into(), chunk_rows.to_string());
        // Polling tests page while writing: the settle window is one second here.
        params.insert("PollSettleSeconds".into(), "1".into());
        let local = intake_local_runner::build(&clients, &repo_root().join("template.yaml"), &prefix, &params)
            .await
            .expect("local stack: start it with infra/local/test (DynamoDB Local on 127.0.0.1:8000, moto on 127.0.0.1:5000)");
        // The upsert function's store: its capacity meter counts the contact API's work.
        let store = local.apps["ApiUpsertFunction"].store.clone();
        if workers > 0 {
            local.start_pollers(workers);
        }
        calls.take();
        Self {
            router: local.router.clone(),
            store,
            calls,
            faults,
            prefix,
            clients,
            refs: local.refs.clone(),
            delivered: local.delivered.clone(),
            apps: local.apps.clone(),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut req = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.router.call(req.body(body.into()).unwrap()).await;
        let (parts, bytes) = resp.into_parts();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status: parts.status.as_u16(),
            body,
            headers: parts.headers,
        }
    }

    /// A JSON request with a bearer key.
    pub async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {key}");
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        self.send(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            bytes,
        )
        .await
    }

    /// A new account; returns its id and admin key.
    /// `PUT /v1/contacts` with `contact`, asserting success; the contact's id.
    pub async fn upsert(&self, key: &str, contact: Value) -> String {
        let body = serde_json::json!({ "contact": contact });
        let r = self.call("PUT", "/v1/contacts", key, Some(body)).await;
        assert!(r.status == 200 || r.status == 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn account(&self, default_country: &str) -> (AccountId, String) {
        let auth = format!("Bearer {OPERATOR_KEY}");
        let body =
            serde_json::json!({"name": "Test", "default_country": default_country}).to_string();
        let r = self
            .send("POST", "/v1/accounts", &[("authorization", &auth)], body)
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        (
            AccountId(r.body["account_id"].as_str().unwrap().to_owned()),
            r.body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Every contact and identity item of an account, attribute by attribute, sorted by key —
    /// without write-time stamps (`updated_at`, the change feed's `change_key`) and without
    /// consent events (an append-only history a revert does not take back).
    pub async fn snapshot(&self, account: &AccountId) -> Vec<BTreeMap<String, String>> {
        let mut rows: Vec<BTreeMap<String, String>> = self
            .store
            .scan_account(account)
            .await
            .unwrap()
            .into_iter()
            .filter(|item| {
                intake_shared::store::items::string_attr(item, "sk").is_none_or(|sk| {
                    !sk.starts_with(intake_shared::store::items::CONSENT_SK_PREFIX)
                })
            })
            .map(|item| {
                item.into_iter()
                    .map(|(k, v)| (k, canonical(&v).to_string()))
                    .filter(|(k, _)| k != "updated_at" && k != "change_key")
                    .collect()
            })
            .collect();
        rows.sort_by(|a, b| a.get("pk").cmp(&b.get("pk")));
        rows
    }

    /// Identity items (pk → owning contact id) of an account.
    pub async fn identities(&self, account: &AccountId) -> BTreeMap<String, String> {
        self.store
            .scan_account(account)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|item| {
                let pk = intake_shared::store::items::string_attr(&item, "pk")?;
                let owner = intake_shared::store::items::string_attr(&item, "contact_id")?;
                Some((pk, owner))
            })
            .collect()
    }

    /// Contact items of an account.
    pub async fn contact_count(&self, account: &AccountId) -> usize {
        let items = self.store.scan_account(account).await.unwrap();
        items
            .iter()
            .filter(|i| {
                intake_shared::store::items::string_attr(i, "sk").as_deref() == Some("CONTACT")
            })
            .count()
    }
}

/// Captures every log line of the test process as JSON in `target/e2e-logs.jsonl` (debug for
/// the project's crates), so `infra/local/scan_logs.py` can check that no email, phone number
/// or name ever reaches a log.
pub fn capture_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let path = std::env::var("INTAKE_TEST_LOG")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("target/e2e-logs.jsonl"));
        let Ok(file) = std::fs::File::create(&path) else {
            return;
        };
        let crates = [
            "intake_shared",
            "intake_api_upsert",
            "intake_accounts",
            "intake_authorizer",
            "intake_manual_create",
            "intake_form_submission",
            "intake_local_runner",
        ];
        let directives = crates
            .iter()
            .map(|c| format!("{c}=debug"))
            .collect::<Vec<_>>()
            .join(",");
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
                "info,{directives}"
            )))
            .with_writer(Mutex::new(file))
            .try_init();
    });
}

/// An attribute value as JSON with sorted map keys, so snapshots compare by value.
pub fn canonical(v: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => Value::String(s.clone()),
        A::N(n) => Value::String(format!("N:{n}")),
        A::Bool(b) => Value::Bool(*b),
        A::Null(_) => Value::Null,
        A::L(l) => Value::Array(l.iter().map(canonical).collect()),
        A::M(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), canonical(v))).collect()),
        other => Value::String(format!("{other:?}")),
    }
}

/// A created form: id and secret.
pub struct TestForm {
    pub id: String,
    pub secret: String,
}

impl TestEnv {
    /// A new key of `role` for the account of `admin_key`; returns (key id, key).
    pub async fn key(&self, admin_key: &str, role: &str) -> (String, String) {
        let r = self
            .call(
                "POST",
                "/v1/api-keys",
                admin_key,
                Some(serde_json::json!({"role": role, "name": "t"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn form(&self, admin_key: &str, list_id: Option<&str>) -> TestForm {
        let r = self
            .call(
                "POST",
                "/v1/forms",
                admin_key,
                Some(serde_json::json!({"name": "Signup", "list_id": list_id})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        TestForm {
            id: r.body["id"].as_str().unwrap().to_owned(),
            secret: r.body["secret"].as_str().unwrap().to_owned(),
        }
    }

    /// Posts a submission signed with `secret` at `now + skew` seconds.
    pub async fn submit(
        &self,
        form: &TestForm,
        content_type: &str,
        body: &str,
        delivery: Option<&str>,
        skew: i64,
    ) -> Reply {
        let t = chrono::Utc::now().timestamp() + skew;
        let sig = format!(
            "t={t},v1={}",
            intake_shared::forms::sign(&form.secret, t, body.as_bytes())
        );
        let mut headers = vec![
            ("content-type", content_type),
            ("intake-signature", sig.as_str()),
        ];
        if let Some(d) = delivery {
            headers.push(("intake-delivery-id", d));
        }
        self.send(
            "POST",
            &format!("/v1/forms/{}/submissions", form.id),
            &headers,
            body.to_owned(),
        )
        .await
    }
}

/// PUTs `body` to a presigned URL over plain HTTP/1.1 (what a browser upload does); returns
/// the status code.
pub async fn http_put(url: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("local URLs are http");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

impl TestEnv {
    pub fn bucket(&self) -> String {
        self.refs["UploadsBucket"].clone()
    }

    /// Creates an import into a new list and uploads `file` through its presigned URL;
    /// returns the import id.
    pub async fn upload_import(&self, key: &str, file: &[u8]) -> String {
        self.upload_import_to(key, serde_json::json!({"new": "Customers"}), file)
            .await
    }

    /// As `upload_import`, into the list `list` (`{"id": …}` or `{"new": …}`).
    pub async fn upload_import_to(&self, key: &str, list: Value, file: &[u8]) -> String {
        let body = serde_json::json!({"list": list, "file_name": "contacts.csv"});
        let r = self.call("POST", "/v1/imports", key, Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(
            http_put(r.body["upload_url"].as_str().unwrap(), file).await,
            200
        );
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Saves settings (asserting 200) and starts the import (asserting 202).
    pub async fn start_import(&self, key: &str, id: &str, settings: Value) {
        let s = self
            .call(
                "PUT",
                &format!("/v1/imports/{id}/settings"),
                key,
                Some(settings),
            )
            .await;
        assert_eq!(s.status, 200, "{}", s.body);
        let start = self
            .call("POST", &format!("/v1/imports/{id}/start"), key, None)
            .await;
        assert_eq!(start.status, 202, "{}", start.body);
    }

    /// Saves settings, starts, and waits (60 s at most) for the import to finish.
    pub async fn run_import(&self, key: &str, id: &str, settings: Value) -> Value {
        self.start_import(key, id, settings).await;
        self.wait_import(key, id).await
    }

    /// As `run_import`, waiting up to an hour (benchmarks).
    pub async fn run_import_patient(&self, key: &str, id: &str, settings: Value) -> Value {
        self.start_import(key, id, settings).await;
        self.wait_import_for(key, id, std::time::Duration::from_secs(3600))
            .await
    }

    /// Polls an import until it is finished (60 s at most).
    pub async fn wait_import(&self, key: &str, id: &str) -> Value {
        self.wait_import_for(key, id, std::time::Duration::from_secs(60))
            .await
    }

    pub async fn wait_import_for(&self, key: &str, id: &str, limit: std::time::Duration) -> Value {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            let r = self
                .call("GET", &format!("/v1/imports/{id}"), key, None)
                .await;
            if ["completed", "completed_with_errors", "failed", "reverted"]
                .contains(&r.body["status"].as_str().unwrap_or(""))
            {
                return r.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("import {id} did not finish within {limit:?}");
    }

    /// Waits (10 s at most) for the newest import listed under a tab (`draft`, `completed`, `failed`).
    pub async fn first_in_tab(&self, key: &str, tab: &str) -> Value {
        for _ in 0..100 {
            let list = self
                .call("GET", &format!("/v1/imports?status={tab}"), key, None)
                .await
                .body;
            if let Some(job) = list["imports"].as_array().and_then(|a| a.first()) {
                return job.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Value::Null
    }

    /// Every contact of the account, by a scan (tests only).
    pub async fn contacts(&self, account: &AccountId) -> Vec<intake_shared::model::Contact> {
        let items = self.store.scan_account(account).await.unwrap();
        items
            .into_iter()
            .filter(|i| {
                intake_shared::store::items::string_attr(i, "sk").as_deref() == Some("CONTACT")
            })
            .map(|i| intake_shared::store::items::contact_from_item(i).unwrap())
            .collect()
    }
}

/// A deterministic generator (xorshift), so runs compare.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The file and how many distinct valid people it holds.
/// A realistic contacts file of `rows` rows: Norwegian mobiles in three spellings, 10%
/// duplicates of earlier people (spread anywhere, so across chunks), ~1% malformed emails.
/// Returns the file and how many distinct valid people it holds (the contacts an import makes).
pub fn generate_contacts(rows: usize) -> (String, usize) {
    let mut rng = Rng(0x5eed_cafe);
    let first = [
        "Ola", "Kari", "Per", "Åse", "Jan", "Ingrid", "Lars", "Marit", "Jonas", "Sofie",
    ];
    let cities = [
        "Oslo",
        "Bergen",
        "Trondheim",
        "Tromsø",
        "Stavanger",
        "Drammen",
    ];
    let mut out = String::from("First name,Last name,E-mail,Mobile,City,Newsletter\n");
    let mut people: Vec<u64> = Vec::new();
    for i in 0..rows {
        let dup = i > 100 && rng.below(10) == 0;
        let person = if dup {
            people[rng.below(people.len() as u64) as usize]
        } else {
            40_000_000 + i as u64
        };
        let digits = format!("{person:08}");
        let mobile = match rng.below(3) {
            0 => format!("+47 {} {} {}", &digits[..3], &digits[3..5], &digits[5..]),
            1 => format!("0047 {digits}"),
            _ => digits.clone(),
        };
        // A malformed row is never duplicated later, so every valid person is one contact.
        let bad = !dup && rng.below(100) == 0;
        if !dup && !bad {
            people.push(person);
        }
        let email = if bad {
            format!("person{person}.example.no")
        } else {
            format!("person{person}@example.no")
        };
        let name = first[rng.below(first.len() as u64) as usize];
        let city = cities[rng.below(cities.len() as u64) as usize];
        let news = if rng.below(2) == 0 { "yes" } else { "no" };
        out.push_str(&format!("{name},Nordmann,{email},{mobile},{city},{news}\n"));
    }
    (out, people.len())
}

/// Wizard settings for `generate_contacts` files.
pub fn generated_settings() -> Value {
    serde_json::json!({
        "mapping": {"First name": "first_name", "Last name": "last_name", "E-mail": "email", "Mobile": "mobile", "City": "city"},
        "skip_unmapped": true,
        "opt_in": {"email_marketing": {"column": "Newsletter"}, "sms_marketing": {"value": "unknown"}},
        "master": "file", "primary_key": "mobile", "secondary_key": "email", "compliance_acknowledged": true
    })
}

//! `Idempotency-Key` (API.md): the same key and body within 24 h return the first answer; the
//! same key with another body is a 409; a retry while the first is still running is a 409 too.
//! Answers with 5xx are not remembered, so a retry can succeed.

use std::future::Future;

use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};

use crate::http::{body_bytes, header, json, ApiError};
use crate::model::AccountId;
use crate::store::settings::{IdempotencyClaim, IdempotencyRecord};
use crate::store::Store;

pub const HEADER: &str = "idempotency-key";
const KEY_MAX_LEN: usize = 255;

fn request_hash(req: &Request) -> Result<String, ApiError> {
    let mut h = Sha256::new();
    h.update(req.method().as_str().as_bytes());
    h.update(b" ");
    h.update(req.uri().path().as_bytes());
    h.update(b"\n");
    h.update(body_bytes(req)?);
    Ok(hex::encode(h.finalize()))
}

fn response_body(resp: &Response<Body>) -> String {
    match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// Runs `handler` at most once per (account, `Idempotency-Key`); replays its answer to retries.
pub async fn guard<F, Fut>(
    store: &Store,
    account: &AccountId,
    req: &Request,
    now: i64,
    handler: F,
) -> Result<Response<Body>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    guard_key(store, account, header(req, HEADER), req, now, handler).await
}

/// As `guard`, with the key given (forms use their delivery id).
pub async fn guard_key<F, Fut>(
    store: &Store,
    account: &AccountId,
    key: Option<&str>,
    req: &Request,
    now: i64,
    handler: F,
) -> Result<Response<Body>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else {
        return Ok(handler().await);
    };
    if key.len() > KEY_MAX_LEN {
        return Err(ApiError::new(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key is over 255 characters",
        ));
    }
    let hash = request_hash(req)?;
    match store.claim_idempotency(account, key, &hash, now).await? {
        IdempotencyClaim::Existing(old) if old.request_hash != hash => Err(ApiError::new(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request",
        )),
        IdempotencyClaim::Existing(IdempotencyRecord {
            status: Some(status),
            body,
            ..
        }) => {
            let value: serde_json::Value =
                serde_json::from_str(body.as_deref().unwrap_or("null")).unwrap_or_default();
            let mut resp = json(status, &value);
            resp.headers_mut().insert(
                "idempotent-replayed",
                http::HeaderValue::from_static("true"),
            );
            Ok(resp)
        }
        IdempotencyClaim::Existing(_) => Err(ApiError::new(
            409,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being processed",
        )),
        IdempotencyClaim::Claimed => {
            let resp = handler().await;
            let status = resp.status().as_u16();
            if status >= 500 {
                store.release_idempotency(account, key).await?;
            } else {
                let record = IdempotencyRecord {
                    request_hash: hash,
                    status: Some(status),
                    body: Some(response_body(&resp)),
                    lease_until: now,
                    ttl: now + 24 * 3600,
                };
                store.finish_idempotency(account, key, &record).await?;
            }
            Ok(resp)
        }
    }
}

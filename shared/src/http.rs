//! The one place that maps errors to HTTP: 400 malformed, 401, 403, 404, 409, 413, 422 invalid
//! value, 500 opaque (logged once with its chain). Also JSON body parsing with a size limit and
//! request helpers shared by every HTTP function.

use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::{AuthError, Principal};
use crate::incoming::InputError;
use crate::ingest::IngestError;
use crate::store::settings::Role;
use crate::store::StoreError;

/// Largest request body any JSON route accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An error response: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
    /// Every problem when there are several (settings validation).
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            field: None,
            details: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_found() -> Self {
        Self::new(404, "not_found", "no such resource")
    }

    pub fn forbidden() -> Self {
        Self::new(403, "forbidden", "this key's role may not do that")
    }

    /// An opaque 500; the cause is logged once, whole, and never sent.
    pub fn internal(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(500, "internal", "internal error")
    }

    pub fn body(&self) -> serde_json::Value {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(field) = &self.field {
            error["field"] = serde_json::Value::String(field.clone());
        }
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        serde_json::json!({ "error": error })
    }

    pub fn into_response(self) -> Response<Body> {
        json(self.status, &self.body())
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        Self::new(422, e.code, e.message).with_field(e.field)
    }
}

impl From<crate::normalize::ValidationError> for ApiError {
    fn from(e: crate::normalize::ValidationError) -> Self {
        InputError::from(e).into()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::Invalid => {
                Self::new(401, "unauthorized", e.to_string())
            }
            AuthError::Store(s) => Self::internal(&s),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(&e)
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Rule(r) => Self::new(422, r.code(), r.to_string()),
            IngestError::Contention => Self::new(409, "write_conflict", e.to_string()),
            other => Self::internal(&other),
        }
    }
}

/// A JSON response, always `application/json`.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Binary(body))
        .unwrap_or_default()
}

/// The raw body bytes, refusing bodies over `MAX_BODY_BYTES` (413).
pub fn body_bytes(req: &Request) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "too_large",
            format!("body is over {MAX_BODY_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// Parses a JSON body (400 when malformed, 413 when too large).
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes = body_bytes(req)?;
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            400,
            "malformed_json",
            format!("body is not valid JSON for this route: {e}"),
        )
    })
}

pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters().first(name).map(str::to_owned)
}

pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters().first(name).map(str::to_owned)
}

/// The caller, as the authorizer established it (401 when it did not).
pub fn principal(req: &Request) -> Result<Principal, ApiError> {
    let fields = match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().map(|a| &a.fields)
        }
        _ => None,
    };
    let fields = fields.ok_or_else(|| ApiError::from(AuthError::Missing))?;
    crate::auth::principal_from_context(fields).map_err(ApiError::from)
}

/// Refuses non-admin keys (R-OPS-1).
pub fn require_admin(p: &Principal) -> Result<(), ApiError> {
    match p.role {
        Role::Admin => Ok(()),
        Role::Member => Err(ApiError::forbidden()),
    }
}

/// Runs a handler body and turns its error into a response.
pub fn respond(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(ApiError::into_response)
}

/// The API Gateway route key (`"PUT /v1/contacts"`) the request came in on; the local runner
/// sets it exactly as API Gateway does.
pub fn route_key(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        lambda_http::request::RequestContext::ApiGatewayV2(ctx) => ctx.route_key.clone(),
        _ => None,
    }
}

/// The `main` of every HTTP Lambda: telemetry, configuration and SDK clients once per cold
/// start, then each request to `handle`.
pub async fn run_lambda<F, Fut>(handle: F) -> Result<(), lambda_http::Error>
where
    F: Fn(std::sync::Arc<crate::App>, Request) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Response<Body>> + Send,
{
    crate::telemetry::init();
    let config = crate::config::Config::from_env()?;
    let app = std::sync::Arc::new(crate::App::new(&crate::config::aws().await, config));
    let handle = &handle;
    lambda_http::run(lambda_http::service_fn(move |req: Request| {
        let app = app.clone();
        async move { Ok::<_, lambda_http::Error>(handle(app, req).await) }
    }))
    .await
}

/// Opaque page cursors: a store position, hex-encoded behind a version tag so clients treat it
/// as a token. Positions are read back only under the caller's own account keys.
pub mod cursor {
    use super::ApiError;

    const TAG: &str = "c1|";

    pub fn encode(position: &str) -> String {
        hex::encode(format!("{TAG}{position}"))
    }

    /// The position of a cursor, or 400 `invalid_cursor`.
    pub fn decode(raw: &str) -> Result<String, ApiError> {
        decode_under(raw, "")
    }

    /// The position of a cursor that must start with `prefix` (a page of one kind of record),
    /// or 400 `invalid_cursor`.
    pub fn decode_under(raw: &str, prefix: &str) -> Result<String, ApiError> {
        let bad = || {
            ApiError::new(
                400,
                "invalid_cursor",
                "the cursor is not one this API gave out",
            )
        };
        let bytes = hex::decode(raw.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        text.strip_prefix(TAG)
            .filter(|p| !p.is_empty() && p.len() <= 400 && p.starts_with(prefix))
            .map(str::to_owned)
            .ok_or_else(bad)
    }

    /// A page size from `limit` (default `default`, 1..=`max`), or 400 `invalid_limit`.
    pub fn limit(raw: Option<String>, default: usize, max: usize) -> Result<usize, ApiError> {
        match raw {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "invalid_limit",
                        format!("limit is a number from 1 to {max}"),
                    )
                    .with_field("limit")
                }),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn cursor_round_trips_and_refuses_foreign_tokens_when_decoded() {
            let c = encode("2026-11-22T09:00:00.000001Z#c_1");
            assert_eq!(decode(&c).unwrap(), "2026-11-22T09:00:00.000001Z#c_1");
            for bad in ["zz", "", &hex::encode("other|x"), &hex::encode("c1|")] {
                assert_eq!(decode(bad).unwrap_err().code, "invalid_cursor", "{bad}");
            }
        }
    }
}

//! The local API Gateway: matches `METHOD /path` against the template's routes (literal
//! segments before `{params}`), builds the same `lambda_http::Request` API Gateway would
//! (path and query parameters, route key), and calls the function's handler.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use tokio::net::TcpListener;

use crate::functions::{Authorizer, Handler};
use crate::template::Route;

/// API Gateway's payload limit.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

enum Segment {
    Literal(String),
    Param(String),
}

struct Entry {
    route: Route,
    segments: Vec<Segment>,
    handler: Handler,
    authorizer: Option<Authorizer>,
}

/// The client address of a request, as API Gateway reports it in `sourceIp`.
#[derive(Debug, Clone)]
pub struct SourceIp(pub String);

/// Routes requests to handlers.
#[derive(Clone)]
pub struct Router {
    entries: Arc<Vec<Entry>>,
}

fn segments(path: &str) -> Vec<Segment> {
    path.trim_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.trim_end_matches('+').to_owned()),
                None => Segment::Literal(s.to_owned()),
            },
        )
        .collect()
}

fn decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl Router {
    pub fn new(routes: Vec<(Route, Handler, Option<Authorizer>)>) -> Self {
        let mut entries: Vec<Entry> = routes
            .into_iter()
            .map(|(route, handler, authorizer)| Entry {
                segments: segments(&route.path),
                route,
                handler,
                authorizer,
            })
            .collect();
        // Most specific first: more literal segments win, as in API Gateway.
        entries.sort_by_key(|e| {
            std::cmp::Reverse(
                e.segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count(),
            )
        });
        Self {
            entries: Arc::new(entries),
        }
    }

    fn find(&self, method: &str, path: &str) -> Option<(&Entry, HashMap<String, String>)> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.entries
            .iter()
            .filter(|e| e.route.method == method && e.segments.len() == parts.len())
            .find_map(|e| {
                let mut params = HashMap::new();
                for (seg, part) in e.segments.iter().zip(&parts) {
                    match seg {
                        Segment::Literal(l) if l == part => {}
                        Segment::Param(name) if !part.is_empty() => {
                            params.insert(name.clone(), decode(part));
                        }
                        _ => return None,
                    }
                }
                Some((e, params))
            })
    }

    /// Serves one HTTP request from the socket.
    pub async fn dispatch(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        peer: std::net::SocketAddr,
    ) -> hyper::Response<Full<Bytes>> {
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(SourceIp(peer.ip().to_string()));
        let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                return plain(
                    413,
                    r#"{"error":{"code":"too_large","message":"body is over the API Gateway limit"}}"#,
                )
            }
        };
        let resp = self.call(http::Request::from_parts(parts, bytes)).await;
        let (parts, body) = resp.into_parts();
        hyper::Response::from_parts(parts, Full::new(body))
    }

    /// Routes one request the way API Gateway would and runs its handler (also used by tests,
    /// in process).
    pub async fn call(&self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        let started = Instant::now();
        let (parts, bytes) = req.into_parts();
        let Some((entry, params)) = self.find(parts.method.as_str(), parts.uri.path()) else {
            return plain(
                404,
                r#"{"error":{"code":"not_found","message":"no such route"}}"#,
            )
            .map(|_| Bytes::from_static(NOT_FOUND));
        };
        if bytes.len() > MAX_BODY_BYTES {
            return http::Response::builder()
                .status(413)
                .body(Bytes::from_static(TOO_LARGE))
                .unwrap_or_default();
        }
        let mut query: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
            query
                .entry(k.into_owned())
                .or_default()
                .push(v.into_owned());
        }
        let mut ctx =
            lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default();
        ctx.route_key = Some(entry.route.key());
        ctx.http.method = parts.method.clone();
        ctx.http.path = Some(parts.uri.path().to_owned());
        ctx.http.source_ip = Some(
            parts
                .extensions
                .get::<SourceIp>()
                .map(|s| s.0.clone())
                .unwrap_or_else(|| "127.0.0.1".into()),
        );
        if let Some(authorize) = &entry.authorizer {
            let header = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match authorize(header).await {
                Ok(answer) if answer.is_authorized => {
                    let mut auth =
                        lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizer::default(
                        );
                    if let serde_json::Value::Object(fields) = answer.context {
                        auth.fields = fields.into_iter().collect();
                    }
                    ctx.authorizer = Some(auth);
                }
                Ok(_) => {
                    return http::Response::builder()
                        .status(403)
                        .header("content-type", "application/json")
                        .body(Bytes::from_static(br#"{"message":"Forbidden"}"#))
                        .unwrap_or_default()
                }
                Err(e) => {
                    tracing::error!(error = %e, "authorizer failed");
                    return http::Response::builder()
                        .status(500)
                        .header("content-type", "application/json")
                        .body(Bytes::from_static(
                            br#"{"message":"Internal Server Error"}"#,
                        ))
                        .unwrap_or_default();
                }
            }
        }
        let body = if bytes.is_empty() {
            Body::Empty
        } else {
            Body::Binary(bytes.to_vec())
        };
        let req = http::Request::from_parts(parts, body)
            .with_path_parameters(params)
            .with_query_string_parameters(query)
            .with_request_context(RequestContext::ApiGatewayV2(ctx));
        let resp = (entry.handler)(req).await;
        tracing::info!(route = %entry.route.key(), status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
        resp.map(|body| match body {
            Body::Text(t) => Bytes::from(t),
            Body::Binary(b) => Bytes::from(b),
            _ => Bytes::new(),
        })
    }
}

const NOT_FOUND: &[u8] = br#"{"error":{"code":"not_found","message":"no such route"}}"#;
const TOO_LARGE: &[u8] =
    br#"{"error":{"code":"too_large","message":"body is over the API Gateway limit"}}"#;

fn plain(status: u16, body: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Accepts connections forever.
pub async fn serve(listener: TcpListener, router: Router) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let router = router.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let router = router.clone();
                async move { Ok::<_, Infallible>(router.dispatch(req, peer).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "connection closed");
            }
        });
    }
}

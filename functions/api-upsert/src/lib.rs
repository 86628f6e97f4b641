//! The public contact API (R-API-1, R-API-2): upsert one, batch upsert up to 100, read one,
//! look up every contact carrying an email, mobile or external id, and poll changes (`poll`). Every call is scoped to the key's
//! account; matching and writing happen in `intake_shared::ingest`.

use chrono::Utc;
use intake_shared::auth::Principal;
use intake_shared::http::{
    json, json_body, path_param, principal, query_param, require_admin, respond, route_key,
    ApiError,
};
use intake_shared::incoming::{ContactInput, Incoming};
use intake_shared::ingest::{self, Applied, Policy};
use intake_shared::model::{ContactId, ContactView};
use intake_shared::normalize::{Country, Email, ExternalId, Mobile};
use intake_shared::rules::{IdentityKey, Master, MatchKeys, Matching};
use intake_shared::store::TxOutcome;
use intake_shared::{idempotency, App};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

pub mod poll;

/// Most contacts in one batch request.
pub const BATCH_MAX: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertBody {
    contact: ContactInput,
    #[serde(default, rename = "match")]
    keys: Option<MatchKeys>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    contacts: Vec<serde_json::Value>,
    #[serde(default, rename = "match")]
    keys: Option<MatchKeys>,
}

/// Entry point for every route of this function.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    respond(route(app, &req).await)
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let caller = principal(req)?;
    let route = route_key(req);
    match route.as_deref() {
        Some(write @ ("PUT /v1/contacts" | "POST /v1/contacts:batchUpsert")) => {
            let now = Utc::now().timestamp();
            idempotency::guard(&app.store, &caller.account_id, req, now, || async {
                respond(match write {
                    "PUT /v1/contacts" => upsert(app, &caller, req).await,
                    _ => batch(app, &caller, req).await,
                })
            })
            .await
        }
        Some("GET /v1/contacts/{id}") => get_one(app, &caller, req).await,
        Some("DELETE /v1/contacts/{id}") => delete_one(app, &caller, req).await,
        Some("GET /v1/contacts") if poll::is_poll(req) => poll::poll(app, &caller, req).await,
        Some("GET /v1/contacts") => lookup(app, &caller, req).await,
        Some("GET /v1/contacts/{id}/consent-history") => {
            poll::consent_history(app, &caller, req).await
        }
        _ => Err(ApiError::not_found()),
    }
}

async fn default_country(app: &App, p: &Principal) -> Result<Option<Country>, ApiError> {
    let account = app.store.account(&p.account_id).await?;
    Ok(account.and_then(|a| a.settings.country()))
}

fn policy(keys: Option<MatchKeys>) -> Result<Policy, ApiError> {
    let keys = keys.unwrap_or_default();
    if keys.secondary == Some(keys.primary) {
        return Err(ApiError::new(
            422,
            "invalid_match",
            "secondary key must differ from the primary key",
        )
        .with_field("match"));
    }
    Ok(Policy {
        matching: Matching::Keys(keys),
        merge: ingest::context(Utc::now(), "api", None, Master::Incoming),
        default_country: None,
        undo: None,
    })
}

fn new_id() -> ContactId {
    ContactId(uuid::Uuid::new_v4().to_string())
}

fn outcome_body(a: &Applied) -> serde_json::Value {
    json!({"id": a.contact.id, "outcome": a.outcome, "matched_on": a.matched_on, "contact": ContactView::from(&a.contact)})
}

async fn upsert(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: UpsertBody = json_body(req)?;
    let policy = policy(body.keys)?;
    let incoming = body.contact.into_incoming(default_country(app, p).await?)?;
    let applied =
        ingest::upsert_one(&app.store, &p.account_id, incoming, new_id(), &policy).await?;
    let status = if applied.outcome == ingest::Outcome::Created {
        201
    } else {
        200
    };
    Ok(json(status, &outcome_body(&applied)))
}

async fn batch(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: BatchBody = json_body(req)?;
    if body.contacts.len() > BATCH_MAX {
        return Err(ApiError::new(
            413,
            "too_many_contacts",
            format!("a batch holds at most {BATCH_MAX} contacts"),
        ));
    }
    let policy = policy(body.keys)?;
    let country = default_country(app, p).await?;
    let mut results: Vec<serde_json::Value> = vec![serde_json::Value::Null; body.contacts.len()];
    let (mut valid, mut at) = (Vec::<Incoming>::new(), Vec::new());
    for (index, raw) in body.contacts.into_iter().enumerate() {
        let parsed = serde_json::from_value::<ContactInput>(raw)
            .map_err(|e| ApiError::new(400, "malformed_contact", e.to_string()))
            .and_then(|c| c.into_incoming(country).map_err(ApiError::from));
        match parsed {
            Ok(incoming) => {
                valid.push(incoming);
                at.push(index);
            }
            Err(e) => results[index] = json!({"index": index, "error": e.body()["error"]}),
        }
    }
    let ids: Vec<ContactId> = valid.iter().map(|_| new_id()).collect();
    let (applied, stats) =
        ingest::upsert_many(&app.store, &p.account_id, &valid, &ids, &policy).await;
    tracing::info!(account_id = %p.account_id, records = valid.len(), lookups = stats.lookups, transactions = stats.transactions, "batch upsert");
    for (index, result) in at.into_iter().zip(applied) {
        results[index] = match result {
            Ok(a) => {
                json!({"index": index, "id": a.contact.id, "outcome": a.outcome, "matched_on": a.matched_on})
            }
            Err(e) => json!({"index": index, "error": ApiError::from(e).body()["error"]}),
        };
    }
    Ok(json(200, &json!({ "results": results })))
}

async fn get_one(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = path_param(req, "id").ok_or_else(ApiError::not_found)?;
    let contact = app
        .store
        .contact(&p.account_id, &ContactId(id))
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(json(200, &ContactView::from(&contact)))
}

/// `DELETE /v1/contacts/{id}` (admin): the contact, the identity items it owns and its
/// consent history go; a tombstone tells pollers. A write racing the delete is re-read.
async fn delete_one(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let id = ContactId(path_param(req, "id").ok_or_else(ApiError::not_found)?);
    for _ in 0..3 {
        let Some(contact) = app.store.contact(&p.account_id, &id).await? else {
            return Err(ApiError::not_found());
        };
        if app.store.delete_contact(&p.account_id, &contact).await? == TxOutcome::Committed {
            tracing::info!(account_id = %p.account_id, contact_id = %id, "contact deleted");
            return Response::builder()
                .status(204)
                .body(Body::Empty)
                .map_err(|e| ApiError::internal(&e));
        }
    }
    Err(ApiError::new(
        409,
        "conflict",
        "the contact kept changing; try again",
    ))
}

async fn lookup(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let given = (
        query_param(req, "email"),
        query_param(req, "mobile"),
        query_param(req, "external_id"),
    );
    let key = match given {
        (Some(e), None, None) => IdentityKey::Email(
            Email::parse(&e)
                .map_err(ApiError::from)?
                .normalized()
                .to_owned(),
        ),
        (None, Some(m), None) => {
            let mobile =
                Mobile::parse(&m, default_country(app, p).await?).map_err(ApiError::from)?;
            IdentityKey::Mobile(mobile.as_str().to_owned())
        }
        (None, None, Some(x)) => IdentityKey::ExternalId(
            ExternalId::parse(&x)
                .map_err(ApiError::from)?
                .as_str()
                .into(),
        ),
        _ => {
            return Err(ApiError::new(
                400,
                "missing_query",
                "give exactly one of email, mobile or external_id (or updated_since/cursor to poll changes)",
            ))
        }
    };
    let found = app.store.contacts_carrying(&p.account_id, &key).await?;
    let views: Vec<ContactView> = found.iter().map(ContactView::from).collect();
    Ok(json(200, &json!({ "contacts": views })))
}

//! Manual creation (`POST /v1/contacts`, R-MAN): no duplicate check — the contact is created as
//! entered; `{}` gives a contact holding only the account's default country (R-MAN-2).
//!
//! Identity items: the new contact claims each email/mobile no one owns yet. A value another
//! contact already owns stays with that contact (the first carrier keeps it), so matching by
//! that value keeps finding the same contact it found before (`rules::plan_identity`).

use chrono::Utc;
use intake_shared::http::{json, json_body, principal, respond, route_key, ApiError};
use intake_shared::incoming::ContactInput;
use intake_shared::ingest::{self, Policy};
use intake_shared::model::{ContactId, ContactView};
use intake_shared::rules::{Master, Matching};
use intake_shared::App;
use lambda_http::{Body, Request, Response};
use serde_json::json;

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    respond(route(app, &req).await)
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let p = principal(req)?;
    if route_key(req).as_deref() != Some("POST /v1/contacts") {
        return Err(ApiError::not_found());
    }
    let input: ContactInput = json_body(req)?;
    let settings = app
        .store
        .account(&p.account_id)
        .await?
        .ok_or_else(ApiError::not_found)?
        .settings;
    let incoming = input.into_incoming(settings.country())?;
    let policy = Policy {
        matching: Matching::Never,
        merge: ingest::context(Utc::now(), "manual", None, Master::Incoming),
        default_country: settings.default_country.clone(),
        undo: None,
    };
    let id = ContactId(uuid::Uuid::new_v4().to_string());
    let applied = ingest::upsert_one(&app.store, &p.account_id, incoming, id, &policy).await?;
    tracing::info!(account_id = %p.account_id, contact_id = %applied.contact.id, "manual contact created");
    Ok(json(
        201,
        &json!({"id": applied.contact.id, "contact": ContactView::from(&applied.contact)}),
    ))
}

//! Signup forms (R-FORM-1..4): admins create forms and SMS links; the hosted page posts
//! submissions, signed with the form's secret. Matching is the form rule (mobile first); a valid
//! SMS token stands for the mobile it was issued for; consent is recorded with the form as its
//! source and the submitter's IP as evidence. `Intake-Delivery-Id` makes replays write once.

use chrono::{Duration, Utc};
use intake_shared::auth::{hash_key, Principal};
use intake_shared::forms::{self, Form, FormToken, SignatureError, SMS_LINKS_MAX, TOKEN_TTL_DAYS};
use intake_shared::http::{
    body_bytes, header, json, json_body, path_param, principal, require_admin, respond, route_key,
    ApiError,
};
use intake_shared::incoming::{clean_text, InputError};
use intake_shared::ingest::{self, Policy};
use intake_shared::model::ContactId;
use intake_shared::normalize::Mobile;
use intake_shared::rules::{Master, Matching};
use intake_shared::{idempotency, App};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::json;

/// Where hosted forms live; an SMS link is `<base>/<form id>?t=<token>`.
const FORMS_BASE_URL: &str = "https://forms.intake.example/f";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewForm {
    name: String,
    list_id: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsLinks {
    mobiles: Vec<String>,
}

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    respond(route(app, &req).await)
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    match route_key(req).as_deref() {
        Some("POST /v1/forms/{id}/submissions") => submit(app, req).await,
        Some("POST /v1/forms") => create_form(app, &principal(req)?, req).await,
        Some("POST /v1/forms/{id}/sms-links") => sms_links(app, &principal(req)?, req).await,
        _ => Err(ApiError::not_found()),
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

async fn create_form(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let body: NewForm = json_body(req)?;
    let name = clean_text("name", Some(body.name), 200)?
        .ok_or_else(|| ApiError::new(422, "missing_name", "name is required").with_field("name"))?;
    let form = Form {
        form_id: format!("frm_{}", random_hex(12)),
        account_id: p.account_id.clone(),
        name,
        list_id: clean_text("list_id", body.list_id, 200)?,
        fields: body.fields,
        secret: random_hex(32),
        created_at: Utc::now(),
    };
    app.store.put_form(&form).await?;
    Ok(json(
        201,
        &json!({"id": form.form_id, "secret": form.secret, "name": form.name, "list_id": form.list_id}),
    ))
}

/// The caller's form, or 404 (another account's form is not found, never shown).
async fn own_form(
    app: &App,
    account: &intake_shared::model::AccountId,
    req: &Request,
) -> Result<Form, ApiError> {
    let id = path_param(req, "id").ok_or_else(ApiError::not_found)?;
    app.store
        .form(&id)
        .await?
        .filter(|f| &f.account_id == account)
        .ok_or_else(ApiError::not_found)
}

async fn sms_links(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let form = own_form(app, &p.account_id, req).await?;
    let body: SmsLinks = json_body(req)?;
    if body.mobiles.len() > SMS_LINKS_MAX {
        return Err(ApiError::new(
            413,
            "too_many_mobiles",
            format!("at most {SMS_LINKS_MAX} mobiles per request"),
        ));
    }
    let country = app
        .store
        .account(&p.account_id)
        .await?
        .and_then(|a| a.settings.country());
    let (now, mut tokens, mut links) = (Utc::now(), Vec::new(), Vec::new());
    for (i, raw) in body.mobiles.iter().enumerate() {
        let mobile = Mobile::parse(raw, country).map_err(|e| {
            ApiError::from(InputError {
                field: format!("mobiles[{i}]"),
                ..InputError::from(e)
            })
        })?;
        let token = random_hex(16);
        let record = FormToken {
            form_id: form.form_id.clone(),
            account_id: p.account_id.clone(),
            mobile: mobile.as_str().to_owned(),
            created_at: now,
            ttl: (now + Duration::days(TOKEN_TTL_DAYS)).timestamp(),
        };
        links.push(json!({"mobile": mobile.as_str(), "token": token, "url": format!("{FORMS_BASE_URL}/{}?t={token}", form.form_id)}));
        tokens.push((hash_key(&token), record));
    }
    app.store.put_form_tokens(&tokens).await?;
    Ok(json(200, &json!({ "links": links })))
}

fn source_ip(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        _ => None,
    }
}

async fn submit(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = path_param(req, "id").ok_or_else(ApiError::not_found)?;
    let form = app.store.form(&id).await?.ok_or_else(ApiError::not_found)?;
    let now = Utc::now();
    forms::verify(
        &form.secret,
        header(req, "intake-signature"),
        body_bytes(req)?,
        now.timestamp(),
    )
    .map_err(|e| {
        let code = if e == SignatureError::Stale {
            "stale_signature"
        } else {
            "invalid_signature"
        };
        ApiError::new(401, code, e.to_string())
    })?;
    let delivery = header(req, "intake-delivery-id").map(|d| format!("form:{}:{d}", form.form_id));
    idempotency::guard_key(
        &app.store,
        &form.account_id,
        delivery.as_deref(),
        req,
        now.timestamp(),
        || async { respond(apply(app, &form, req).await) },
    )
    .await
}

async fn apply(app: &App, form: &Form, req: &Request) -> Result<Response<Body>, ApiError> {
    let submission = forms::parse_body(header(req, "content-type"), body_bytes(req)?)?;
    let country = app
        .store
        .account(&form.account_id)
        .await?
        .and_then(|a| a.settings.country());
    let mut incoming = submission.contact.into_incoming(country)?;
    if let Some(token) = submission.token {
        let invalid = || {
            ApiError::new(422, "invalid_token", "the SMS link is unknown or expired")
                .with_field("token")
        };
        let record = app
            .store
            .form_token(&hash_key(&token))
            .await?
            .filter(|t| t.form_id == form.form_id && t.ttl > Utc::now().timestamp())
            .ok_or_else(invalid)?;
        let mobile = Mobile::from_stored(record.mobile);
        if incoming.mobile.as_ref().is_some_and(|m| *m != mobile) {
            return Err(ApiError::new(
                422,
                "token_mobile_mismatch",
                "the mobile differs from the one the SMS link was sent to",
            )
            .with_field("mobile"));
        }
        incoming.mobile = Some(mobile);
    }
    let evidence = source_ip(req).map(|ip| format!("ip={ip}"));
    for claim in [&mut incoming.email_marketing, &mut incoming.sms_marketing]
        .into_iter()
        .flatten()
    {
        claim.evidence = evidence.clone();
    }
    incoming.lists.extend(form.list_id.iter().cloned());
    let policy = Policy {
        matching: Matching::Form,
        merge: ingest::context(
            Utc::now(),
            format!("form:{}", form.form_id),
            None,
            Master::Incoming,
        ),
        default_country: None,
        undo: None,
    };
    let new_id = ContactId(uuid::Uuid::new_v4().to_string());
    let applied =
        ingest::upsert_one(&app.store, &form.account_id, incoming, new_id, &policy).await?;
    tracing::info!(account_id = %form.account_id, form_id = %form.form_id, contact_id = %applied.contact.id, outcome = ?applied.outcome, "form submission");
    Ok(json(
        200,
        &json!({"contact_id": applied.contact.id, "outcome": applied.outcome, "matched_on": applied.matched_on}),
    ))
}

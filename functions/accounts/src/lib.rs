//! Accounts, keys and settings: `POST /v1/accounts` (operator key) creates an account and its
//! first admin key; admins create member/admin keys and revoke them; `GET|PUT /v1/settings`.
//! Keys are shown once and stored only as a hash (`intake_shared::auth`).

use chrono::Utc;
use intake_shared::auth::{generate_key, is_operator, Principal};
use intake_shared::http::{
    header, json, json_body, path_param, principal, require_admin, respond, route_key, ApiError,
};
use intake_shared::incoming::{clean_text, InputError};
use intake_shared::model::AccountId;
use intake_shared::settings::Settings;
use intake_shared::store::settings::{Account, ApiKeyRecord, Role};
use intake_shared::App;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
    default_country: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    role: Role,
    name: Option<String>,
}

pub mod lists;

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    respond(route(app, &req).await)
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let route = route_key(req);
    if route.as_deref() == Some("POST /v1/accounts") {
        return create_account(app, req).await;
    }
    let p = principal(req)?;
    match route.as_deref() {
        Some("POST /v1/api-keys") => create_key(app, &p, req).await,
        Some("DELETE /v1/api-keys/{id}") => revoke_key(app, &p, req).await,
        Some("GET /v1/settings") => get_settings(app, &p).await,
        Some("PUT /v1/settings") => put_settings(app, &p, req).await,
        Some("GET /v1/lists") => lists::all(app, &p).await,
        Some("POST /v1/lists") => lists::create(app, &p, req).await,
        Some("GET /v1/lists/{id}") => lists::one(app, &p, req).await,
        Some("GET /v1/lists/{id}/contacts") => lists::members(app, &p, req).await,
        Some("GET /v1/lists/{id}/growth") => lists::growth(app, &p, req).await,
        _ => Err(ApiError::not_found()),
    }
}

fn name(raw: Option<String>, field: &str, default: &str) -> Result<String, InputError> {
    Ok(clean_text(field, raw, 200)?.unwrap_or_else(|| default.to_owned()))
}

async fn create_account(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let operator = app
        .config
        .operator_key_hash
        .as_deref()
        .ok_or_else(|| ApiError::new(401, "unauthorized", "account creation is disabled"))?;
    if !is_operator(header(req, "authorization"), operator) {
        return Err(ApiError::new(
            401,
            "unauthorized",
            "the operator key is required",
        ));
    }
    let body: NewAccount = json_body(req)?;
    let settings = Settings {
        default_country: body.default_country,
        ..Settings::default()
    }
    .validated()?;
    let now = Utc::now();
    let account = Account {
        account_id: AccountId(format!("acc_{}", uuid::Uuid::new_v4().simple())),
        name: name(Some(body.name), "name", "")?,
        created_at: now,
        settings,
    };
    if account.name.is_empty() {
        return Err(ApiError::new(422, "missing_name", "name is required").with_field("name"));
    }
    let key = generate_key();
    let record = ApiKeyRecord {
        key_id: key.key_id.clone(),
        account_id: account.account_id.clone(),
        role: Role::Admin,
        name: "initial admin key".into(),
        created_at: now,
        revoked: false,
    };
    app.store
        .create_account(&account, &key.hash, &record)
        .await?;
    tracing::info!(account_id = %account.account_id, key_id = %record.key_id, "account created");
    Ok(json(
        201,
        &json!({"account_id": account.account_id, "api_key": key.clear, "key_id": key.key_id}),
    ))
}

async fn create_key(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let body: NewKey = json_body(req)?;
    let key = generate_key();
    let record = ApiKeyRecord {
        key_id: key.key_id.clone(),
        account_id: p.account_id.clone(),
        role: body.role,
        name: name(body.name, "name", "api key")?,
        created_at: Utc::now(),
        revoked: false,
    };
    app.store.create_api_key(&key.hash, &record).await?;
    tracing::info!(account_id = %p.account_id, key_id = %record.key_id, "api key created");
    Ok(json(
        201,
        &json!({"id": key.key_id, "api_key": key.clear, "role": record.role, "name": record.name}),
    ))
}

async fn revoke_key(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let id = path_param(req, "id").ok_or_else(ApiError::not_found)?;
    if !app.store.revoke_api_key(&p.account_id, &id).await? {
        return Err(ApiError::not_found());
    }
    tracing::info!(account_id = %p.account_id, key_id = %id, "api key revoked");
    Ok(json(200, &json!({"id": id, "revoked": true})))
}

async fn get_settings(app: &App, p: &Principal) -> Result<Response<Body>, ApiError> {
    let account = app
        .store
        .account(&p.account_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(json(200, &account.settings))
}

async fn put_settings(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let settings = json_body::<Settings>(req)?.validated()?;
    app.store.put_settings(&p.account_id, &settings).await?;
    Ok(json(200, &settings))
}

//! Accounts: `POST /v1/accounts` with the operator key creates an account and its first admin
//! key, shown once and stored only as a hash.

use chrono::Utc;
use intake_shared::auth::{generate_key, is_operator};
use intake_shared::http::{header, json, json_body, respond, route_key, ApiError};
use intake_shared::incoming::clean_text;
use intake_shared::model::AccountId;
use intake_shared::normalize::Country;
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

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    respond(route(app, &req).await)
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    match route_key(req).as_deref() {
        Some("POST /v1/accounts") => create_account(app, req).await,
        _ => Err(ApiError::not_found()),
    }
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
    let name = clean_text("name", Some(body.name), 200)?
        .ok_or_else(|| ApiError::new(422, "missing_name", "name is required").with_field("name"))?;
    let country = match body
        .default_country
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(c) => Some(
            Country::parse(c)
                .map_err(intake_shared::incoming::InputError::from)?
                .code(),
        ),
        None => None,
    };
    let now = Utc::now();
    let account = Account {
        account_id: AccountId(format!("acc_{}", uuid::Uuid::new_v4().simple())),
        name,
        default_country: country,
        created_at: now,
    };
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

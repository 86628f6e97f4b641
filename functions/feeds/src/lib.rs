//! ERP data feeds over HTTP (R-FEED, API.md "ERP feeds"): create a feed (inactive), list the
//! fields its XML has (mapped or not), save the mapping, activate it only when every field has
//! a pair (R-FEED-4), run it now, and read its run history. The feed's key is never returned.

use std::collections::BTreeSet;

use chrono::Utc;
use intake_shared::feed::map::{self, FeedMapping, TagRule};
use intake_shared::feed::model::{Feed, Schedule};
use intake_shared::feed::{fetch, schedule, sync, xml};
use intake_shared::http::{
    json, json_body, path_param, principal, require_admin, respond, route_key, ApiError,
};
use intake_shared::model::AccountId;
use intake_shared::rules::KeyField;
use intake_shared::App;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

/// The schedule's tick (every 15 minutes): runs the active feeds that are due (R-FEED-2).
pub async fn run_due(app: &App, now: chrono::DateTime<Utc>) {
    match sync::run_due(app, now).await {
        Ok(n) => tracing::info!(ran = n, "due feeds run"),
        Err(e) => tracing::error!(error = %e, "due feeds failed"),
    }
}

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    respond(route(app, &req).await)
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let p = principal(req)?;
    require_admin(&p)?;
    match route_key(req).as_deref() {
        Some("POST /v1/feeds") => create(app, &p.account_id, req).await,
        Some("GET /v1/feeds/{id}") => Ok(json(200, &view(&feed(app, &p.account_id, req).await?))),
        Some("PUT /v1/feeds/{id}/mapping") => save_mapping(app, &p.account_id, req).await,
        Some("GET /v1/feeds/{id}/fields") => fields(app, &p.account_id, req).await,
        Some("POST /v1/feeds/{id}/activate") => activate(app, &p.account_id, req).await,
        Some("POST /v1/feeds/{id}/run") => {
            let f = feed(app, &p.account_id, req).await?;
            Ok(json(200, &sync::run(app, &f, Utc::now()).await?))
        }
        Some("GET /v1/feeds/{id}/runs") => {
            let f = feed(app, &p.account_id, req).await?;
            let runs = app.store.runs(&p.account_id, &f.feed_id, 100).await?;
            Ok(json(200, &json!({ "runs": runs })))
        }
        _ => Err(ApiError::not_found()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFeed {
    url: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default = "customers")]
    root: String,
    #[serde(default = "customer")]
    item: String,
    #[serde(default)]
    schedule: Option<Schedule>,
    #[serde(default)]
    list_id: Option<String>,
    #[serde(default)]
    mapping: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    tag_rules: Vec<TagRule>,
    #[serde(default = "email")]
    primary_key: KeyField,
    #[serde(default)]
    secondary_key: Option<KeyField>,
}

fn customers() -> String {
    "Customers".into()
}
fn customer() -> String {
    "Customer".into()
}
fn email() -> KeyField {
    KeyField::Email
}

/// The feed as the API shows it: everything but the key.
fn view(f: &Feed) -> serde_json::Value {
    json!({
        "id": f.feed_id, "url": f.url, "has_key": f.key.is_some(), "root": f.root, "item": f.item,
        "schedule": f.schedule, "list_id": f.list_id, "mapping": f.mapping.mapping,
        "tag_rules": f.mapping.tag_rules, "primary_key": f.primary_key,
        "secondary_key": f.secondary_key, "active": f.active, "created_at": f.created_at,
    })
}

/// Adds the account's definitions of the custom fields the mapping fills (created on the spot).
async fn define_custom_fields(
    app: &App,
    account: &AccountId,
    m: &FeedMapping,
) -> Result<(), ApiError> {
    let current = app
        .store
        .account(account)
        .await?
        .map(|a| a.settings)
        .unwrap_or_default();
    let next =
        current.with_custom_fields(m.mapping.values().filter_map(|t| t.strip_prefix("custom:")));
    if next != current {
        app.store.put_settings(account, &next).await?;
    }
    Ok(())
}

fn check_mapping(m: &FeedMapping) -> Result<(), ApiError> {
    let bad = map::invalid_targets(m);
    if bad.is_empty() {
        return Ok(());
    }
    let mut e = ApiError::new(
        422,
        "invalid_mapping",
        format!("not contact fields: {}", bad.join(", ")),
    )
    .with_field("mapping");
    e.details = Some(json!(bad));
    Err(e)
}

async fn create(app: &App, account: &AccountId, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: NewFeed = json_body(req)?;
    fetch::target(&body.url)
        .map_err(|e| ApiError::new(422, "invalid_url", e.to_string()).with_field("url"))?;
    if let Some(Err((field, message))) = body.schedule.as_ref().map(schedule::check) {
        return Err(ApiError::new(422, "invalid_schedule", message).with_field(field));
    }
    if body.secondary_key == Some(body.primary_key) {
        return Err(ApiError::new(
            422,
            "invalid_secondary_key",
            "the secondary key must differ from the primary key",
        )
        .with_field("secondary_key"));
    }
    let mapping = FeedMapping {
        mapping: body.mapping,
        tag_rules: body.tag_rules,
    };
    check_mapping(&mapping)?;
    define_custom_fields(app, account, &mapping).await?;
    let feed = Feed {
        feed_id: format!("feed_{}", uuid::Uuid::new_v4().simple()),
        account_id: account.clone(),
        url: body.url.trim().to_owned(),
        key: body.key.filter(|k| !k.is_empty()),
        root: body.root,
        item: body.item,
        schedule: body.schedule,
        list_id: body.list_id,
        mapping,
        primary_key: body.primary_key,
        secondary_key: body.secondary_key,
        active: false,
        fields_seen: BTreeSet::new(),
        created_at: Utc::now(),
        last_run_at: None,
    };
    app.store.put_feed(&feed).await?;
    tracing::info!(account_id = %account, feed_id = %feed.feed_id, "feed created");
    Ok(json(201, &view(&feed)))
}

async fn feed(app: &App, account: &AccountId, req: &Request) -> Result<Feed, ApiError> {
    let id = path_param(req, "id").ok_or_else(ApiError::not_found)?;
    app.store
        .feed(account, &id)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// Fetches the feed now and remembers every field it has.
async fn refresh_fields(app: &App, f: &mut Feed) -> Result<(), ApiError> {
    let settings = app
        .store
        .account(&f.account_id)
        .await?
        .map(|a| a.settings)
        .unwrap_or_default();
    let limits = fetch::Limits::for_account(settings.allow_private_feed_urls);
    let body = fetch::get(&f.fetch_url(), &limits)
        .await
        .map_err(|e| ApiError::new(422, "feed_unreachable", e.to_string()))?;
    let doc = xml::parse(&body, &f.root, &f.item, &xml::Limits::default())
        .map_err(|e| ApiError::new(422, "invalid_feed", e.to_string()))?;
    if !doc.fields.is_subset(&f.fields_seen) {
        f.fields_seen.extend(doc.fields);
        app.store.put_feed(f).await?;
    }
    Ok(())
}

async fn fields(app: &App, account: &AccountId, req: &Request) -> Result<Response<Body>, ApiError> {
    let mut f = feed(app, account, req).await?;
    refresh_fields(app, &mut f).await?;
    let fields: Vec<serde_json::Value> = f
        .fields_seen
        .iter()
        .map(|name| json!({"field": name, "mapped_to": f.mapping.mapping.get(name)}))
        .collect();
    Ok(json(
        200,
        &json!({"fields": fields, "unmapped": map::unmapped(&f.fields_seen, &f.mapping)}),
    ))
}

async fn save_mapping(
    app: &App,
    account: &AccountId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let mut f = feed(app, account, req).await?;
    let mapping: FeedMapping = json_body(req)?;
    check_mapping(&mapping)?;
    define_custom_fields(app, account, &mapping).await?;
    f.mapping = mapping;
    app.store.put_feed(&f).await?;
    Ok(json(200, &view(&f)))
}

async fn activate(
    app: &App,
    account: &AccountId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let mut f = feed(app, account, req).await?;
    refresh_fields(app, &mut f).await?;
    let unmapped = map::unmapped(&f.fields_seen, &f.mapping);
    if !unmapped.is_empty() {
        let mut e = ApiError::new(
            409,
            "unmapped_fields",
            format!(
                "every field needs a pair (or \"ignore\") before the feed can be activated: {}",
                unmapped.join(", ")
            ),
        );
        e.details = Some(json!(unmapped));
        return Err(e);
    }
    let key = f.primary_key.as_str();
    if !f.mapping.mapping.values().any(|t| t == key) {
        return Err(ApiError::new(
            409,
            "key_not_mapped",
            format!("no feed field is mapped to the primary key {key}"),
        )
        .with_field("primary_key"));
    }
    f.active = true;
    app.store.put_feed(&f).await?;
    app.store.index_active_feed(&f).await?;
    Ok(json(200, &view(&f)))
}

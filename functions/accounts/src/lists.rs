//! Static lists (R-WIZ-1, R-FEED-9, issue 8): `GET|POST /v1/lists`, `GET /v1/lists/{id}`, its
//! members paged in join order (`/contacts`), and new members per day (`/growth`).

use intake_shared::auth::Principal;
use intake_shared::http::{cursor, json, json_body, path_param, query_param, ApiError};
use intake_shared::incoming::clean_text;
use intake_shared::model::ContactView;
use intake_shared::store::imports::ContactList;
use intake_shared::store::items::JOINED_PREFIX;
use intake_shared::App;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

pub const MEMBERS_DEFAULT_LIMIT: usize = 100;
pub const MEMBERS_MAX_LIMIT: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewList {
    name: String,
}

async fn list_of(app: &App, p: &Principal, req: &Request) -> Result<ContactList, ApiError> {
    let id = path_param(req, "id").ok_or_else(ApiError::not_found)?;
    app.store
        .list(&p.account_id, &id)
        .await?
        .ok_or_else(ApiError::not_found)
}

pub async fn all(app: &App, p: &Principal) -> Result<Response<Body>, ApiError> {
    let lists = app.store.lists(&p.account_id).await?;
    Ok(json(200, &json!({ "lists": lists })))
}

pub async fn create(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: NewList = json_body(req)?;
    let name = clean_text("name", Some(body.name), 200)?.ok_or_else(|| {
        ApiError::new(422, "missing_name", "a list needs a name").with_field("name")
    })?;
    let list = ContactList::named(&name, chrono::Utc::now());
    app.store.put_list(&p.account_id, &list).await?;
    Ok(json(201, &list))
}

pub async fn one(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    Ok(json(200, &list_of(app, p, req).await?))
}

/// `GET /v1/lists/{id}/contacts?limit=&cursor=`: members in the order they joined.
pub async fn members(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let list = list_of(app, p, req).await?;
    let limit = cursor::limit(
        query_param(req, "limit"),
        MEMBERS_DEFAULT_LIMIT,
        MEMBERS_MAX_LIMIT,
    )?;
    let after = query_param(req, "cursor")
        .map(|c| cursor::decode_under(&c, JOINED_PREFIX))
        .transpose()?;
    let page = app
        .store
        .list_members(&p.account_id, &list.list_id, after.as_deref(), limit)
        .await?;
    let views: Vec<ContactView> = page.contacts.iter().map(ContactView::from).collect();
    Ok(json(
        200,
        &json!({"list_id": list.list_id, "contacts": views, "next_cursor": page.next.as_deref().map(cursor::encode)}),
    ))
}

/// `GET /v1/lists/{id}/growth?from=&to=`: new members per day, from every channel (R-FEED-9);
/// the last 30 days by default, at most 366.
pub async fn growth(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let list = list_of(app, p, req).await?;
    let day = |name: &str, default: chrono::NaiveDate| match query_param(req, name) {
        None => Ok(default),
        Some(v) => chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d").map_err(|_| {
            ApiError::new(422, "invalid_date", format!("{name} is yyyy-mm-dd")).with_field(name)
        }),
    };
    let today = chrono::Utc::now().date_naive();
    let to = day("to", today)?;
    let from = day("from", to - chrono::Duration::days(29))?;
    if from > to || (to - from).num_days() > 366 {
        return Err(ApiError::new(
            422,
            "invalid_range",
            "from must be on or before to, at most 366 days apart",
        )
        .with_field("from"));
    }
    let counts = app
        .store
        .list_growth(
            &p.account_id,
            &list.list_id,
            &from.to_string(),
            &to.to_string(),
        )
        .await?;
    let days: Vec<serde_json::Value> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|d| {
            let key = d.to_string();
            json!({"date": key, "new_contacts": counts.get(&key).copied().unwrap_or(0)})
        })
        .collect();
    Ok(json(
        200,
        &json!({"list_id": list.list_id, "name": list.name, "days": days}),
    ))
}

//! Reading changes out (R-API-2, R-FEED-10): `GET /v1/contacts?updated_since=&cursor=&limit=`
//! pages every contact changed at or after a time, oldest change first, for integration tools;
//! `GET /v1/contacts/{id}/consent-history` lists every consent change of a contact.

use chrono::{DateTime, Duration, Utc};
use intake_shared::auth::Principal;
use intake_shared::http::{cursor, json, path_param, query_param, ApiError};
use intake_shared::model::{ContactId, ContactView};
use intake_shared::store::changes;
use intake_shared::App;
use lambda_http::{Body, Request, Response};
use serde_json::json;

pub const POLL_DEFAULT_LIMIT: usize = 100;
pub const POLL_MAX_LIMIT: usize = 500;

/// True when the request asks for the change feed rather than a look-up by value: a time or a
/// cursor, or no look-up value at all (every contact, from the first change).
pub fn is_poll(req: &Request) -> bool {
    ["email", "mobile", "external_id"]
        .iter()
        .all(|name| query_param(req, name).is_none())
}

pub async fn poll(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let limit = cursor::limit(
        query_param(req, "limit"),
        POLL_DEFAULT_LIMIT,
        POLL_MAX_LIMIT,
    )?;
    let after = match (
        query_param(req, "cursor"),
        query_param(req, "updated_since"),
    ) {
        (Some(c), _) => cursor::decode(&c)?,
        (None, Some(since)) => changes::start_at(
            // An unencoded "+01:00" arrives as " 01:00": read it as meant.
            DateTime::parse_from_rfc3339(&since.trim().replace(' ', "+"))
                .map_err(|_| {
                    ApiError::new(
                        400,
                        "invalid_updated_since",
                        "updated_since is an RFC 3339 time such as 2026-11-22T09:00:00Z",
                    )
                    .with_field("updated_since")
                })?
                .with_timezone(&Utc),
        ),
        (None, None) => changes::start_at(DateTime::UNIX_EPOCH),
    };
    let settled = Utc::now() - Duration::seconds(app.config.poll_settle_seconds);
    let page = app
        .store
        .changes(&p.account_id, &after, settled, limit)
        .await?;
    let views: Vec<ContactView> = page.contacts.iter().map(ContactView::from).collect();
    Ok(json(
        200,
        &json!({
            "contacts": views,
            "deleted": page.deleted,
            "next_cursor": cursor::encode(&page.next),
            "has_more": page.has_more,
            "settled_until": settled,
        }),
    ))
}

pub async fn consent_history(
    app: &App,
    p: &Principal,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let id = ContactId(path_param(req, "id").ok_or_else(ApiError::not_found)?);
    if app.store.contact(&p.account_id, &id).await?.is_none() {
        return Err(ApiError::not_found());
    }
    let events = app.store.consent_history(&p.account_id, &id).await?;
    let mut out = Vec::new();
    for e in &events {
        for (channel, consent) in [
            ("email_marketing", &e.email_marketing),
            ("sms_marketing", &e.sms_marketing),
        ] {
            if let Some(c) = consent {
                out.push(json!({
                    "channel": channel, "status": c.status, "at": c.at, "source": c.source,
                    "evidence": c.evidence, "version": e.version, "recorded_at": e.recorded_at,
                }));
            }
        }
    }
    Ok(json(200, &json!({"contact_id": id.0, "events": out})))
}

//! The import wizard (R-WIZ-1..10, R-XLS-4/6, R-OPS-1/3): create an import with an upload
//! URL, preview, settings with a summary, validate (dry run), start, status, the three tabs,
//! the error report, and drop-folder profiles. Only admins change anything (R-OPS-1).

use chrono::Utc;
use intake_shared::auth::Principal;
use intake_shared::http::{
    header, json, json_body, path_param, principal, query_param, require_admin, respond, route_key,
    ApiError,
};
use intake_shared::import::job::{Job, JobStatus};
use intake_shared::import::mapping::{self, ImportSettings};
use intake_shared::import::pipeline::{self, PipelineError};
use intake_shared::import::revert;
use intake_shared::import::wizard::{self, ListChoice};
use intake_shared::model::ContactView;
use intake_shared::rollback::RevertMode;
use intake_shared::store::imports::{ImportProfile, RememberedMapping};
use intake_shared::store::items::UNDO_SK_PREFIX;
use intake_shared::App;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewImport {
    list: ListChoice,
    file_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    list: ListChoice,
    settings: ImportSettings,
}

/// Maps pipeline errors: a file or settings problem is the caller's (422), the rest is ours.
fn api_error(e: PipelineError) -> ApiError {
    match e {
        PipelineError::Settings(problems) => {
            let first = problems
                .first()
                .map(|p| p.field.clone())
                .unwrap_or_default();
            let mut err = ApiError::new(
                422,
                "invalid_settings",
                problems
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .with_field(first);
            err.details = Some(serde_json::to_value(&problems).unwrap_or_default());
            err
        }
        PipelineError::File(m) => ApiError::new(422, "invalid_file", m),
        PipelineError::Csv(c) => ApiError::new(422, "invalid_file", c.to_string()),
        other => ApiError::internal(&other),
    }
}

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    respond(route(app, &req).await)
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let p = principal(req)?;
    match route_key(req).as_deref() {
        Some("POST /v1/imports") => create(app, &p, req).await,
        Some("GET /v1/imports") => list(app, &p, req).await,
        Some("GET /v1/imports/{id}") => Ok(json(200, &wizard::view(&job(app, &p, req).await?))),
        Some("GET /v1/imports/{id}/preview") => preview(app, &p, req).await,
        Some("PUT /v1/imports/{id}/settings") => settings(app, &p, req).await,
        Some("POST /v1/imports/{id}/validate") => validate(app, &p, req).await,
        Some("POST /v1/imports/{id}/start") => start(app, &p, req).await,
        Some("GET /v1/imports/{id}/errors") => errors(app, &p, req).await,
        Some("POST /v1/imports/{id}/revert") => revert(app, &p, req).await,
        Some("GET /v1/imports/{id}/revert") => revert_report(app, &p, req).await,
        Some("GET /v1/imports/{id}/contacts") => labelled(app, &p, req).await,
        Some("PUT /v1/import-profiles/{id}") => profile(app, &p, req).await,
        _ => Err(ApiError::not_found()),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevertRequest {
    #[serde(default)]
    mode: RevertMode,
}

/// `POST /v1/imports/{id}/revert`: full rollback, or `{"mode": "delete_created"}` (delete by
/// label). Runs as a job; progress and counts in the import's `revert`.
async fn revert(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let job = job(app, p, req).await?;
    let body: RevertRequest = if req.body().is_empty() {
        RevertRequest::default()
    } else {
        json_body(req)?
    };
    if !revert::start(app, &job, body.mode)
        .await
        .map_err(api_error)?
    {
        return Err(ApiError::new(
            409,
            "not_finished",
            format!(
                "only a finished import can be reverted; this one is {:?}",
                job.status
            ),
        ));
    }
    Ok(json(
        202,
        &json!({"id": job.import_id, "status": JobStatus::Reverting, "mode": body.mode}),
    ))
}

/// `GET /v1/imports/{id}/revert`: the revert's counts and every contact it kept, with why.
async fn revert_report(
    app: &App,
    p: &Principal,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let job = job(app, p, req).await?;
    let kept = revert::kept(app, &job).await.map_err(api_error)?;
    let kept: Vec<serde_json::Value> = kept
        .iter()
        .map(|r| json!({"contact_id": r.contact_id, "reason": r.reason}))
        .collect();
    Ok(json(
        200,
        &json!({"status": job.status, "revert": job.revert, "kept": kept}),
    ))
}

/// `GET /v1/imports/{id}/contacts?cursor=&limit=`: the contacts the import (its label)
/// created or changed, from its undo records, with the outcome and any revert state.
async fn labelled(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let job = job(app, p, req).await?;
    let limit = match query_param(req, "limit") {
        None => 100,
        Some(l) => l
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| {
                ApiError::new(422, "invalid_limit", "limit is 1 to 500").with_field("limit")
            })?,
    };
    let cursor = query_param(req, "cursor");
    if cursor
        .as_deref()
        .is_some_and(|c| !c.starts_with(UNDO_SK_PREFIX))
    {
        return Err(ApiError::new(
            422,
            "invalid_cursor",
            "use next_cursor from the previous page",
        )
        .with_field("cursor"));
    }
    let table = &app.imports().map_err(|e| ApiError::internal(&e))?.table;
    let (records, next) = app
        .store
        .undo_page(
            table,
            &p.account_id,
            &job.import_id,
            cursor.as_deref(),
            limit,
        )
        .await?;
    let ids: Vec<_> = records.iter().map(|r| r.contact_id.clone()).collect();
    let contacts = app.store.contacts(&p.account_id, &ids).await?;
    let items: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            json!({
                "contact_id": r.contact_id,
                "outcome": if r.before.is_some() { "updated" } else { "created" },
                "revert_state": r.state,
                "contact": contacts.get(&r.contact_id).map(ContactView::from),
            })
        })
        .collect();
    Ok(json(
        200,
        &json!({"label": job.label, "contacts": items, "next_cursor": next}),
    ))
}

async fn job(app: &App, p: &Principal, req: &Request) -> Result<Job, ApiError> {
    let id = path_param(req, "id").ok_or_else(ApiError::not_found)?;
    let table = &app.imports().map_err(|e| ApiError::internal(&e))?.table;
    app.store
        .job(table, &p.account_id, &id)
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn account_settings(
    app: &App,
    p: &Principal,
) -> Result<intake_shared::settings::Settings, ApiError> {
    Ok(app
        .store
        .account(&p.account_id)
        .await?
        .ok_or_else(ApiError::not_found)?
        .settings)
}

async fn create(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let body: NewImport = json_body(req)?;
    let now = Utc::now();
    let list_id = wizard::resolve_list(app, &p.account_id, &body.list, now)
        .await
        .map_err(api_error)?
        .ok_or_else(|| ApiError::new(422, "unknown_list", "no such list").with_field("list.id"))?;
    let id = format!("imp_{}", uuid::Uuid::new_v4().simple());
    let job = wizard::new_job(app, &p.account_id, id, list_id, &body.file_name, None, now)
        .await
        .map_err(api_error)?;
    let table = &app.imports().map_err(|e| ApiError::internal(&e))?.table;
    if !app.store.put_job(table, &job).await? {
        return Err(ApiError::new(
            409,
            "conflict",
            "an import with this id exists",
        ));
    }
    let url = wizard::upload_url(app, &job).await.map_err(api_error)?;
    let expires = now + chrono::Duration::from_std(wizard::UPLOAD_URL_TTL).unwrap_or_default();
    Ok(json(
        201,
        &json!({"id": job.import_id, "label": job.label, "status": job.status, "list_id": job.list_id, "upload_url": url, "upload_expires_at": expires}),
    ))
}

async fn list(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let tab = query_param(req, "status");
    if let Some(t) = tab
        .as_deref()
        .filter(|t| !["draft", "completed", "failed"].contains(t))
    {
        return Err(ApiError::new(
            400,
            "invalid_status",
            format!("{t:?} is not draft, completed or failed"),
        )
        .with_field("status"));
    }
    let table = &app.imports().map_err(|e| ApiError::internal(&e))?.table;
    let jobs = app.store.jobs(table, &p.account_id, 100).await?;
    let shown: Vec<serde_json::Value> = jobs
        .iter()
        .filter(|j| tab.as_deref().is_none_or(|t| j.status.tab() == t))
        .map(wizard::view)
        .collect();
    Ok(json(200, &json!({ "imports": shown })))
}

async fn preview(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let job = job(app, p, req).await?;
    let header_row = query_param(req, "header_row").is_none_or(|v| v != "false");
    let delimiter = query_param(req, "delimiter")
        .map(|d| mapping::delimiter_byte(&d))
        .transpose()
        .map_err(|m| ApiError::new(422, "invalid_delimiter", m).with_field("delimiter"))?;
    let encoding = query_param(req, "encoding");
    if let Some(Err(m)) = encoding.as_deref().map(mapping::encoding_named) {
        return Err(ApiError::new(422, "invalid_encoding", m).with_field("encoding"));
    }
    let reading = pipeline::Reading {
        sheet: query_param(req, "sheet"),
        encoding,
        delimiter,
    };
    let preview = pipeline::preview(app, &job, header_row, &reading)
        .await
        .map_err(api_error)?;
    Ok(json(200, &preview))
}

async fn settings(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let job = job(app, p, req).await?;
    if job.status != JobStatus::Draft {
        return Err(ApiError::new(
            409,
            "not_draft",
            "settings can only change before the import starts",
        ));
    }
    let settings: ImportSettings = json_body(req)?;
    let mapper = pipeline::check_settings(app, &job, &settings, &account_settings(app, p).await?)
        .await
        .map_err(api_error)?;
    let table = &app.imports().map_err(|e| ApiError::internal(&e))?.table;
    if !app
        .store
        .save_import_settings(table, &p.account_id, &job.import_id, &settings)
        .await?
    {
        return Err(ApiError::new(
            409,
            "not_draft",
            "settings can only change before the import starts",
        ));
    }
    if settings.header_row {
        let remembered = RememberedMapping {
            mapping: settings.mapping.clone(),
            updated_at: Utc::now(),
        };
        app.store
            .remember_mapping(&p.account_id, mapper.columns(), &remembered)
            .await?;
    }
    let skipped: Vec<&String> = mapper
        .columns()
        .iter()
        .filter(|c| settings.mapping.get(*c).is_none_or(|t| t == "skip"))
        .collect();
    let summary = json!({"list_id": job.list_id, "label": job.label, "file_name": job.file_name, "header_row": settings.header_row, "mapping": settings.mapping, "skipped_columns": skipped, "new_custom_fields": mapper.new_custom_fields, "opt_in": settings.opt_in, "master": settings.master, "primary_key": settings.primary_key, "secondary_key": settings.secondary_key, "default_country": settings.default_country, "compliance_acknowledged": settings.compliance_acknowledged});
    Ok(json(
        200,
        &json!({"id": job.import_id, "status": job.status, "summary": summary}),
    ))
}

async fn validate(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let job = job(app, p, req).await?;
    let report = pipeline::validate(app, &job, &account_settings(app, p).await?)
        .await
        .map_err(api_error)?;
    Ok(json(200, &report))
}

async fn start(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let job = job(app, p, req).await?;
    let account = account_settings(app, p).await?;
    pipeline::mapper(app, &job, &account)
        .await
        .map_err(api_error)?;
    let table = &app.imports().map_err(|e| ApiError::internal(&e))?.table;
    if !app
        .store
        .transition(
            table,
            &p.account_id,
            &job.import_id,
            &[JobStatus::Draft],
            JobStatus::Queued,
        )
        .await?
    {
        return Err(ApiError::new(
            409,
            "already_started",
            "the import has already been started",
        ));
    }
    if let Some(settings) = &job.settings {
        wizard::create_custom_fields(app, &p.account_id, settings, &account)
            .await
            .map_err(api_error)?;
    }
    wizard::request_split(app, &job).await.map_err(api_error)?;
    tracing::info!(account_id = %p.account_id, import_id = %job.import_id, "import started");
    Ok(json(
        202,
        &json!({"id": job.import_id, "status": JobStatus::Queued}),
    ))
}

async fn errors(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    let job = job(app, p, req).await?;
    let errors = pipeline::row_errors(app, &job).await.map_err(api_error)?;
    if header(req, "accept").is_some_and(|a| a.contains("text/csv")) {
        let body = wizard::errors_csv(&errors).map_err(|e| ApiError::internal(&e))?;
        let resp = Response::builder()
            .status(200)
            .header("content-type", "text/csv; charset=utf-8")
            .body(Body::Binary(body))
            .map_err(|e| ApiError::internal(&e))?;
        return Ok(resp);
    }
    Ok(json(200, &json!({"id": job.import_id, "errors": errors})))
}

async fn profile(app: &App, p: &Principal, req: &Request) -> Result<Response<Body>, ApiError> {
    require_admin(p)?;
    let id = path_param(req, "id").filter(|i| {
        !i.is_empty()
            && i.len() <= 64
            && i.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    });
    let id = id.ok_or_else(|| {
        ApiError::new(
            422,
            "invalid_profile_id",
            "profile ids are 1 to 64 letters, digits, - or _",
        )
        .with_field("id")
    })?;
    let body: Profile = json_body(req)?;
    let list_id = wizard::resolve_list(app, &p.account_id, &body.list, Utc::now())
        .await
        .map_err(api_error)?
        .ok_or_else(|| ApiError::new(422, "unknown_list", "no such list").with_field("list.id"))?;
    if !body.settings.compliance_acknowledged || body.settings.primary_key.is_none() {
        return Err(ApiError::new(
            422,
            "invalid_settings",
            "a profile needs a primary key and the compliance acknowledgement",
        )
        .with_field("settings"));
    }
    let profile = ImportProfile {
        profile_id: id.clone(),
        list_id,
        settings: body.settings,
        updated_at: Utc::now(),
    };
    app.store.put_profile(&p.account_id, &profile).await?;
    let bucket = &app.imports().map_err(|e| ApiError::internal(&e))?.bucket;
    Ok(json(
        200,
        &json!({"id": id, "list_id": profile.list_id, "drop_folder": format!("s3://{bucket}/drop/{}/{id}/", p.account_id.0)}),
    ))
}

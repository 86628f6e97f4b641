//! The function registry: each `AWS::Serverless::Function` of the template mapped to the same
//! handler its Lambda binary runs, built with the function's own (resolved) environment.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use intake_shared::config::Config;
use intake_shared::store::StoreError;
use intake_shared::App;
use lambda_http::{Body, Request, Response};

use crate::template::{EnvValue, Template};

pub type Handler =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync>;

/// Every function the runner can host, by logical id.
pub const FUNCTIONS: &[&str] = &[
    "ApiUpsertFunction",
    "AccountsFunction",
    "ManualCreateFunction",
    "FormSubmissionFunction",
    "AuthorizerFunction",
    "ImportApiFunction",
    "CsvImportFunction",
    "ReconcilerFunction",
    "FeedsFunction",
    "FeedSchedulerFunction",
];

/// An authorizer: the `Authorization` header in, API Gateway's simple response out.
pub type Authorizer = Arc<
    dyn Fn(
            Option<String>,
        ) -> Pin<Box<dyn Future<Output = Result<SimpleResponse, StoreError>> + Send>>
        + Send
        + Sync,
>;
pub type SimpleResponse =
    lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerSimpleResponse;

/// The authorizer function `function`, or `None` when it is not one.
pub fn authorizer(function: &str, app: Arc<App>) -> Option<Authorizer> {
    match function {
        "AuthorizerFunction" => Some(Arc::new(move |header: Option<String>| {
            let app = app.clone();
            Box::pin(async move { intake_authorizer::authorize(&app, header.as_deref()).await })
        })),
        _ => None,
    }
}

fn wrap<F, Fut>(app: Arc<App>, f: F) -> Handler
where
    F: Fn(Arc<App>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |req| {
        let (app, f) = (app.clone(), f.clone());
        Box::pin(async move { f(app, req).await })
    })
}

/// The handler of `function`, or `None` when the runner does not know it.
pub fn handler(function: &str, app: Arc<App>) -> Option<Handler> {
    match function {
        "ApiUpsertFunction" => Some(wrap(app, |app, req| async move {
            intake_api_upsert::handle(&app, req).await
        })),
        "AccountsFunction" => Some(wrap(app, |app, req| async move {
            intake_accounts::handle(&app, req).await
        })),
        "ManualCreateFunction" => Some(wrap(app, |app, req| async move {
            intake_manual_create::handle(&app, req).await
        })),
        "FormSubmissionFunction" => Some(wrap(app, |app, req| async move {
            intake_form_submission::handle(&app, req).await
        })),
        "FeedsFunction" => Some(wrap(app, |app, req| async move {
            intake_feeds::handle(&app, req).await
        })),
        "ImportApiFunction" => Some(wrap(app, |app, req| async move {
            intake_import_api::handle(&app, req).await
        })),
        _ => None,
    }
}

/// Resolves a function's environment as CloudFormation would: `!Ref` of a resource gives its
/// local physical value (`refs`: table and bucket names, queue URLs), of a parameter its value.
pub fn resolve_env(
    template: &Template,
    function: &str,
    refs: &BTreeMap<String, String>,
    params: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, value) in template.env.get(function).into_iter().flatten() {
        let resolved = match value {
            EnvValue::Literal(v) => Some(v.clone()),
            EnvValue::Ref(r) => refs.get(r).or_else(|| params.get(r)).cloned(),
        };
        if let Some(v) = resolved {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// Builds one `App` per function from its resolved environment.
pub fn app_for(
    clients: &crate::stack::Clients,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<Arc<App>> {
    let config = Config::from_lookup(|name| env.get(name).cloned())?;
    Ok(Arc::new(App::with_clients(
        clients.dynamodb.clone(),
        clients.s3.clone(),
        clients.sqs.clone(),
        config,
    )))
}

/// A scheduled handler: fired with the time of the schedule.
pub type ScheduledHandler = Arc<
    dyn Fn(chrono::DateTime<chrono::Utc>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync,
>;

/// The scheduled handler of `function`, or `None` when it has none.
pub fn scheduled_handler(function: &str, app: Arc<App>) -> Option<ScheduledHandler> {
    match function {
        "FeedSchedulerFunction" => Some(Arc::new(move |now| {
            let app = app.clone();
            Box::pin(async move { intake_feeds::run_due(&app, now).await })
        })),
        "ReconcilerFunction" => Some(Arc::new(move |now| {
            let app = app.clone();
            Box::pin(async move {
                if let Err(e) = intake_reconciler::handle(&app, now).await {
                    tracing::error!(error = %e, "reconciler failed");
                }
            })
        })),
        _ => None,
    }
}

/// A queue handler: an SQS batch in, a partial batch response out.
pub type QueueHandler =
    Arc<dyn Fn(SqsEvent) -> Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>> + Send + Sync>;

/// The queue handler of `function`, or `None` when it has none.
pub fn queue_handler(function: &str, app: Arc<App>) -> Option<QueueHandler> {
    match function {
        "CsvImportFunction" => Some(Arc::new(move |event: SqsEvent| {
            let app = app.clone();
            Box::pin(async move { intake_csv_import::handle(&app, event).await })
        })),
        _ => None,
    }
}

//! The local stack's runner: reads `template.yaml`, creates its tables on DynamoDB Local and
//! serves its HTTP functions on 127.0.0.1 through the same handlers and the real AWS SDK.

pub mod functions;
pub mod server;
pub mod tables;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use intake_shared::App;

/// Parameters of the template, as the runner fills them.
pub fn params(operator_key: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("OperatorKey".to_owned(), operator_key.to_owned()),
        ("LogLevel".to_owned(), "info".to_owned()),
    ])
}

/// A running local system's parts: the router and each function's `App`.
pub struct Local {
    pub router: server::Router,
    pub apps: BTreeMap<String, Arc<App>>,
    pub template: template::Template,
}

/// Creates the tables under `prefix` and builds a router for every route of the template.
/// Fails when the template names a function the runner cannot host.
pub async fn build(
    dynamodb: &aws_sdk_dynamodb::Client,
    template_path: &Path,
    prefix: &str,
    params: &BTreeMap<String, String>,
) -> anyhow::Result<Local> {
    let template = template::Template::load(template_path)?;
    tables::create_tables(dynamodb, &template, prefix).await?;
    let mut apps = BTreeMap::new();
    for function in template.env.keys() {
        let env = functions::resolve_env(&template, function, prefix, params);
        apps.insert(function.clone(), functions::app_for(dynamodb, &env)?);
    }
    let mut routes = Vec::new();
    for route in &template.routes {
        let app = apps
            .get(&route.function)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("route {} names unknown function", route.key()))?;
        let handler = functions::handler(&route.function, app)
            .ok_or_else(|| anyhow::anyhow!("runner cannot host function {}", route.function))?;
        let authorizer = match &route.authorizer {
            Some(f) => {
                let app = apps
                    .get(f)
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("unknown authorizer {f}"))?;
                Some(
                    functions::authorizer(f, app)
                        .ok_or_else(|| anyhow::anyhow!("{f} is not an authorizer"))?,
                )
            }
            None => None,
        };
        routes.push((route.clone(), handler, authorizer));
    }
    Ok(Local {
        router: server::Router::new(routes),
        apps,
        template,
    })
}

//! `intake-local`: creates the template's tables on the local stand-ins and serves every HTTP
//! route on 127.0.0.1:${INTAKE_PORT:-3000}. Started in the background by `infra/local/up`;
//! `intake-local routes` prints the template's routes.

use std::path::PathBuf;

use intake_shared::{config, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let port: u16 = std::env::var("INTAKE_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let operator =
        std::env::var("INTAKE_OPERATOR_KEY").unwrap_or_else(|_| "local-operator-key".into());
    let prefix = std::env::var("INTAKE_TABLE_PREFIX").unwrap_or_else(|_| "intake-local-".into());
    let template = std::env::var("INTAKE_TEMPLATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("template.yaml"));
    if std::env::args().nth(1).as_deref() == Some("routes") {
        for route in intake_local_runner::template::Template::load(&template)?.routes {
            println!("{} {}", route.method, route.path);
        }
        return Ok(());
    }
    let sdk = config::aws().await;
    let local = intake_local_runner::build(
        &intake_local_runner::Clients::from_sdk(&sdk),
        &template,
        &prefix,
        &intake_local_runner::params(&operator),
    )
    .await?;
    let workers: usize = std::env::var("INTAKE_QUEUE_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(4);
    let _pollers = local.start_pollers(workers);
    let every = std::env::var("INTAKE_SCHEDULE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(std::time::Duration::from_secs);
    let _schedules = local.start_schedules(every);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let bucket = local.refs.get("UploadsBucket").cloned().unwrap_or_default();
    println!("intake-local: listening on http://127.0.0.1:{port} ({} routes, {} queue pollers), upload bucket {bucket}", local.template.routes.len(), local.pollers.len() * workers);
    intake_local_runner::server::serve(listener, local.router).await
}

//! Lambda entry point of `intake-accounts`: telemetry, configuration and SDK clients once
//! per cold start, then every request to `intake_accounts::handle`.

use intake_shared::{config, telemetry, App};
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = App::new(&config::aws().await, config::Config::from_env()?);
    let app = &app;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(intake_accounts::handle(app, req).await)
    }))
    .await
}

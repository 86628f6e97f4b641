//! Lambda entry point of the feed scheduler: an EventBridge schedule every 15 minutes runs the
//! active feeds that are due (`intake_feeds::run_due`).

use intake_shared::{config, telemetry, App};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = App::new(&config::aws().await, config::Config::from_env()?);
    let app = &app;
    run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            intake_feeds::run_due(app, chrono::Utc::now()).await;
            Ok::<_, Error>(serde_json::Value::Null)
        },
    ))
    .await
}

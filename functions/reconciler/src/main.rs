//! Lambda entry point of `intake-reconciler`: run by an EventBridge schedule; the event's
//! payload is not needed, the time is read when it fires.

use intake_shared::{config, telemetry, App};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = App::new(&config::aws().await, config::Config::from_env()?);
    let app = &app;
    run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report = intake_reconciler::handle(app, chrono::Utc::now()).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        },
    ))
    .await
}

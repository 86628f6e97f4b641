//! Lambda entry point of `intake-csv-import`: telemetry, configuration and SDK clients once per
//! cold start, then every SQS batch to `intake_csv_import::handle` (partial batch responses).

use aws_lambda_events::event::sqs::SqsEvent;
use intake_shared::{config, telemetry, App};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = App::new(&config::aws().await, config::Config::from_env()?);
    let app = &app;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(intake_csv_import::handle(app, event.payload).await)
    }))
    .await
}

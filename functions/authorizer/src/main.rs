//! Lambda entry point of `intake-authorizer`: telemetry, configuration and SDK clients once per
//! cold start, then every authorizer event to `intake_authorizer::authorize`.

use intake_shared::{config, telemetry, App};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = App::new(&config::aws().await, config::Config::from_env()?);
    let app = &app;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            let header = event
                .payload
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            Ok::<_, Error>(intake_authorizer::authorize(app, header).await?)
        },
    ))
    .await
}

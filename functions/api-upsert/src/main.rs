//! Lambda entry point of `intake-api-upsert`: the shared HTTP Lambda wiring around `intake_api_upsert::handle`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    intake_shared::http::run_lambda(
        |app, req| async move { intake_api_upsert::handle(&app, req).await },
    )
    .await
}

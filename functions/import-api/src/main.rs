//! Lambda entry point of `intake-import-api`: the shared HTTP Lambda wiring around `intake_import_api::handle`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    intake_shared::http::run_lambda(
        |app, req| async move { intake_import_api::handle(&app, req).await },
    )
    .await
}

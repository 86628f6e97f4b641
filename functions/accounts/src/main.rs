//! Lambda entry point of `intake-accounts`: the shared HTTP Lambda wiring around `intake_accounts::handle`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    intake_shared::http::run_lambda(
        |app, req| async move { intake_accounts::handle(&app, req).await },
    )
    .await
}

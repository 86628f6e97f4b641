//! Lambda entry point of `intake-feeds`: the shared HTTP Lambda wiring around `intake_feeds::handle`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    intake_shared::http::run_lambda(|app, req| async move { intake_feeds::handle(&app, req).await })
        .await
}

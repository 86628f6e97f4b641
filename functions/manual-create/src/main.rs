//! Lambda entry point of `intake-manual-create`: the shared HTTP Lambda wiring around `intake_manual_create::handle`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    intake_shared::http::run_lambda(|app, req| async move {
        intake_manual_create::handle(&app, req).await
    })
    .await
}

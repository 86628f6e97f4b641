//! Lambda entry point of `intake-form-submission`: the shared HTTP Lambda wiring around `intake_form_submission::handle`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    intake_shared::http::run_lambda(|app, req| async move {
        intake_form_submission::handle(&app, req).await
    })
    .await
}

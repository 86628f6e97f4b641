//! The API Gateway Lambda authorizer (payload 2.0, simple responses): looks the bearer key up
//! by its hash and hands handlers the account and role. It always allows; the context says
//! whether the key was good, so handlers answer 401 in the contract's shape (see
//! `intake_shared::auth::authorizer_context`).

use intake_shared::auth::{authenticate, authorizer_context, AuthError};
use intake_shared::store::StoreError;
use intake_shared::App;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerSimpleResponse;

/// Decides for one `Authorization` header value; a store failure is an error (API Gateway
/// then answers 500 rather than letting anyone in).
pub async fn authorize(
    app: &App,
    authorization: Option<&str>,
) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse, StoreError> {
    let result = authenticate(&app.store, authorization).await;
    if let Err(AuthError::Store(e)) = result {
        return Err(e);
    }
    if let Ok(p) = &result {
        tracing::debug!(account_id = %p.account_id, key_id = %p.key_id, "authorized");
    }
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    response.is_authorized = true;
    response.context = serde_json::Value::Object(authorizer_context(&result));
    Ok(response)
}

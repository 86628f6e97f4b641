//! The one integration-test binary: end-to-end tests against DynamoDB Local through the real
//! AWS SDK and the runner's router. Each test has its own tables.

mod api_upsert;
mod template;

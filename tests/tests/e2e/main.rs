//! The one integration-test binary: end-to-end tests against DynamoDB Local through the real
//! AWS SDK and the runner's router. Each test has its own tables.

mod accounts;
mod api_upsert;
mod faults;
mod feeds;
mod files;
mod forms;
mod imports;
mod isolation;
mod manual;
mod polling;
mod reconcile;
mod revert;
mod template;

//! Intake's shared crate: the functional core (`model`, `normalize`, `incoming`, `rules`) and
//! the imperative shell every channel uses (`store`, `ingest`), plus HTTP and auth helpers.

pub mod auth;
pub mod config;
pub mod forms;
pub mod http;
pub mod idempotency;
pub mod import;
pub mod incoming;
pub mod ingest;
pub mod model;
pub mod normalize;
pub mod rules;
pub mod settings;
pub mod store;
pub mod telemetry;

/// What a function builds once per cold start and hands to every invocation.
#[derive(Debug, Clone)]
pub struct App {
    pub store: store::Store,
    pub config: config::Config,
}

impl App {
    pub fn new(sdk: &aws_config::SdkConfig, config: config::Config) -> Self {
        Self::with_client(aws_sdk_dynamodb::Client::new(sdk), config)
    }

    /// An app on a given DynamoDB client (tests attach interceptors to theirs).
    pub fn with_client(client: aws_sdk_dynamodb::Client, config: config::Config) -> Self {
        Self {
            store: store::Store::new(client, config.tables.clone()),
            config,
        }
    }
}

//! Intake's shared crate: the functional core (`model`, `normalize`, `incoming`, `rules`) and
//! the imperative shell every channel uses (`store`, `ingest`), plus HTTP and auth helpers.

pub mod auth;
pub mod config;
pub mod feed;
pub mod forms;
pub mod http;
pub mod idempotency;
pub mod import;
pub mod incoming;
pub mod ingest;
pub mod model;
pub mod normalize;
pub mod rollback;
pub mod rules;
pub mod settings;
pub mod store;
pub mod telemetry;

/// What a function builds once per cold start and hands to every invocation.
#[derive(Debug, Clone)]
pub struct App {
    pub store: store::Store,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub config: config::Config,
}

impl App {
    /// Clients from the SDK configuration. S3 uses path-style addressing when its endpoint is
    /// overridden (a local stand-in on 127.0.0.1 has no virtual-host names).
    pub fn new(sdk: &aws_config::SdkConfig, config: config::Config) -> Self {
        let path_style = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(path_style)
                .build(),
        );
        Self::with_clients(
            aws_sdk_dynamodb::Client::new(sdk),
            s3,
            aws_sdk_sqs::Client::new(sdk),
            config,
        )
    }

    /// An app on given clients (tests attach interceptors to theirs).
    pub fn with_clients(
        dynamodb: aws_sdk_dynamodb::Client,
        s3: aws_sdk_s3::Client,
        sqs: aws_sdk_sqs::Client,
        config: config::Config,
    ) -> Self {
        Self {
            store: store::Store::new(dynamodb, config.tables.clone()),
            s3,
            sqs,
            config,
        }
    }

    /// The import configuration, or an error naming what is missing.
    pub fn imports(&self) -> Result<&config::ImportsConfig, config::ConfigError> {
        self.config
            .imports
            .as_ref()
            .ok_or(config::ConfigError::Missing("INTAKE_IMPORTS_TABLE"))
    }
}

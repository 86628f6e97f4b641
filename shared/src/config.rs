//! Configuration read once per cold start from the environment set by `template.yaml` (or
//! built directly by the local runner and tests): table names and the operator key's hash.

use crate::store::Tables;

/// Errors of configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub tables: Tables,
    /// SHA-256 of the operator key (`POST /v1/accounts`); `None` disables that route.
    pub operator_key_hash: Option<String>,
    /// The import pipeline's resources; `None` in functions that do not import.
    pub imports: Option<ImportsConfig>,
    /// Change polling serves only writes older than this (a write stamped but still in flight,
    /// or not yet in the index, is never passed over).
    pub poll_settle_seconds: i64,
}

/// Longer than a contact transaction with its retries plus GSI propagation.
pub const DEFAULT_POLL_SETTLE_SECONDS: i64 = 30;

/// Where imports live and how they are cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportsConfig {
    pub table: String,
    pub bucket: String,
    pub split_queue_url: String,
    pub chunk_queue_url: String,
    /// Rows per chunk (before rows of cross-chunk identity groups move).
    pub chunk_rows: usize,
    /// A job in flight with no progress for this long is the reconciler's (the redrive
    /// window: visibility timeout × receives before the dead-letter queue).
    pub stuck_after_seconds: i64,
}

/// The SAM template's chunk-queue visibility (1,800 s) × maxReceiveCount (5) is 2.5 hours;
/// a chunk message alive that long is in its dead-letter queue or lost.
pub const DEFAULT_STUCK_AFTER_SECONDS: i64 = 9000;

/// Rows per chunk unless configured: a chunk then takes a few seconds on one worker.
pub const DEFAULT_CHUNK_ROWS: usize = 2000;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any source of variables (the runner resolves the
    /// template's environment per function instead of touching the process environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        Ok(Self {
            tables: Tables {
                contacts: var("INTAKE_CONTACTS_TABLE")?,
                settings: var("INTAKE_SETTINGS_TABLE")?,
            },
            imports: match get("INTAKE_IMPORTS_TABLE") {
                None => None,
                Some(table) => Some(ImportsConfig {
                    table,
                    bucket: var("INTAKE_UPLOAD_BUCKET")?,
                    split_queue_url: var("INTAKE_SPLIT_QUEUE_URL")?,
                    chunk_queue_url: var("INTAKE_CHUNK_QUEUE_URL")?,
                    chunk_rows: get("INTAKE_CHUNK_ROWS")
                        .and_then(|v| v.parse().ok())
                        .filter(|n| *n > 0)
                        .unwrap_or(DEFAULT_CHUNK_ROWS),
                    stuck_after_seconds: get("INTAKE_STUCK_AFTER_SECONDS")
                        .and_then(|v| v.parse().ok())
                        .filter(|n| *n > 0)
                        .unwrap_or(DEFAULT_STUCK_AFTER_SECONDS),
                }),
            },
            poll_settle_seconds: get("INTAKE_POLL_SETTLE_SECONDS")
                .and_then(|v| v.parse().ok())
                .filter(|n| *n >= 0)
                .unwrap_or(DEFAULT_POLL_SETTLE_SECONDS),
            operator_key_hash: get("INTAKE_OPERATOR_KEY")
                .filter(|k| !k.is_empty())
                .map(|k| crate::auth::hash_key(&k)),
        })
    }
}

/// Loads the AWS SDK configuration once. Endpoint overrides (`AWS_ENDPOINT_URL_DYNAMODB`, …)
/// are honoured by the SDK itself, so production code needs no local branch.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

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
}

fn var(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name).map_err(|_| ConfigError::Missing(name))
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            tables: Tables {
                contacts: var("INTAKE_CONTACTS_TABLE")?,
                settings: var("INTAKE_SETTINGS_TABLE")?,
            },
            operator_key_hash: std::env::var("INTAKE_OPERATOR_KEY")
                .ok()
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

//! Logging set-up: JSON lines in Lambda, filtered by `RUST_LOG`. Log lines carry ids and
//! outcomes only — never an email, a phone number or a name.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}

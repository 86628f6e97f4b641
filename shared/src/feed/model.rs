//! A feed as stored (R-FEED-1..4, -8) and the record of one run (R-FEED-5, issue 7). Pure data.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::map::FeedMapping;
use crate::model::AccountId;
use crate::rules::KeyField;

/// When a feed runs (R-FEED-2): every day, week (on `weekday`, 1 = Monday) or month (on
/// `day`), at a local time in a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub every: Every,
    /// "HH:MM"
    pub at: String,
    pub timezone: String,
    #[serde(default)]
    pub weekday: Option<u8>,
    #[serde(default)]
    pub day: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Every {
    Day,
    Week,
    Month,
}

/// A configured ERP feed. `key` is a secret: stored, never returned or logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feed {
    pub feed_id: String,
    pub account_id: AccountId,
    pub url: String,
    #[serde(default)]
    pub key: Option<String>,
    pub root: String,
    pub item: String,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub list_id: Option<String>,
    #[serde(flatten)]
    pub mapping: FeedMapping,
    pub primary_key: KeyField,
    #[serde(default)]
    pub secondary_key: Option<KeyField>,
    pub active: bool,
    /// Every field found in the feed so far (R-FEED-8: new ones are listed for mapping).
    #[serde(default)]
    pub fields_seen: BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub last_run_at: Option<DateTime<Utc>>,
}

impl Feed {
    /// The URL fetched: the feed URL with its key as the `key` query parameter.
    pub fn fetch_url(&self) -> String {
        match &self.key {
            None => self.url.clone(),
            Some(k) => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                let key: String = form_urlencoded::byte_serialize(k.as_bytes()).collect();
                format!("{}{sep}key={key}", self.url)
            }
        }
    }
}

/// One run of a feed (`GET /v1/feeds/{id}/runs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// "completed", "completed_with_errors" or "failed".
    pub status: String,
    pub items: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Customers merged into an earlier one sharing the key (R-FEED-5), by ERP position.
    pub merged_duplicates: Vec<MergedCustomer>,
    pub errors: Vec<RunError>,
    /// Fields that appeared in this snapshot and have no pair yet (R-FEED-8).
    pub new_fields: Vec<String>,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedCustomer {
    pub item: u64,
    pub into_item: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    pub item: u64,
    pub field: String,
    pub reason: String,
}

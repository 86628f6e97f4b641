//! Feeds and their runs in the settings table, under the account: `ACC#<a>#FEED#<id>` holds
//! the feed (`FEED`) and its runs (`RUN#<started>#<id>`, newest last).

use aws_sdk_dynamodb::types::AttributeValue;

use super::items;
use super::{Store, StoreError};
use crate::feed::model::{Feed, Run};
use crate::model::AccountId;

/// The partition listing active feeds (small: one item per active feed).
const ACTIVE_FEEDS: &str = "FEEDS#ACTIVE";

fn feed_pk(account: &AccountId, feed_id: &str) -> String {
    format!("ACC#{}#FEED#{feed_id}", account.0)
}

impl Store {
    pub async fn put_feed(&self, feed: &Feed) -> Result<(), StoreError> {
        self.put_as(
            &self.tables().settings,
            feed_pk(&feed.account_id, &feed.feed_id),
            "FEED",
            feed,
        )
        .await
    }

    pub async fn feed(
        &self,
        account: &AccountId,
        feed_id: &str,
    ) -> Result<Option<Feed>, StoreError> {
        let key = items::key(feed_pk(account, feed_id), "FEED");
        self.get_as(&self.tables().settings, key).await
    }

    /// Lists an active feed in the one index the scheduler reads.
    pub async fn index_active_feed(&self, feed: &Feed) -> Result<(), StoreError> {
        self.put_as(
            &self.tables().settings,
            ACTIVE_FEEDS.into(),
            &format!("{}#{}", feed.account_id.0, feed.feed_id),
            &serde_json::json!({"account_id": feed.account_id, "feed_id": feed.feed_id}),
        )
        .await
    }

    /// Every active feed: (account, feed id).
    pub async fn active_feeds(&self) -> Result<Vec<(AccountId, String)>, StoreError> {
        let query = (self.client().query())
            .table_name(&self.tables().settings)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(ACTIVE_FEEDS.into()));
        let found = Self::query_all(query).await?;
        Ok(found
            .iter()
            .filter_map(|item| {
                let account = items::string_attr(item, "account_id")?;
                Some((AccountId(account), items::string_attr(item, "feed_id")?))
            })
            .collect())
    }

    /// New members of a list per day, `from` to `to` inclusive (`yyyy-mm-dd`), every channel
    /// (R-FEED-9). Days without a new member are absent.
    pub async fn list_growth(
        &self,
        account: &AccountId,
        list_id: &str,
        from: &str,
        to: &str,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let query = (self.client().query())
            .table_name(&self.tables().settings)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", AttributeValue::S(items::list_pk(account, list_id)))
            .expression_attribute_values(
                ":from",
                AttributeValue::S(format!("{}{from}", items::JOINED_PREFIX)),
            )
            .expression_attribute_values(
                ":to",
                AttributeValue::S(format!("{}{to}#\u{10FFFF}", items::JOINED_PREFIX)),
            )
            .projection_expression("#d")
            .expression_attribute_names("#d", "day");
        let mut days = std::collections::BTreeMap::new();
        for item in Self::query_all(query).await? {
            if let Some(day) = items::string_attr(&item, "day") {
                *days.entry(day).or_insert(0) += 1;
            }
        }
        Ok(days)
    }

    pub async fn put_run(
        &self,
        account: &AccountId,
        feed_id: &str,
        run: &Run,
    ) -> Result<(), StoreError> {
        let started = run.started_at.map(|t| t.to_rfc3339()).unwrap_or_default();
        self.put_as(
            &self.tables().settings,
            feed_pk(account, feed_id),
            &format!("RUN#{started}#{}", run.run_id),
            run,
        )
        .await
    }

    /// The feed's runs, oldest first (at most `limit`, the newest ones).
    pub async fn runs(
        &self,
        account: &AccountId,
        feed_id: &str,
        limit: i32,
    ) -> Result<Vec<Run>, StoreError> {
        let out = self
            .client()
            .query()
            .table_name(&self.tables().settings)
            .key_condition_expression("pk = :pk AND begins_with(sk, :r)")
            .expression_attribute_values(":pk", AttributeValue::S(feed_pk(account, feed_id)))
            .expression_attribute_values(":r", AttributeValue::S("RUN#".into()))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::service("Query", e))?;
        let mut runs = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(items::decode)
            .collect::<Result<Vec<Run>, _>>()?;
        runs.reverse();
        Ok(runs)
    }
}

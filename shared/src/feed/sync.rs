//! One feed run (R-FEED-1, -5, -7, -8): fetch safely, read the XML, list fields that appeared
//! without a pair (the run is flagged, the sync goes on), map the items, merge customers that
//! share the key into the first of them (each case reported), and upsert through `ingest` with
//! the feed's keys. Customers missing from a snapshot are left alone. The run is recorded.

use chrono::{DateTime, Utc};

use super::model::{Feed, MergedCustomer, Run, RunError};
use super::{fetch, map, xml};
use crate::import::clean;
use crate::ingest::{self, Outcome, Policy};
use crate::model::ContactId;
use crate::rules::{Master, MatchKeys, Matching};
use crate::store::StoreError;
use crate::App;

/// Items per ingest call.
const BATCH: usize = 500;

/// Records when the feed last ran (the scheduler's "not since"), keeping fields seen meanwhile.
async fn mark_ran(app: &App, feed: &Feed, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut current = app
        .store
        .feed(&feed.account_id, &feed.feed_id)
        .await?
        .unwrap_or_else(|| feed.clone());
    current.last_run_at = Some(now);
    app.store.put_feed(&current).await
}

/// Every active feed whose schedule is due at `now` is run (R-FEED-2). Returns how many ran.
pub async fn run_due(app: &App, now: DateTime<Utc>) -> Result<u32, StoreError> {
    let mut ran = 0;
    for (account, feed_id) in app.store.active_feeds().await? {
        let Some(feed) = app.store.feed(&account, &feed_id).await? else {
            continue;
        };
        let due = feed.active
            && feed
                .schedule
                .as_ref()
                .is_some_and(|s| super::schedule::due(s, feed.last_run_at, feed.created_at, now));
        if due {
            run(app, &feed, now).await?;
            ran += 1;
        }
    }
    Ok(ran)
}

/// Runs `feed` now and records the run; the feed's seen fields are updated.
pub async fn run(app: &App, feed: &Feed, now: DateTime<Utc>) -> Result<Run, StoreError> {
    let settings = app
        .store
        .account(&feed.account_id)
        .await?
        .map(|a| a.settings)
        .unwrap_or_default();
    let mut run = Run {
        run_id: format!("run_{}", uuid::Uuid::new_v4().simple()),
        started_at: Some(now),
        ..Run::default()
    };
    let limits = fetch::Limits::for_account(settings.allow_private_feed_urls);
    let doc = match fetch::get(&feed.fetch_url(), &limits).await {
        Err(e) => Err(e.to_string()),
        Ok(body) => xml::parse(&body, &feed.root, &feed.item, &xml::Limits::default())
            .map_err(|e| e.to_string()),
    };
    let doc = match doc {
        Ok(d) => d,
        Err(reason) => {
            run.status = "failed".into();
            run.failure = Some(reason);
            run.finished_at = Some(Utc::now());
            app.store
                .put_run(&feed.account_id, &feed.feed_id, &run)
                .await?;
            mark_ran(app, feed, now).await?;
            tracing::warn!(account_id = %feed.account_id, feed_id = %feed.feed_id, "feed run failed");
            return Ok(run);
        }
    };
    run.items = doc.items.len() as u64;
    run.new_fields = map::unmapped(&doc.fields, &feed.mapping);
    if !doc.fields.is_subset(&feed.fields_seen) {
        let mut updated = feed.clone();
        updated.fields_seen.extend(doc.fields.iter().cloned());
        app.store.put_feed(&updated).await?;
    }
    let source = format!("feed:{}", feed.feed_id);
    let mut records = Vec::with_capacity(doc.items.len());
    for (i, item) in doc.items.iter().enumerate() {
        let n = i as u64 + 1;
        match map::map_item(item, &feed.mapping, settings.country(), &source) {
            Ok(mut rec) => {
                rec.lists.extend(feed.list_id.clone());
                records.push((n, 0u8, rec));
            }
            Err(errors) => run.errors.extend(errors.into_iter().map(|e| RunError {
                item: n,
                field: e.field,
                reason: e.reason,
            })),
        }
    }
    let keys = MatchKeys {
        primary: feed.primary_key,
        secondary: feed.secondary_key,
    };
    let (records, merged) = clean::fold_duplicates(records, keys, Master::Incoming);
    run.merged_duplicates = merged
        .into_iter()
        .map(|m| MergedCustomer {
            item: m.row,
            into_item: m.into_row,
        })
        .collect();
    let policy = Policy {
        matching: Matching::Keys(keys),
        merge: ingest::context(now, source, None, Master::Incoming),
        default_country: None,
        undo: None,
    };
    for batch in records.chunks(BATCH) {
        let incoming: Vec<_> = batch.iter().map(|(_, _, r)| r.clone()).collect();
        let ids: Vec<ContactId> = batch
            .iter()
            .map(|_| ContactId(uuid::Uuid::new_v4().to_string()))
            .collect();
        let (results, _) =
            ingest::upsert_many(&app.store, &feed.account_id, &incoming, &ids, &policy).await;
        for ((n, _, _), result) in batch.iter().zip(results) {
            match result {
                Ok(a) => match a.outcome {
                    Outcome::Created => run.created += 1,
                    Outcome::Updated => run.updated += 1,
                    Outcome::Unchanged => run.unchanged += 1,
                },
                Err(e) => run.errors.push(RunError {
                    item: *n,
                    field: String::new(),
                    reason: e.to_string(),
                }),
            }
        }
    }
    run.status = if run.errors.is_empty() {
        "completed".into()
    } else {
        "completed_with_errors".into()
    };
    run.finished_at = Some(Utc::now());
    app.store
        .put_run(&feed.account_id, &feed.feed_id, &run)
        .await?;
    mark_ran(app, feed, now).await?;
    tracing::info!(account_id = %feed.account_id, feed_id = %feed.feed_id, items = run.items, created = run.created, updated = run.updated, merged = run.merged_duplicates.len(), new_fields = run.new_fields.len(), "feed run");
    Ok(run)
}

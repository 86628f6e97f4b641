//! The imperative shell every channel calls: look up identity owners (BatchGetItem), read the
//! matched contacts, let `rules` decide, write with conditions (packed TransactWriteItems), and
//! on a failed condition or a conflict re-read and decide again, a bounded number of times.
//!
//! Records are applied in waves: a record that shares an identity value or a target contact
//! with an earlier pending record waits for the next wave, so one call gives the same result as
//! applying its records one by one in order, and no transaction names one item twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::incoming::Incoming;
use crate::model::{AccountId, Contact, ContactId};
use crate::rules::{
    self, incoming_keys, Decision, IdentityKey, KeyField, Match, Matching, MergeContext, Owners,
    RuleError,
};
use crate::store::contacts::{ContactWrite, UndoLog};
use crate::store::{backoff, CancelReason, Store, StoreError, TxOutcome, TRANSACT_MAX_ACTIONS};

/// Attempts per record before giving up on contention.
pub const MAX_ATTEMPTS: u32 = 8;
/// Transactions in flight at once for one call.
const TX_CONCURRENCY: usize = 8;

/// How a channel ingests: its matching rule and the context of the merge.
#[derive(Debug, Clone)]
pub struct Policy {
    pub matching: Matching,
    pub merge: MergeContext,
    /// Given to a contact created with no values at all (R-MAN-2).
    pub default_country: Option<String>,
    /// Imports keep an undo record per contact they write, in the same transaction.
    pub undo: Option<UndoLog>,
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// A record applied: the contact as stored, the outcome and the key that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub contact: Contact,
    pub outcome: Outcome,
    pub matched_on: Option<KeyField>,
}

/// Errors of the ingest layer.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("gave up after {MAX_ATTEMPTS} attempts: the contact kept changing underneath")]
    Contention,
    #[error("identity item points at missing contact {0}")]
    DanglingIdentity(ContactId),
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        Self::Store(Arc::new(e))
    }
}

/// Counts of DynamoDB calls made by one `upsert_many`, for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CallStats {
    pub waves: u32,
    pub lookups: u32,
    pub transactions: u32,
    /// Write capacity units of the committed writes, by AWS's pricing rules.
    pub write_units: f64,
}

struct Planned {
    index: usize,
    write: ContactWrite,
    applied: Applied,
}

/// Applies `records` for `account`. `new_ids[i]` is the id record `i` gets if it creates a
/// contact (random for the API, derived from job and row for imports). One result per record,
/// in order; a bad record never fails the others.
pub async fn upsert_many(
    store: &Store,
    account: &AccountId,
    records: &[Incoming],
    new_ids: &[ContactId],
    policy: &Policy,
) -> (Vec<Result<Applied, IngestError>>, CallStats) {
    upsert_many_with(store, account, records, new_ids, policy, &mut Mode::Write).await
}

/// Where decisions go: DynamoDB, or an in-memory overlay for a dry run.
pub enum Mode<'a> {
    Write,
    /// Reads see the overlay first; writes land in it. The wizard's validate uses this: the
    /// same code path as an import, nothing written, later rows see earlier rows' effects.
    DryRun(&'a mut Overlay),
}

/// What a dry run would have written: identity owners (`None` = released) and contacts.
#[derive(Debug, Default)]
pub struct Overlay {
    owners: HashMap<IdentityKey, Option<ContactId>>,
    contacts: HashMap<ContactId, Contact>,
}

impl Overlay {
    fn apply(&mut self, write: &ContactWrite) {
        for key in &write.identity.releases {
            self.owners.insert(key.clone(), None);
        }
        for key in &write.identity.claims {
            self.owners
                .insert(key.clone(), Some(write.after.id.clone()));
        }
        self.contacts
            .insert(write.after.id.clone(), write.after.clone());
    }
}

async fn lookup_owners(
    store: &Store,
    account: &AccountId,
    keys: &[IdentityKey],
    mode: &Mode<'_>,
) -> Result<HashMap<IdentityKey, ContactId>, StoreError> {
    let overlay = match mode {
        Mode::DryRun(o) => Some(&o.owners),
        Mode::Write => None,
    };
    let unknown: Vec<IdentityKey> = keys
        .iter()
        .filter(|k| overlay.is_none_or(|o| !o.contains_key(*k)))
        .cloned()
        .collect();
    let mut owners = if unknown.is_empty() {
        HashMap::new()
    } else {
        store.identity_owners(account, &unknown).await?
    };
    for (k, v) in overlay.into_iter().flatten() {
        if let (true, Some(id)) = (keys.contains(k), v) {
            owners.insert(k.clone(), id.clone());
        }
    }
    Ok(owners)
}

async fn load_contacts(
    store: &Store,
    account: &AccountId,
    ids: &[ContactId],
    mode: &Mode<'_>,
) -> Result<HashMap<ContactId, Contact>, StoreError> {
    let overlay = match mode {
        Mode::DryRun(o) => Some(&o.contacts),
        Mode::Write => None,
    };
    let unknown: Vec<ContactId> = ids
        .iter()
        .filter(|id| overlay.is_none_or(|o| !o.contains_key(*id)))
        .cloned()
        .collect();
    let mut found = if unknown.is_empty() {
        HashMap::new()
    } else {
        store.contacts(account, &unknown).await?
    };
    for id in ids {
        if let Some(c) = overlay.and_then(|o| o.get(id)) {
            found.insert(id.clone(), c.clone());
        }
    }
    Ok(found)
}

/// `upsert_many` writing to DynamoDB or, in a dry run, to an overlay.
pub async fn upsert_many_with(
    store: &Store,
    account: &AccountId,
    records: &[Incoming],
    new_ids: &[ContactId],
    policy: &Policy,
    mode: &mut Mode<'_>,
) -> (Vec<Result<Applied, IngestError>>, CallStats) {
    let n = records.len();
    let mut results: Vec<Option<Result<Applied, IngestError>>> = (0..n).map(|_| None).collect();
    let mut attempts = vec![0u32; n];
    let mut pending: Vec<usize> = (0..n).collect();
    let mut stats = CallStats::default();
    let mut round = 0;
    while !pending.is_empty() {
        stats.waves += 1;
        let (wave, mut deferred) = split_by_identity(records, &pending);
        let retry = match run_wave(
            store,
            account,
            records,
            new_ids,
            policy,
            &wave,
            &mut results,
            &mut stats,
            mode,
        )
        .await
        {
            Ok(wave_out) => {
                deferred.extend(wave_out.deferred);
                wave_out.retry
            }
            Err(err) => {
                tracing::error!(error = %err, "ingest look-up failed");
                let err = Arc::new(err);
                for &i in &wave {
                    results[i] = Some(Err(IngestError::Store(err.clone())));
                }
                Vec::new()
            }
        };
        let conflicted = !retry.is_empty();
        for i in retry {
            attempts[i] += 1;
            if attempts[i] >= MAX_ATTEMPTS {
                results[i] = Some(Err(IngestError::Contention));
            } else {
                deferred.push(i);
            }
        }
        deferred.sort_unstable();
        deferred.dedup();
        pending = deferred;
        if conflicted {
            round += 1;
            backoff(round).await;
        }
    }
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(IngestError::Contention)))
        .collect();
    (results, stats)
}

/// Splits pending records into a wave of records with pairwise disjoint identity values and
/// the rest, keeping order.
fn split_by_identity(records: &[Incoming], pending: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut seen: HashSet<IdentityKey> = HashSet::new();
    let (mut wave, mut rest) = (Vec::new(), Vec::new());
    for &i in pending {
        let keys = incoming_keys(&records[i]);
        if keys.iter().any(|k| seen.contains(k)) {
            seen.extend(keys);
            rest.push(i);
        } else {
            seen.extend(keys);
            wave.push(i);
        }
    }
    (wave, rest)
}

/// A record of a wave, its identity owners and what it matched.
type Matched = (usize, Owners, Option<(ContactId, KeyField)>);

struct WaveOut {
    deferred: Vec<usize>,
    retry: Vec<usize>,
}

#[allow(clippy::too_many_arguments)]
async fn run_wave(
    store: &Store,
    account: &AccountId,
    records: &[Incoming],
    new_ids: &[ContactId],
    policy: &Policy,
    wave: &[usize],
    results: &mut [Option<Result<Applied, IngestError>>],
    stats: &mut CallStats,
    mode: &mut Mode<'_>,
) -> Result<WaveOut, StoreError> {
    let keys: Vec<IdentityKey> = wave
        .iter()
        .flat_map(|&i| incoming_keys(&records[i]))
        .collect();
    let owners = if keys.is_empty() {
        HashMap::new()
    } else {
        lookup_owners(store, account, &keys, mode).await?
    };
    stats.lookups += 1;

    let mut matched: Vec<Matched> = Vec::new();
    for &i in wave {
        let o = Owners::from_found(&records[i], &owners);
        match rules::find_match(&records[i], policy.matching, &o) {
            Ok(Match::Existing { id, on }) => matched.push((i, o, Some((id, on)))),
            Ok(Match::New) => matched.push((i, o, None)),
            Err(e) => results[i] = Some(Err(e.into())),
        }
    }
    let targets: Vec<ContactId> = matched
        .iter()
        .filter_map(|(_, _, m)| m.as_ref().map(|(id, _)| id.clone()))
        .collect();
    let contacts = if targets.is_empty() {
        HashMap::new()
    } else {
        load_contacts(store, account, &targets, mode).await?
    };
    if !targets.is_empty() {
        stats.lookups += 1;
    }

    let replayed = replayed(store, policy, &contacts, mode).await?;
    let mut deferred = Vec::new();
    let mut taken: HashSet<ContactId> = HashSet::new();
    let mut planned = Vec::new();
    for (i, o, m) in matched {
        let found = match &m {
            Some((id, on)) => match contacts.get(id) {
                Some(c) => Some((c, *on)),
                None => {
                    results[i] = Some(Err(IngestError::DanglingIdentity(id.clone())));
                    continue;
                }
            },
            None => None,
        };
        if let Some((c, on)) = found {
            if !taken.insert(c.id.clone()) {
                deferred.push(i);
                continue;
            }
            if let Some(created) = replayed.get(&c.id) {
                results[i] = Some(Ok(Applied {
                    contact: c.clone(),
                    outcome: if *created {
                        Outcome::Created
                    } else {
                        Outcome::Updated
                    },
                    matched_on: Some(on),
                }));
                continue;
            }
        }
        let decision = rules::decide(
            &records[i],
            found,
            new_ids[i].clone(),
            &policy.merge,
            policy.default_country.as_deref(),
        );
        match plan(decision, &o, &new_ids[i]) {
            Step::Done(applied) => results[i] = Some(Ok(applied)),
            Step::Write(write, applied) => planned.push(Planned {
                index: i,
                write,
                applied,
            }),
        }
    }
    let retry = match mode {
        Mode::Write => {
            write_all(
                store,
                account,
                planned,
                results,
                stats,
                policy.undo.as_ref(),
            )
            .await?
        }
        Mode::DryRun(overlay) => {
            for p in planned {
                overlay.apply(&p.write);
                results[p.index] = Some(Ok(p.applied));
            }
            Vec::new()
        }
    };
    Ok(WaveOut { deferred, retry })
}

/// Contacts this chunk already wrote on an earlier delivery and someone changed since (their
/// version moved past the one the chunk left): a redelivery must not apply the file again over
/// the newer change. Only contacts carrying the import's label are looked up. The value says
/// whether the chunk created the contact.
async fn replayed(
    store: &Store,
    policy: &Policy,
    contacts: &HashMap<ContactId, Contact>,
    mode: &Mode<'_>,
) -> Result<HashMap<ContactId, bool>, StoreError> {
    let (Mode::Write, Some(log), Some(label)) = (mode, &policy.undo, &policy.merge.label) else {
        return Ok(HashMap::new());
    };
    if log.chunk.is_none() {
        return Ok(HashMap::new());
    }
    let labelled: Vec<ContactId> = contacts
        .values()
        .filter(|c| c.labels.contains(label))
        .map(|c| c.id.clone())
        .collect();
    if labelled.is_empty() {
        return Ok(HashMap::new());
    }
    let records = store.undo_records(log, &labelled).await?;
    Ok(records
        .into_iter()
        .filter(|(id, r)| {
            r.chunk == log.chunk
                && contacts
                    .get(id)
                    .is_some_and(|c| c.version != r.after_version)
        })
        .map(|(id, r)| (id, r.before.is_none()))
        .collect())
}

/// A decision turned into work: finished (unchanged, nothing to write) or a write to make.
#[allow(clippy::large_enum_variant)] // transient, one per record; boxing would only allocate
enum Step {
    Done(Applied),
    Write(ContactWrite, Applied),
}

/// Turns a decision into a finished result or a write.
fn plan(decision: Decision, owners: &Owners, new_id: &ContactId) -> Step {
    match decision {
        Decision::Unchanged { contact, on } => {
            // A create whose answer was lost finds itself on the retry: still "created".
            let outcome = if &contact.id == new_id && contact.version == 1 {
                Outcome::Created
            } else {
                Outcome::Unchanged
            };
            let matched_on = (outcome == Outcome::Unchanged).then_some(on);
            Step::Done(Applied {
                contact,
                outcome,
                matched_on,
            })
        }
        Decision::Create(mut after) => {
            let identity = rules::plan_identity(None, &mut after, owners);
            let applied = Applied {
                contact: after.clone(),
                outcome: Outcome::Created,
                matched_on: None,
            };
            Step::Write(
                ContactWrite {
                    before: None,
                    after,
                    identity,
                },
                applied,
            )
        }
        Decision::Update {
            before,
            mut after,
            on,
        } => {
            let identity = rules::plan_identity(Some(&before), &mut after, owners);
            let applied = Applied {
                contact: after.clone(),
                outcome: Outcome::Updated,
                matched_on: Some(on),
            };
            Step::Write(
                ContactWrite {
                    before: Some(before),
                    after,
                    identity,
                },
                applied,
            )
        }
    }
}

/// Packs writes into transactions of at most `TRANSACT_MAX_ACTIONS` actions (a contact's
/// actions never split), runs them concurrently, and returns the records to retry.
async fn write_all(
    store: &Store,
    account: &AccountId,
    planned: Vec<Planned>,
    results: &mut [Option<Result<Applied, IngestError>>],
    stats: &mut CallStats,
    undo: Option<&UndoLog>,
) -> Result<Vec<usize>, StoreError> {
    let mut batches: Vec<(
        Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
        Vec<Planned>,
    )> = Vec::new();
    for p in planned {
        let mut actions = store.write_actions(account, &p.write)?;
        if let Some(log) = undo {
            actions.push(store.undo_action(account, log, &p.write)?);
        }
        match batches.last_mut() {
            Some((acts, ps)) if acts.len() + actions.len() <= TRANSACT_MAX_ACTIONS => {
                acts.extend(actions);
                ps.push(p);
            }
            _ => batches.push((actions, vec![p])),
        }
    }
    stats.transactions += batches.len() as u32;
    let outcomes: Vec<(Vec<Planned>, Result<TxOutcome, StoreError>)> = stream::iter(batches)
        .map(|(actions, ps)| async move {
            let token = uuid::Uuid::new_v4().to_string();
            (ps, store.transact(actions, &token).await)
        })
        .buffer_unordered(TX_CONCURRENCY)
        .collect()
        .await;
    let mut retry = Vec::new();
    for (ps, outcome) in outcomes {
        match outcome {
            Ok(TxOutcome::Committed) => {
                for p in ps {
                    let mut units = store.modelled_write_units(account, &p.write)?;
                    if undo.is_some() {
                        units += store.undo_write_units(account, &p.write)?;
                    }
                    store.record_modelled_write_units(units);
                    stats.write_units += units;
                    results[p.index] = Some(Ok(p.applied));
                }
            }
            Ok(TxOutcome::Cancelled(reasons)) => {
                let bad: Vec<&CancelReason> = reasons
                    .iter()
                    .filter(|r| **r != CancelReason::None)
                    .collect();
                tracing::debug!(reasons = ?bad, records = ps.len(), "transaction cancelled; re-reading");
                retry.extend(ps.iter().map(|p| p.index));
            }
            Err(err) => {
                tracing::error!(error = %err, "transaction failed");
                let err = Arc::new(err);
                for p in ps {
                    results[p.index] = Some(Err(IngestError::Store(err.clone())));
                }
            }
        }
    }
    Ok(retry)
}

/// One record, one result: the single-contact upsert of the API.
pub async fn upsert_one(
    store: &Store,
    account: &AccountId,
    record: Incoming,
    new_id: ContactId,
    policy: &Policy,
) -> Result<Applied, IngestError> {
    let (mut results, _) = upsert_many(store, account, &[record], &[new_id], policy).await;
    results.pop().unwrap_or(Err(IngestError::Contention))
}

/// The merge context of a channel at `now`.
pub fn context(
    now: DateTime<Utc>,
    source: impl Into<String>,
    label: Option<String>,
    master: rules::Master,
) -> MergeContext {
    MergeContext {
        now,
        source: source.into(),
        label,
        master,
    }
}

//! The matching rules of every channel (SPEC.md R-GEN, R-IMP, R-MST, R-FORM, R-MAN, R-API,
//! R-FEED-7) as pure functions: no IO, no clock, no ids — all of them come in as arguments.
//! The shell (`ingest`) looks up candidates, calls these, and writes what they decide.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::incoming::{ConsentClaim, Incoming};
use crate::model::{Consent, ConsentStatus, Contact, ContactId};

/// A field that can identify a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyField {
    Email,
    Mobile,
    /// An id another system gives the contact, such as an ERP customer code (R-FEED-5).
    #[serde(alias = "customer_code")]
    ExternalId,
}

/// Primary and optional secondary key (R-IMP-1). The API default is mobile, then email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchKeys {
    pub primary: KeyField,
    #[serde(default)]
    pub secondary: Option<KeyField>,
}

impl Default for MatchKeys {
    fn default() -> Self {
        Self {
            primary: KeyField::Mobile,
            secondary: Some(KeyField::Email),
        }
    }
}

/// Who wins when a matched contact already has a value (R-MST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Master {
    /// The incoming record overwrites (R-MST-1; API, forms, feeds).
    #[default]
    Incoming,
    /// Existing values stay; only empty fields are filled (R-MST-2).
    Existing,
}

/// How a channel decides whether a record is an existing contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// Import, API and feed: primary key, then secondary for rows the primary did not match.
    Keys(MatchKeys),
    /// Signup forms: mobile only when a mobile is known, else email (R-FORM-1..3).
    Form,
    /// Manual creation: never matches (R-MAN-1).
    Never,
}

/// The owners of the incoming record's identity values, read from the identity items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners {
    pub email: Option<ContactId>,
    pub mobile: Option<ContactId>,
    pub external_id: Option<ContactId>,
}

impl Owners {
    fn of(&self, key: KeyField) -> Option<&ContactId> {
        match key {
            KeyField::Email => self.email.as_ref(),
            KeyField::Mobile => self.mobile.as_ref(),
            KeyField::ExternalId => self.external_id.as_ref(),
        }
    }
}

/// Why a record cannot be matched or created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("no identifier: the record has no {keys} value")]
    NoIdentifier { keys: String },
}

impl RuleError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoIdentifier { .. } => "no_identifier",
        }
    }
}

/// The result of matching: an existing contact (and the key that found it) or a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Existing { id: ContactId, on: KeyField },
    New,
}

fn has_value(incoming: &Incoming, key: KeyField) -> bool {
    match key {
        KeyField::Email => incoming.email.is_some(),
        KeyField::Mobile => incoming.mobile.is_some(),
        KeyField::ExternalId => incoming.external_id.is_some(),
    }
}

impl KeyField {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Mobile => "mobile",
            Self::ExternalId => "external_id",
        }
    }
}

/// The keys a signup form matches on (R-FORM-1..3): the mobile alone when there is one
/// (a valid SMS token has already put its mobile on the record), else the email.
pub fn form_keys(incoming: &Incoming) -> MatchKeys {
    let primary = if incoming.mobile.is_some() {
        KeyField::Mobile
    } else {
        KeyField::Email
    };
    MatchKeys {
        primary,
        secondary: None,
    }
}

/// Finds the contact a record belongs to (R-IMP-2, R-IMP-3, R-IMP-4, R-FORM, R-MAN-1).
/// A row with an empty primary value falls through to the secondary key; a row with
/// neither value is an error, never a silent create.
pub fn find_match(
    incoming: &Incoming,
    matching: Matching,
    owners: &Owners,
) -> Result<Match, RuleError> {
    let keys = match matching {
        Matching::Never => return Ok(Match::New),
        Matching::Form => form_keys(incoming),
        Matching::Keys(keys) => keys,
    };
    let candidates = std::iter::once(keys.primary).chain(keys.secondary);
    let mut any_value = false;
    for key in candidates {
        if !has_value(incoming, key) {
            continue;
        }
        any_value = true;
        if let Some(id) = owners.of(key) {
            return Ok(Match::Existing {
                id: id.clone(),
                on: key,
            });
        }
    }
    if !any_value {
        let names: Vec<&str> = std::iter::once(keys.primary)
            .chain(keys.secondary)
            .map(|k| k.as_str())
            .collect();
        return Err(RuleError::NoIdentifier {
            keys: names.join(" or "),
        });
    }
    Ok(Match::New)
}

/// What the rules need besides the record: the time, the channel's source tag for consent,
/// the label to stamp on touched contacts, and who is master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeContext {
    pub now: DateTime<Utc>,
    pub source: String,
    pub label: Option<String>,
    pub master: Master,
}

/// Applies one consent claim (R-FEED-7, used by every channel): a claim only replaces a state
/// that is not newer than itself; an undated claim dates from `now`; a claim equal to the
/// stored status changes nothing (the original date and source are kept). On a tie of dates
/// the opt-out wins. Under R-MST-2 a known status is never replaced.
pub fn merge_consent(
    existing: &Consent,
    claim: &ConsentClaim,
    ctx: &MergeContext,
) -> Option<Consent> {
    if claim.status == ConsentStatus::Unknown || claim.status == existing.status {
        return None;
    }
    if ctx.master == Master::Existing && existing.status != ConsentStatus::Unknown {
        return None;
    }
    let at = claim.at.unwrap_or(ctx.now);
    if let Some(existing_at) = existing.at {
        let older = at < existing_at;
        let tie_lost = at == existing_at && existing.status == ConsentStatus::OptedOut;
        if older || tie_lost {
            return None;
        }
    }
    Some(Consent {
        status: claim.status,
        at: Some(at),
        source: Some(ctx.source.clone()),
        evidence: claim.evidence.clone(),
    })
}

fn take<T: Clone + PartialEq>(slot: &mut Option<T>, incoming: &Option<T>, master: Master) {
    if let Some(v) = incoming {
        let replace = match master {
            Master::Incoming => slot.as_ref() != Some(v),
            Master::Existing => slot.is_none(),
        };
        if replace {
            *slot = Some(v.clone());
        }
    }
}

/// Applies a record to a contact (R-GEN-1, R-MST-1, R-MST-2): absent and empty values never
/// erase; memberships are added; consent follows `merge_consent`. Returns `None` when no
/// stored value would change — the caller then writes nothing.
pub fn merge(existing: &Contact, incoming: &Incoming, ctx: &MergeContext) -> Option<Contact> {
    let mut next = existing.clone();
    let master = ctx.master;
    for ((_, slot), (_, value)) in next
        .fields
        .slots_mut()
        .into_iter()
        .zip(incoming.fields.slots())
    {
        take(slot, value, master);
    }
    let same_email = match (&next.email, &incoming.email) {
        (Some(a), Some(b)) => a.normalized() == b.normalized(),
        _ => false,
    };
    if !same_email {
        take(&mut next.email, &incoming.email, master);
    }
    take(&mut next.mobile, &incoming.mobile, master);
    take(&mut next.external_id, &incoming.external_id, master);
    for (name, value) in &incoming.custom {
        let mut slot = next.custom.get(name).cloned();
        take(&mut slot, &Some(value.clone()), master);
        if let Some(v) = slot {
            next.custom.insert(name.clone(), v);
        }
    }
    if let Some(c) = incoming
        .email_marketing
        .as_ref()
        .and_then(|claim| merge_consent(&next.email_marketing, claim, ctx))
    {
        next.email_marketing = c;
    }
    if let Some(c) = incoming
        .sms_marketing
        .as_ref()
        .and_then(|claim| merge_consent(&next.sms_marketing, claim, ctx))
    {
        next.sms_marketing = c;
    }
    next.lists.extend(incoming.lists.iter().cloned());
    next.tags.extend(incoming.tags.iter().cloned());
    if next.same_values(existing) {
        return None;
    }
    next.labels.extend(ctx.label.iter().cloned());
    next.updated_at = ctx.now;
    next.version = existing.version + 1;
    Some(next)
}

/// A new contact from a record (R-GEN-2). `default_country` fills `country` only for a
/// record with no values at all (R-MAN-2).
pub fn create(
    id: ContactId,
    incoming: &Incoming,
    ctx: &MergeContext,
    default_country: Option<&str>,
) -> Contact {
    let mut blank = Contact::empty(id, ctx.now);
    let create_ctx = MergeContext {
        master: Master::Incoming,
        ..ctx.clone()
    };
    let mut contact = merge(&blank, incoming, &create_ctx).unwrap_or_else(|| {
        blank.fields.country = default_country.map(str::to_owned);
        blank.labels.extend(ctx.label.iter().cloned());
        blank.version = 1;
        blank
    });
    contact.created_at = ctx.now;
    contact.version = 1;
    contact
}

/// What the rules decided for one record.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // transient, one per record; boxing would only allocate
pub enum Decision {
    Create(Contact),
    Update {
        before: Contact,
        after: Contact,
        on: KeyField,
    },
    Unchanged {
        contact: Contact,
        on: KeyField,
    },
}

/// Decides create / update / unchanged once the matched contact (if any) has been read.
pub fn decide(
    incoming: &Incoming,
    found: Option<(&Contact, KeyField)>,
    new_id: ContactId,
    ctx: &MergeContext,
    default_country: Option<&str>,
) -> Decision {
    match found {
        None => Decision::Create(create(new_id, incoming, ctx, default_country)),
        Some((existing, on)) => match merge(existing, incoming, ctx) {
            Some(after) => Decision::Update {
                before: existing.clone(),
                after,
                on,
            },
            None => Decision::Unchanged {
                contact: existing.clone(),
                on,
            },
        },
    }
}

/// An identity item: one per (account, kind, normalised value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityKey {
    Email(String),
    Mobile(String),
    ExternalId(String),
}

impl IdentityKey {
    pub fn kind(&self) -> KeyField {
        match self {
            Self::Email(_) => KeyField::Email,
            Self::Mobile(_) => KeyField::Mobile,
            Self::ExternalId(_) => KeyField::ExternalId,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Self::Email(v) | Self::Mobile(v) | Self::ExternalId(v) => v,
        }
    }
}

/// Identity values a record carries, every kind (a create claims every free value it carries).
pub fn incoming_keys(incoming: &Incoming) -> Vec<IdentityKey> {
    let email = incoming
        .email
        .as_ref()
        .map(|e| IdentityKey::Email(e.normalized().to_owned()));
    let mobile = incoming
        .mobile
        .as_ref()
        .map(|m| IdentityKey::Mobile(m.as_str().to_owned()));
    let external = incoming
        .external_id
        .as_ref()
        .map(|x| IdentityKey::ExternalId(x.as_str().to_owned()));
    email.into_iter().chain(mobile).chain(external).collect()
}

/// The identity items a contact owns.
pub fn owned_keys(c: &Contact) -> Vec<IdentityKey> {
    let email = (c.email.as_ref())
        .filter(|_| c.owns.email)
        .map(|e| IdentityKey::Email(e.normalized().to_owned()));
    let mobile = (c.mobile.as_ref())
        .filter(|_| c.owns.mobile)
        .map(|m| IdentityKey::Mobile(m.as_str().to_owned()));
    let external = (c.external_id.as_ref())
        .filter(|_| c.owns.external_id)
        .map(|x| IdentityKey::ExternalId(x.as_str().to_owned()));
    email.into_iter().chain(mobile).chain(external).collect()
}

impl Owners {
    /// The owners of a record's values, from identity items read by key.
    pub fn from_found(
        incoming: &Incoming,
        found: &std::collections::HashMap<IdentityKey, ContactId>,
    ) -> Self {
        let mut owners = Self::default();
        for key in incoming_keys(incoming) {
            let owner = found.get(&key).cloned();
            match key.kind() {
                KeyField::Email => owners.email = owner,
                KeyField::Mobile => owners.mobile = owner,
                KeyField::ExternalId => owners.external_id = owner,
            }
        }
        owners
    }
}

/// The identity items a write must claim (create if free) and release (delete if owned).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityPlan {
    pub claims: Vec<IdentityKey>,
    pub releases: Vec<IdentityKey>,
}

/// Plans identity items for a write and sets `after.owns` to match. A value the contact
/// already owns stays owned; a value it gives up is released; a value it newly carries is
/// claimed when no one owns it (`owners` were read for the incoming record's values), else the
/// contact carries it without owning it — the first carrier keeps it (shared emails R-IMP-4,
/// manual duplicates R-MAN-1). A value it already carried without owning stays unowned.
pub fn plan_identity(
    before: Option<&Contact>,
    after: &mut Contact,
    owners: &Owners,
) -> IdentityPlan {
    let mut plan = IdentityPlan::default();
    let email = |c: &Contact| c.email.as_ref().map(|e| e.normalized().to_owned());
    let mobile = |c: &Contact| c.mobile.as_ref().map(|m| m.as_str().to_owned());
    let email_slot = Slot {
        before: before.and_then(email),
        owned: before.is_some_and(|b| b.owns.email),
        after: email(after),
        owner: owners.email.as_ref(),
    };
    after.owns.email = email_slot.plan(&after.id, IdentityKey::Email, &mut plan);
    let mobile_slot = Slot {
        before: before.and_then(mobile),
        owned: before.is_some_and(|b| b.owns.mobile),
        after: mobile(after),
        owner: owners.mobile.as_ref(),
    };
    after.owns.mobile = mobile_slot.plan(&after.id, IdentityKey::Mobile, &mut plan);
    let external = |c: &Contact| c.external_id.as_ref().map(|x| x.as_str().to_owned());
    let external_slot = Slot {
        before: before.and_then(external),
        owned: before.is_some_and(|b| b.owns.external_id),
        after: external(after),
        owner: owners.external_id.as_ref(),
    };
    after.owns.external_id = external_slot.plan(&after.id, IdentityKey::ExternalId, &mut plan);
    plan
}

/// One identity kind of one write.
struct Slot<'a> {
    before: Option<String>,
    owned: bool,
    after: Option<String>,
    owner: Option<&'a ContactId>,
}

impl Slot<'_> {
    /// Adds this slot's claims/releases to `plan`; returns whether the contact owns the value after.
    fn plan(self, me: &ContactId, key: fn(String) -> IdentityKey, plan: &mut IdentityPlan) -> bool {
        if self.before == self.after {
            return self.owned && self.after.is_some();
        }
        if let (true, Some(old)) = (self.owned, self.before) {
            plan.releases.push(key(old));
        }
        let Some(value) = self.after else {
            return false;
        };
        match self.owner {
            None => {
                plan.claims.push(key(value));
                true
            }
            Some(id) => id == me,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Owns;
    use crate::normalize::{Country, Email, Mobile};
    use chrono::TimeZone;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, day, 12, 0, 0).unwrap()
    }

    fn ctx(master: Master) -> MergeContext {
        MergeContext {
            now: t(20),
            source: "test".into(),
            label: Some("import-1".into()),
            master,
        }
    }

    fn email(s: &str) -> Option<Email> {
        Some(Email::parse(s).unwrap())
    }

    fn mobile(s: &str) -> Option<Mobile> {
        Some(Mobile::parse(s, Some(Country::parse("NO").unwrap())).unwrap())
    }

    fn rec(e: Option<&str>, m: Option<&str>) -> Incoming {
        Incoming {
            email: e.and_then(email),
            mobile: m.and_then(mobile),
            ..Incoming::default()
        }
    }

    fn id(s: &str) -> ContactId {
        ContactId(s.into())
    }

    fn owners(e: Option<&str>, m: Option<&str>) -> Owners {
        Owners {
            email: e.map(id),
            mobile: m.map(id),
            external_id: None,
        }
    }

    fn existing(first: Option<&str>) -> Contact {
        let mut c = Contact::empty(id("c1"), t(1));
        c.fields.first_name = first.map(str::to_owned);
        c.email = email("ola@example.no");
        c.mobile = mobile("41234567");
        c.version = 3;
        c.owns = Owns {
            email: true,
            mobile: true,
            external_id: false,
        };
        c
    }

    const MOBILE_EMAIL: Matching = Matching::Keys(MatchKeys {
        primary: KeyField::Mobile,
        secondary: Some(KeyField::Email),
    });
    const MOBILE_ONLY: Matching = Matching::Keys(MatchKeys {
        primary: KeyField::Mobile,
        secondary: None,
    });
    const EMAIL_ONLY: Matching = Matching::Keys(MatchKeys {
        primary: KeyField::Email,
        secondary: None,
    });

    /// One row per rule: (rule, record, matching, owners, expected).
    #[test]
    fn matching_rules_table() {
        let e = Some("ola@example.no");
        let m = Some("41234567");
        let existing = |x: &str, on| Ok(Match::Existing { id: id(x), on });
        let no_id = |keys: &str| Err(RuleError::NoIdentifier { keys: keys.into() });
        type Case = (
            &'static str,
            Incoming,
            Matching,
            Owners,
            Result<Match, RuleError>,
        );
        let cases: Vec<Case> = vec![
            (
                "R-IMP-2 primary found",
                rec(e, m),
                MOBILE_EMAIL,
                owners(Some("a"), Some("b")),
                existing("b", KeyField::Mobile),
            ),
            (
                "R-IMP-3 secondary when primary unknown",
                rec(e, m),
                MOBILE_EMAIL,
                owners(Some("a"), None),
                existing("a", KeyField::Email),
            ),
            (
                "R-IMP-3 create when neither found",
                rec(e, m),
                MOBILE_EMAIL,
                owners(None, None),
                Ok(Match::New),
            ),
            (
                "R-IMP-4 primary only ignores shared email",
                rec(e, m),
                MOBILE_ONLY,
                owners(Some("a"), None),
                Ok(Match::New),
            ),
            (
                "R-IMP-4 email-only ignores mobile",
                rec(e, m),
                EMAIL_ONLY,
                owners(None, Some("b")),
                Ok(Match::New),
            ),
            (
                "R-IMP empty primary falls through",
                rec(e, None),
                MOBILE_EMAIL,
                owners(Some("a"), None),
                existing("a", KeyField::Email),
            ),
            (
                "R-IMP no identifier",
                rec(None, None),
                MOBILE_EMAIL,
                owners(None, None),
                no_id("mobile or email"),
            ),
            (
                "R-IMP-4 primary only without value",
                rec(e, None),
                MOBILE_ONLY,
                owners(Some("a"), None),
                no_id("mobile"),
            ),
            (
                "R-FORM-1 email only, exists",
                rec(e, None),
                Matching::Form,
                owners(Some("a"), None),
                existing("a", KeyField::Email),
            ),
            (
                "R-FORM-1 email only, new",
                rec(e, None),
                Matching::Form,
                owners(None, None),
                Ok(Match::New),
            ),
            (
                "R-FORM-2 mobile only, exists",
                rec(None, m),
                Matching::Form,
                owners(None, Some("b")),
                existing("b", KeyField::Mobile),
            ),
            (
                "R-FORM-2 mobile only, new",
                rec(None, m),
                Matching::Form,
                owners(None, None),
                Ok(Match::New),
            ),
            (
                "R-FORM-3 both, mobile exists",
                rec(e, m),
                Matching::Form,
                owners(Some("a"), Some("b")),
                existing("b", KeyField::Mobile),
            ),
            (
                "R-FORM-3 both, mobile unknown, email known",
                rec(e, m),
                Matching::Form,
                owners(Some("a"), None),
                Ok(Match::New),
            ),
            (
                "R-FORM neither",
                rec(None, None),
                Matching::Form,
                owners(None, None),
                no_id("email"),
            ),
            (
                "R-MAN-1 never matches",
                rec(e, m),
                Matching::Never,
                owners(Some("a"), Some("b")),
                Ok(Match::New),
            ),
            (
                "R-API-1 default keys match mobile",
                rec(e, m),
                Matching::Keys(MatchKeys::default()),
                owners(None, Some("b")),
                existing("b", KeyField::Mobile),
            ),
        ];
        for (rule, incoming, matching, owners, expected) in cases {
            assert_eq!(find_match(&incoming, matching, &owners), expected, "{rule}");
        }
    }

    #[test]
    fn r_feed_5_customer_code_key_matches_its_owner_and_claims_a_free_code() {
        let mut incoming = rec(Some("shared@example.no"), None);
        incoming.external_id = Some(crate::normalize::ExternalId::parse("C4").unwrap());
        let by_code = Matching::Keys(MatchKeys {
            primary: KeyField::ExternalId,
            secondary: None,
        });
        let mut o = owners(Some("c3"), None);
        assert_eq!(
            find_match(&incoming, by_code, &o),
            Ok(Match::New),
            "another customer's email is not this customer"
        );
        o.external_id = Some(id("c4"));
        assert_eq!(
            find_match(&incoming, by_code, &o),
            Ok(Match::Existing {
                id: id("c4"),
                on: KeyField::ExternalId
            })
        );
        let mut c = create(id("c9"), &incoming, &ctx(Master::Incoming), None);
        let plan = plan_identity(None, &mut c, &owners(Some("c3"), None));
        assert_eq!(plan.claims, vec![IdentityKey::ExternalId("C4".into())]);
        assert!(c.owns.external_id && !c.owns.email);
    }

    #[test]
    fn r_form_4_token_mobile_matches_when_submission_has_no_fields() {
        // The handler puts the token's mobile on the record; the form rule then matches on it.
        let with_token = rec(None, Some("41234567"));
        let got = find_match(&with_token, Matching::Form, &owners(None, Some("b")));
        assert_eq!(
            got,
            Ok(Match::Existing {
                id: id("b"),
                on: KeyField::Mobile
            })
        );
    }

    #[test]
    fn r_form_4_token_with_email_follows_r_form_3() {
        let with_token = rec(Some("new@example.no"), Some("41234567"));
        let got = find_match(&with_token, Matching::Form, &owners(Some("a"), Some("b")));
        assert_eq!(
            got,
            Ok(Match::Existing {
                id: id("b"),
                on: KeyField::Mobile
            })
        );
    }

    #[test]
    fn r_gen_1_absent_fields_stay_when_updating() {
        let before = existing(Some("Ola"));
        let mut incoming = rec(None, Some("41234567"));
        incoming.fields.city = Some("Oslo".into());
        let after = merge(&before, &incoming, &ctx(Master::Incoming)).unwrap();
        assert_eq!(after.fields.first_name.as_deref(), Some("Ola"));
        assert_eq!(after.fields.city.as_deref(), Some("Oslo"));
        assert_eq!(after.email, before.email);
        assert_eq!(after.version, 4);
        assert!(after.labels.contains("import-1"));
    }

    #[test]
    fn r_gen_1_unchanged_when_values_equal() {
        let before = existing(Some("Ola"));
        let mut incoming = rec(Some("OLA@example.no"), Some("+47 412 34 567"));
        incoming.fields.first_name = Some("Ola".into());
        assert_eq!(merge(&before, &incoming, &ctx(Master::Incoming)), None);
    }

    #[test]
    fn r_gen_2_creates_from_incoming_when_no_match() {
        let mut incoming = rec(Some("kari@example.no"), None);
        incoming.fields.last_name = Some("Nordmann".into());
        let d = decide(
            &incoming,
            None,
            id("new"),
            &ctx(Master::Incoming),
            Some("NO"),
        );
        let Decision::Create(c) = d else {
            panic!("{d:?}")
        };
        assert_eq!((c.id.0.as_str(), c.version), ("new", 1));
        assert_eq!(c.fields.last_name.as_deref(), Some("Nordmann"));
        assert_eq!(
            c.fields.country, None,
            "default country is only for empty manual contacts"
        );
    }

    /// (rule, master, stored first name, incoming first name, expected first name)
    #[test]
    fn master_rules_table() {
        let cases = [
            (
                "R-MST-1 file overwrites",
                Master::Incoming,
                Some("Ola"),
                Some("Per"),
                Some("Per"),
            ),
            (
                "R-MST-1 empty never erases",
                Master::Incoming,
                Some("Ola"),
                None,
                Some("Ola"),
            ),
            (
                "R-MST-2 existing kept",
                Master::Existing,
                Some("Ola"),
                Some("Per"),
                Some("Ola"),
            ),
            (
                "R-MST-2 empty filled",
                Master::Existing,
                None,
                Some("Per"),
                Some("Per"),
            ),
            (
                "R-MST-2 empty never erases",
                Master::Existing,
                Some("Ola"),
                None,
                Some("Ola"),
            ),
        ];
        for (rule, master, stored, given, expected) in cases {
            let before = existing(stored);
            let mut incoming = rec(None, Some("41234567"));
            incoming.fields.first_name = given.map(str::to_owned);
            let after = merge(&before, &incoming, &ctx(master)).unwrap_or(before);
            assert_eq!(after.fields.first_name.as_deref(), expected, "{rule}");
        }
    }

    #[test]
    fn r_mst_2_false_is_a_value_when_existing_is_master() {
        let mut before = existing(None);
        before
            .custom
            .insert("vip".into(), serde_json::Value::Bool(false));
        let mut incoming = rec(None, Some("41234567"));
        incoming
            .custom
            .insert("vip".into(), serde_json::Value::Bool(true));
        assert_eq!(merge(&before, &incoming, &ctx(Master::Existing)), None);
        let after = merge(&before, &incoming, &ctx(Master::Incoming)).unwrap();
        assert_eq!(after.custom["vip"], serde_json::Value::Bool(true));
    }

    #[test]
    fn r_man_2_empty_contact_gets_default_country() {
        let d = decide(
            &Incoming::default(),
            None,
            id("m1"),
            &ctx(Master::Incoming),
            Some("NO"),
        );
        let Decision::Create(c) = d else { panic!() };
        assert_eq!(c.fields.country.as_deref(), Some("NO"));
        assert!(c.email.is_none() && c.mobile.is_none() && c.fields.first_name.is_none());
    }

    fn consent(status: ConsentStatus, day: u32) -> Consent {
        Consent {
            status,
            at: Some(t(day)),
            source: Some("erp".into()),
            evidence: None,
        }
    }

    fn claim(status: ConsentStatus, day: Option<u32>) -> ConsentClaim {
        ConsentClaim {
            status,
            at: day.map(t),
            evidence: None,
        }
    }

    /// (rule, stored, claim, master, expected status)
    #[test]
    fn consent_rules_table() {
        use ConsentStatus::*;
        let unknown = Consent::default();
        let cases = [
            (
                "R-FEED-7 newer opt-in cancels older opt-out",
                consent(OptedOut, 5),
                claim(OptedIn, Some(10)),
                Master::Incoming,
                OptedIn,
            ),
            (
                "R-FEED-7 older opt-in never overrides newer opt-out",
                consent(OptedOut, 10),
                claim(OptedIn, Some(5)),
                Master::Incoming,
                OptedOut,
            ),
            (
                "R-FEED-7 older opt-out never overrides newer opt-in",
                consent(OptedIn, 10),
                claim(OptedOut, Some(5)),
                Master::Incoming,
                OptedIn,
            ),
            (
                "R-FEED-7 tie keeps opt-out",
                consent(OptedOut, 10),
                claim(OptedIn, Some(10)),
                Master::Incoming,
                OptedOut,
            ),
            (
                "R-FEED-7 undated claim counts from now",
                consent(OptedOut, 10),
                claim(OptedIn, None),
                Master::Incoming,
                OptedIn,
            ),
            (
                "R-WIZ-6 unknown claim leaves it untouched",
                consent(OptedIn, 10),
                claim(Unknown, None),
                Master::Incoming,
                OptedIn,
            ),
            (
                "R-MST-2 known consent kept",
                consent(OptedOut, 1),
                claim(OptedIn, None),
                Master::Existing,
                OptedOut,
            ),
            (
                "R-MST-2 unknown consent filled",
                unknown,
                claim(OptedIn, None),
                Master::Existing,
                OptedIn,
            ),
        ];
        for (rule, stored, claim, master, expected) in cases {
            let got = merge_consent(&stored, &claim, &ctx(master)).unwrap_or(stored);
            assert_eq!(got.status, expected, "{rule}");
        }
    }

    #[test]
    fn r_feed_7_consent_records_source_and_claim_date_when_applied() {
        let got = merge_consent(
            &consent(ConsentStatus::OptedOut, 5),
            &claim(ConsentStatus::OptedIn, Some(10)),
            &ctx(Master::Incoming),
        )
        .unwrap();
        assert_eq!((got.at, got.source.as_deref()), (Some(t(10)), Some("test")));
    }

    #[test]
    fn consent_keeps_original_date_when_status_repeated() {
        let stored = consent(ConsentStatus::OptedIn, 5);
        assert_eq!(
            merge_consent(
                &stored,
                &claim(ConsentStatus::OptedIn, None),
                &ctx(Master::Incoming)
            ),
            None
        );
    }

    #[test]
    fn identity_new_contact_claims_free_values_and_shares_owned_ones() {
        let d = decide(
            &rec(Some("ola@example.no"), Some("41234567")),
            None,
            id("n"),
            &ctx(Master::Incoming),
            None,
        );
        let Decision::Create(mut c) = d else { panic!() };
        let plan = plan_identity(None, &mut c, &owners(Some("other"), None));
        assert_eq!(plan.claims, vec![IdentityKey::Mobile("+4741234567".into())]);
        assert!(plan.releases.is_empty());
        assert_eq!(
            c.owns,
            Owns {
                email: false,
                mobile: true,
                external_id: false,
            }
        );
    }

    #[test]
    fn identity_changed_email_releases_old_and_claims_new() {
        let before = existing(None);
        let after = merge(
            &before,
            &rec(Some("new@example.no"), None),
            &ctx(Master::Incoming),
        );
        let mut after = after.unwrap();
        let plan = plan_identity(Some(&before), &mut after, &owners(None, Some("c1")));
        assert_eq!(
            plan.claims,
            vec![IdentityKey::Email("new@example.no".into())]
        );
        assert_eq!(
            plan.releases,
            vec![IdentityKey::Email("ola@example.no".into())]
        );
        assert_eq!(
            after.owns,
            Owns {
                email: true,
                mobile: true,
                external_id: false,
            }
        );
    }

    #[test]
    fn identity_not_owned_value_is_never_released() {
        let mut before = existing(None);
        before.owns.email = false;
        let mut after = merge(
            &before,
            &rec(Some("new@example.no"), None),
            &ctx(Master::Incoming),
        )
        .unwrap();
        let plan = plan_identity(Some(&before), &mut after, &owners(Some("x"), Some("c1")));
        assert!(plan.releases.is_empty() && plan.claims.is_empty());
        assert!(!after.owns.email);
    }
}

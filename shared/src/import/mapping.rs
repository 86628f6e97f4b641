//! The wizard's settings (R-WIZ-4..8, R-IMP-1, R-MST) and the row mapper that turns one file
//! row into an `Incoming` record or row errors naming row, column, value and reason. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::incoming::{ConsentClaim, Incoming};
use crate::model::{ConsentStatus, TEXT_FIELDS};
use crate::normalize::{Country, Email, ExternalId, Mobile};
use crate::rules::{KeyField, Master, MatchKeys};
use crate::settings::{Settings, Vocabulary};

/// RAYNET's cell limit (R-XLS-3), in Unicode characters.
pub const DEFAULT_CELL_LIMIT: usize = 255;

/// "file is master" / "existing data is master" as the wizard names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MasterChoice {
    #[default]
    File,
    Existing,
}

impl From<MasterChoice> for Master {
    fn from(m: MasterChoice) -> Self {
        match m {
            MasterChoice::File => Master::Incoming,
            MasterChoice::Existing => Master::Existing,
        }
    }
}

/// Where an opt-in status comes from (R-WIZ-5): a column read with the account's vocabulary,
/// or one value for every row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OptInSource {
    Column { column: String },
    Value { value: ConsentStatus },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptIn {
    pub email_marketing: Option<OptInSource>,
    pub sms_marketing: Option<OptInSource>,
}

/// The settings a user confirms in the wizard (API.md `PUT /v1/imports/{id}/settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSettings {
    #[serde(default = "yes")]
    pub header_row: bool,
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
    #[serde(default)]
    pub create_custom_fields: Vec<String>,
    #[serde(default)]
    pub skip_unmapped: bool,
    #[serde(default)]
    pub opt_in: OptIn,
    #[serde(default)]
    pub master: MasterChoice,
    pub primary_key: Option<KeyField>,
    #[serde(default)]
    pub secondary_key: Option<KeyField>,
    #[serde(default)]
    pub default_country: Option<String>,
    #[serde(default)]
    pub compliance_acknowledged: bool,
    /// The workbook sheet to import (XLSX); by default the first sheet with data.
    #[serde(default)]
    pub sheet: Option<String>,
    /// Overrides of what sniffing found: a text encoding label and a delimiter.
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub delimiter: Option<String>,
}

fn yes() -> bool {
    true
}

/// The delimiter a user names: one of `,` `;` `|`, a tab (`\t`, `tab` or the character).
pub fn delimiter_byte(raw: &str) -> Result<u8, String> {
    match raw {
        "," => Ok(b','),
        ";" => Ok(b';'),
        "|" => Ok(b'|'),
        "\t" | "\\t" | "tab" => Ok(b'\t'),
        other => Err(format!(
            "{other:?} is not a supported delimiter: use \",\", \";\", \"|\" or \"tab\""
        )),
    }
}

/// The encoding a user names (a WHATWG label such as "windows-1252", "gbk", "utf-16le").
pub fn encoding_named(raw: &str) -> Result<&'static encoding_rs::Encoding, String> {
    encoding_rs::Encoding::for_label(raw.trim().as_bytes())
        .filter(|e| *e != encoding_rs::REPLACEMENT && *e != encoding_rs::X_USER_DEFINED)
        .ok_or_else(|| format!("{raw:?} is not a known text encoding"))
}

/// A problem with the settings, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsProblem {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

fn problem(
    field: impl Into<String>,
    code: &'static str,
    message: impl Into<String>,
) -> SettingsProblem {
    SettingsProblem {
        field: field.into(),
        code,
        message: message.into(),
    }
}

/// What a column feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Text(&'static str),
    Email,
    Mobile,
    ExternalId,
    Custom(String),
    Skip,
}

impl Target {
    /// The match key this target fills, if it is an identity value.
    fn key_field(&self) -> Option<KeyField> {
        match self {
            Self::Email => Some(KeyField::Email),
            Self::Mobile => Some(KeyField::Mobile),
            Self::ExternalId => Some(KeyField::ExternalId),
            _ => None,
        }
    }
}

/// Contact-person groups of a client row (R-XLS-2: RAYNET's template has up to 6).
pub const MAX_GROUPS: u8 = 6;

/// A mapping value: a target, and its contact-person group (`email#2` → group 2; 0 = shared).
fn parse_mapping(raw: &str) -> Option<(Target, u8)> {
    let raw = raw.trim();
    if let Some((field, n)) = raw.rsplit_once('#') {
        let group: u8 = n.parse().ok().filter(|g| (1..=MAX_GROUPS).contains(g))?;
        return parse_target(field)
            .filter(|t| *t != Target::Skip)
            .map(|t| (t, group));
    }
    parse_target(raw).map(|t| (t, 0))
}

fn parse_target(raw: &str) -> Option<Target> {
    let raw = raw.trim();
    match raw {
        "email" => Some(Target::Email),
        "mobile" => Some(Target::Mobile),
        "external_id" | "customer_code" => Some(Target::ExternalId),
        "skip" => Some(Target::Skip),
        _ => {
            if let Some(name) = raw.strip_prefix("custom:") {
                let name = name.trim();
                return (!name.is_empty() && name.chars().count() <= 100)
                    .then(|| Target::Custom(name.to_owned()));
            }
            TEXT_FIELDS
                .iter()
                .find(|f| **f == raw)
                .map(|f| Target::Text(f))
        }
    }
}

/// A validated plan for reading rows: what each column feeds, where consent comes from.
#[derive(Debug, Clone)]
pub struct RowMapper {
    columns: Vec<String>,
    targets: Vec<Target>,
    /// Each column's contact-person group (0 = shared by every contact of the row).
    groups: Vec<u8>,
    email_opt_in: Option<(Option<usize>, Option<ConsentStatus>)>,
    sms_opt_in: Option<(Option<usize>, Option<ConsentStatus>)>,
    vocab_email: Vocabulary,
    vocab_sms: Vocabulary,
    country: Option<Country>,
    cell_limit: usize,
    pub keys: MatchKeys,
    pub master: Master,
    /// Custom fields the import defines (R-WIZ-4 "created on the spot").
    pub new_custom_fields: Vec<String>,
}

fn opt_in_plan(
    src: &Option<OptInSource>,
    columns: &[String],
    field: &str,
    problems: &mut Vec<SettingsProblem>,
) -> Option<(Option<usize>, Option<ConsentStatus>)> {
    match src {
        None => None,
        Some(OptInSource::Value { value }) => Some((None, Some(*value))),
        Some(OptInSource::Column { column }) => match columns.iter().position(|c| c == column) {
            Some(i) => Some((Some(i), None)),
            None => {
                problems.push(problem(
                    field,
                    "unknown_column",
                    format!("column {column:?} is not in the file"),
                ));
                None
            }
        },
    }
}

impl ImportSettings {
    /// Checks the settings against the file's columns and the account (R-IMP-1, R-WIZ-4, -5,
    /// -7, -8) and returns the row mapper, or every problem found.
    pub fn plan(
        &self,
        columns: &[String],
        account: &Settings,
        cell_limit: usize,
    ) -> Result<RowMapper, Vec<SettingsProblem>> {
        let mut problems = Vec::new();
        let mut targets = Vec::with_capacity(columns.len());
        let mut groups = Vec::with_capacity(columns.len());
        let mut used: BTreeMap<String, &str> = BTreeMap::new();
        let known_custom: BTreeSet<String> = account
            .custom_fields
            .iter()
            .map(|f| f.name.to_lowercase())
            .chain(
                self.create_custom_fields
                    .iter()
                    .map(|f| f.trim().to_lowercase()),
            )
            .collect();
        for column in self.mapping.keys().filter(|c| !columns.contains(c)) {
            problems.push(problem(
                format!("mapping.{column}"),
                "unknown_column",
                format!("column {column:?} is not in the file"),
            ));
        }
        for column in columns {
            let (target, group) = match self.mapping.get(column) {
                None if self.skip_unmapped => (Target::Skip, 0),
                None => {
                    problems.push(problem(format!("mapping.{column}"), "unmapped_column", format!("column {column:?} is not mapped: map it, skip it, or turn on skip_unmapped")));
                    (Target::Skip, 0)
                }
                Some(raw) => parse_mapping(raw).unwrap_or_else(|| {
                    problems.push(problem(
                        format!("mapping.{column}"),
                        "invalid_target",
                        format!("{raw:?} is not a contact field, custom:<name> or skip (a field may end in #1..#{MAX_GROUPS} for a contact-person group)"),
                    ));
                    (Target::Skip, 0)
                }),
            };
            let key = match &target {
                Target::Text(f) => Some(f.to_string()),
                Target::Email => Some("email".into()),
                Target::Mobile => Some("mobile".into()),
                Target::ExternalId => Some("external_id".into()),
                Target::Custom(n) => {
                    if !known_custom.contains(&n.to_lowercase()) {
                        problems.push(problem(
                            format!("mapping.{column}"),
                            "unknown_custom_field",
                            format!(
                                "custom field {n:?} does not exist: add it to create_custom_fields"
                            ),
                        ));
                    }
                    Some(format!("custom:{}", n.to_lowercase()))
                }
                Target::Skip => None,
            };
            if let Some(key) = key.map(|k| if group > 0 { format!("{k}#{group}") } else { k }) {
                if let Some(other) = used.insert(key.clone(), column) {
                    problems.push(problem(
                        format!("mapping.{column}"),
                        "duplicate_target",
                        format!("{key} is already fed by column {other:?}"),
                    ));
                }
            }
            targets.push(target);
            groups.push(group);
        }
        let mapped = |k: KeyField| targets.iter().any(|t| t.key_field() == Some(k));
        let keys = match self.primary_key {
            None => {
                problems.push(problem(
                    "primary_key",
                    "missing_primary_key",
                    "a primary key is required to start an import (R-IMP-1)",
                ));
                MatchKeys::default()
            }
            Some(primary) => {
                if !mapped(primary) {
                    problems.push(problem(
                        "primary_key",
                        "primary_key_not_mapped",
                        format!(
                            "no column is mapped to the primary key {}",
                            primary.as_str()
                        ),
                    ));
                }
                if let Some(secondary) = self.secondary_key {
                    if secondary == primary {
                        problems.push(problem(
                            "secondary_key",
                            "invalid_secondary_key",
                            "the secondary key must differ from the primary key",
                        ));
                    } else if !mapped(secondary) {
                        problems.push(problem(
                            "secondary_key",
                            "secondary_key_not_mapped",
                            format!(
                                "no column is mapped to the secondary key {}",
                                secondary.as_str()
                            ),
                        ));
                    }
                }
                MatchKeys {
                    primary,
                    secondary: self.secondary_key,
                }
            }
        };
        if mapped(KeyField::Email) && self.opt_in.email_marketing.is_none() {
            problems.push(problem("opt_in.email_marketing", "opt_in_required", "email is mapped: say where its email-marketing opt-in comes from (a column or a value) (R-WIZ-5)"));
        }
        if mapped(KeyField::Mobile) && self.opt_in.sms_marketing.is_none() {
            problems.push(problem("opt_in.sms_marketing", "opt_in_required", "mobile is mapped: say where its SMS-marketing opt-in comes from (a column or a value) (R-WIZ-5)"));
        }
        let email_opt_in = opt_in_plan(
            &self.opt_in.email_marketing,
            columns,
            "opt_in.email_marketing",
            &mut problems,
        );
        let sms_opt_in = opt_in_plan(
            &self.opt_in.sms_marketing,
            columns,
            "opt_in.sms_marketing",
            &mut problems,
        );
        if let Some(Err(e)) = self.delimiter.as_deref().map(delimiter_byte) {
            problems.push(problem("delimiter", "invalid_delimiter", e));
        }
        if let Some(Err(e)) = self.encoding.as_deref().map(encoding_named) {
            problems.push(problem("encoding", "invalid_encoding", e));
        }
        if !self.compliance_acknowledged {
            problems.push(problem("compliance_acknowledged", "compliance_required", "confirm that you have read and understood the GDPR and TCPA rules for email and SMS marketing (R-WIZ-8)"));
        }
        let country = match self
            .default_country
            .as_deref()
            .or(account.default_country.as_deref())
        {
            Some(c) => Country::parse(c)
                .map_err(|e| {
                    problems.push(problem("default_country", "invalid_country", e.to_string()))
                })
                .ok(),
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(RowMapper {
            columns: columns.to_vec(),
            targets,
            groups,
            email_opt_in,
            sms_opt_in,
            vocab_email: account.opt_in.email_marketing.clone(),
            vocab_sms: account.opt_in.sms_marketing.clone(),
            country,
            cell_limit,
            keys,
            master: self.master.into(),
            new_custom_fields: self
                .create_custom_fields
                .iter()
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty())
                .collect(),
        })
    }
}

/// One problem with one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub row: u64,
    pub column: Option<String>,
    pub value: Option<String>,
    pub reason: String,
}

/// A value the import stores in another form than the file wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Normalised {
    pub row: u64,
    pub column: String,
    pub from: String,
    pub to: String,
}

/// A row read through the mapper.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // transient, one per row; boxing would only allocate
pub enum MappedRow {
    /// An empty line (or only empty cells): counted, never an error.
    Blank,
    Record(Incoming),
    Invalid(Vec<RowError>),
    /// A client row with contact-person groups (R-XLS-2): one record per filled group (with its
    /// group number), and the errors of groups that could not be read.
    People {
        records: Vec<(u8, Incoming)>,
        errors: Vec<RowError>,
    },
}

impl RowMapper {
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The column feeding a key in a contact-person group (0: the shared one), for naming it
    /// in errors.
    pub fn key_column(&self, key: KeyField, group: u8) -> Option<&str> {
        let i = (self.targets.iter().zip(&self.groups))
            .position(|(t, g)| *g == group && t.key_field() == Some(key))?;
        Some(&self.columns[i])
    }

    fn consent(
        &self,
        plan: &Option<(Option<usize>, Option<ConsentStatus>)>,
        vocab: &Vocabulary,
        cells: &[String],
        row: u64,
        errors: &mut Vec<RowError>,
    ) -> Option<ConsentClaim> {
        let (column, fixed) = plan.as_ref()?;
        let status = match (column, fixed) {
            (Some(i), _) => {
                let raw = cells.get(*i).map(String::as_str).unwrap_or("");
                match vocab.read(raw) {
                    Ok(s) => s?,
                    Err(e) => {
                        errors.push(RowError {
                            row,
                            column: Some(self.columns[*i].clone()),
                            value: Some(raw.to_owned()),
                            reason: e.to_string(),
                        });
                        return None;
                    }
                }
            }
            (None, Some(s)) => *s,
            (None, None) => return None,
        };
        (status != ConsentStatus::Unknown).then_some(ConsentClaim {
            status,
            at: None,
            evidence: None,
        })
    }

    /// The country for national mobiles of this row: its own `country` cell when that is an
    /// ISO code, else the import's default.
    fn phone_country(&self, cells: &[String]) -> Option<Country> {
        let own = self
            .targets
            .iter()
            .zip(&self.groups)
            .position(|(t, g)| *t == Target::Text("country") && *g == 0)
            .and_then(|i| cells.get(i))
            .and_then(|c| Country::parse(c).ok());
        own.or(self.country)
    }

    /// Hashes of the row's normalised identity values (every email and mobile it carries), for
    /// grouping rows that must be applied together. Invalid values give no hash (the row fails).
    pub fn identity_hashes(&self, cells: &[String]) -> Vec<u64> {
        let row_country = self.phone_country(cells);
        let mut out = Vec::with_capacity(2);
        for (i, target) in self.targets.iter().enumerate() {
            let Some(value) = cells.get(i).filter(|v| !v.is_empty()) else {
                continue;
            };
            match target {
                Target::Email => out.extend(
                    Email::parse(value)
                        .ok()
                        .map(|e| super::split::identity_hash("email", e.normalized())),
                ),
                Target::Mobile => out.extend(
                    Mobile::parse(value, row_country)
                        .ok()
                        .map(|m| super::split::identity_hash("mobile", m.as_str())),
                ),
                Target::ExternalId => out.extend(
                    ExternalId::parse(value)
                        .ok()
                        .map(|x| super::split::identity_hash("external_id", x.as_str())),
                ),
                _ => {}
            }
        }
        out
    }

    /// Maps one row's trimmed cells. Every problem of the row is reported, not only the first.
    pub fn map(&self, row: u64, cells: &[String]) -> MappedRow {
        if cells.iter().all(|c| c.is_empty()) {
            return MappedRow::Blank;
        }
        let mut errors = Vec::new();
        if let Some((i, extra)) = cells
            .iter()
            .enumerate()
            .skip(self.columns.len())
            .find(|(_, c)| !c.is_empty())
        {
            errors.push(RowError {
                row,
                column: None,
                value: Some(extra.clone()),
                reason: format!(
                    "value in column {} but the file has {} columns",
                    i + 1,
                    self.columns.len()
                ),
            });
        }
        let mut shared = Incoming::default();
        self.fill(&mut shared, 0, row, cells, &mut errors);
        shared.email_marketing = self.consent(
            &self.email_opt_in,
            &self.vocab_email,
            cells,
            row,
            &mut errors,
        );
        shared.sms_marketing =
            self.consent(&self.sms_opt_in, &self.vocab_sms, cells, row, &mut errors);
        if !errors.is_empty() {
            return MappedRow::Invalid(errors);
        }
        let mut present: Vec<u8> = self.groups.iter().copied().filter(|g| *g > 0).collect();
        if present.is_empty() {
            return MappedRow::Record(shared);
        }
        present.sort_unstable();
        present.dedup();
        let mut records = Vec::new();
        for group in present {
            let filled = self.groups.iter().enumerate().any(|(i, g)| {
                *g == group
                    && self.targets[i] != Target::Skip
                    && cells.get(i).is_some_and(|c| !c.is_empty())
            });
            if !filled {
                continue;
            }
            let mut person = shared.clone();
            let before = errors.len();
            self.fill(&mut person, group, row, cells, &mut errors);
            if errors.len() == before {
                records.push((group, person));
            }
        }
        if records.is_empty() && errors.is_empty() {
            errors.push(RowError {
                row,
                column: None,
                value: None,
                reason: format!(
                    "no contact person is filled in (groups 1 to {MAX_GROUPS} are empty)"
                ),
            });
        }
        MappedRow::People { records, errors }
    }

    /// Every email and mobile cell of the row whose stored form differs from what the
    /// file says (the cleaning report, R-XLS-8). Invalid values are row errors, not listed here.
    pub fn normalisations(&self, row: u64, cells: &[String]) -> Vec<Normalised> {
        let row_country = self.phone_country(cells);
        let mut out = Vec::new();
        for (i, target) in self.targets.iter().enumerate() {
            let Some(from) = cells.get(i).filter(|v| !v.is_empty()) else {
                continue;
            };
            let to = match target {
                Target::Email => Email::parse(from).ok().map(|e| e.normalized().to_owned()),
                Target::Mobile => Mobile::parse(from, row_country)
                    .ok()
                    .map(|m| m.as_str().to_owned()),
                _ => None,
            };
            if let Some(to) = to.filter(|t| t != from) {
                out.push(Normalised {
                    row,
                    column: self.columns[i].clone(),
                    from: from.clone(),
                    to,
                });
            }
        }
        out
    }

    /// Fills `rec` from the row's cells of one group (0: the shared cells).
    fn fill(
        &self,
        rec: &mut Incoming,
        group: u8,
        row: u64,
        cells: &[String],
        errors: &mut Vec<RowError>,
    ) {
        let row_country = self.phone_country(cells);
        for (i, target) in self.targets.iter().enumerate() {
            let value = cells.get(i).map(String::as_str).unwrap_or("");
            if value.is_empty() || *target == Target::Skip || self.groups[i] != group {
                continue;
            }
            let err = |reason: String| RowError {
                row,
                column: Some(self.columns[i].clone()),
                value: Some(value.to_owned()),
                reason,
            };
            let chars = value.chars().count();
            if chars > self.cell_limit {
                errors.push(err(format!(
                    "{chars} characters, the limit is {}",
                    self.cell_limit
                )));
                continue;
            }
            match target {
                Target::Text(field) => {
                    if let Some((_, slot)) =
                        rec.fields.slots_mut().into_iter().find(|(n, _)| n == field)
                    {
                        *slot = Some(value.to_owned());
                    }
                }
                Target::Email => match Email::parse(value) {
                    Ok(e) => rec.email = Some(e),
                    Err(e) => errors.push(err(e.to_string())),
                },
                Target::Mobile => match Mobile::parse(value, row_country) {
                    Ok(m) => rec.mobile = Some(m),
                    Err(e) => errors.push(err(e.to_string())),
                },
                Target::ExternalId => match ExternalId::parse(value) {
                    Ok(x) => rec.external_id = Some(x),
                    Err(e) => errors.push(err(e.to_string())),
                },
                Target::Custom(name) => {
                    rec.custom
                        .insert(name.clone(), serde_json::Value::String(value.to_owned()));
                }
                Target::Skip => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn settings(mapping: &[(&str, &str)]) -> ImportSettings {
        ImportSettings {
            header_row: true,
            mapping: mapping
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            create_custom_fields: vec![],
            skip_unmapped: false,
            opt_in: OptIn {
                email_marketing: Some(OptInSource::Column {
                    column: "News".into(),
                }),
                sms_marketing: Some(OptInSource::Value {
                    value: ConsentStatus::Unknown,
                }),
            },
            master: MasterChoice::File,
            primary_key: Some(KeyField::Mobile),
            secondary_key: Some(KeyField::Email),
            default_country: Some("NO".into()),
            compliance_acknowledged: true,
            sheet: None,
            encoding: None,
            delimiter: None,
        }
    }

    fn account() -> Settings {
        Settings::default()
    }

    const COLS: [&str; 4] = ["Name", "Mail", "Phone", "News"];
    const MAP: [(&str, &str); 4] = [
        ("Name", "first_name"),
        ("Mail", "email"),
        ("Phone", "mobile"),
        ("News", "skip"),
    ];

    fn codes(r: Result<RowMapper, Vec<SettingsProblem>>) -> Vec<&'static str> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.code)
            .collect()
    }

    #[test]
    fn r_imp_1_primary_key_is_required_and_must_be_mapped() {
        let mut s = settings(&MAP);
        s.primary_key = None;
        assert!(codes(s.plan(&cols(&COLS), &account(), 255)).contains(&"missing_primary_key"));
        let s = settings(&[
            ("Name", "first_name"),
            ("Mail", "email"),
            ("Phone", "skip"),
            ("News", "skip"),
        ]);
        assert!(codes(s.plan(&cols(&COLS), &account(), 255)).contains(&"primary_key_not_mapped"));
    }

    #[test]
    fn r_imp_1_customer_code_column_is_a_key_when_mapped_to_external_id() {
        let mut s = settings(&[
            ("Name", "first_name"),
            ("Mail", "email"),
            ("Phone", "customer_code"),
            ("News", "skip"),
        ]);
        s.primary_key = Some(KeyField::ExternalId);
        let mapper = s.plan(&cols(&COLS), &account(), 255).unwrap();
        assert_eq!(mapper.key_column(KeyField::ExternalId, 0), Some("Phone"));
        let MappedRow::Record(rec) = mapper.map(2, &row(&["Ola", "ola@example.no", "K-77", "yes"]))
        else {
            panic!("a row");
        };
        assert_eq!(rec.external_id.as_ref().unwrap().as_str(), "K-77");
    }

    #[test]
    fn r_wiz_4_unmapped_columns_need_a_decision_unless_skip_unmapped() {
        let s = settings(&MAP[..3]);
        assert_eq!(
            codes(s.plan(&cols(&COLS), &account(), 255)),
            vec!["unmapped_column"]
        );
        let mut s = settings(&MAP[..3]);
        s.skip_unmapped = true;
        assert!(s.plan(&cols(&COLS), &account(), 255).is_ok());
    }

    #[test]
    fn r_wiz_4_custom_field_must_exist_or_be_created() {
        let s = settings(&[
            ("Name", "custom:nickname"),
            ("Mail", "email"),
            ("Phone", "mobile"),
            ("News", "skip"),
        ]);
        assert_eq!(
            codes(s.plan(&cols(&COLS), &account(), 255)),
            vec!["unknown_custom_field"]
        );
        let mut s = s.clone();
        s.create_custom_fields = vec!["Nickname".into()];
        assert!(s.plan(&cols(&COLS), &account(), 255).is_ok());
    }

    #[test]
    fn r_wiz_5_opt_in_is_required_when_email_or_mobile_mapped() {
        let mut s = settings(&MAP);
        s.opt_in = OptIn::default();
        assert_eq!(
            codes(s.plan(&cols(&COLS), &account(), 255)),
            vec!["opt_in_required", "opt_in_required"]
        );
    }

    #[test]
    fn r_wiz_8_compliance_must_be_acknowledged() {
        let mut s = settings(&MAP);
        s.compliance_acknowledged = false;
        assert_eq!(
            codes(s.plan(&cols(&COLS), &account(), 255)),
            vec!["compliance_required"]
        );
    }

    #[test]
    fn mapping_refuses_two_columns_feeding_one_field() {
        let s = settings(&[
            ("Name", "email"),
            ("Mail", "email"),
            ("Phone", "mobile"),
            ("News", "skip"),
        ]);
        assert!(codes(s.plan(&cols(&COLS), &account(), 255)).contains(&"duplicate_target"));
    }

    fn mapper() -> RowMapper {
        settings(&MAP).plan(&cols(&COLS), &account(), 255).unwrap()
    }

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn row_maps_fields_keys_and_consent_when_valid() {
        let MappedRow::Record(r) =
            mapper().map(2, &row(&["Ola", "Ola@Example.no", "412 34 567", "YES"]))
        else {
            panic!()
        };
        assert_eq!(r.fields.first_name.as_deref(), Some("Ola"));
        assert_eq!(r.mobile.unwrap().as_str(), "+4741234567");
        assert_eq!(r.email_marketing.unwrap().status, ConsentStatus::OptedIn);
        assert!(
            r.sms_marketing.is_none(),
            "a fixed unknown leaves consent untouched"
        );
    }

    #[test]
    fn row_errors_name_row_column_value_and_reason_for_every_problem() {
        let MappedRow::Invalid(errors) =
            mapper().map(7, &row(&["Ola", "not-an-email", "12", "perhaps"]))
        else {
            panic!()
        };
        let cols: Vec<_> = errors.iter().map(|e| e.column.clone().unwrap()).collect();
        assert_eq!(cols, vec!["Mail", "Phone", "News"]);
        assert!(errors.iter().all(|e| e.row == 7));
        assert_eq!(errors[0].value.as_deref(), Some("not-an-email"));
        assert!(errors[2].reason.contains("perhaps"), "{}", errors[2].reason);
    }

    #[test]
    fn r_xls_3_cell_over_the_limit_is_a_row_error_not_truncated() {
        let long = "å".repeat(256);
        let MappedRow::Invalid(errors) = mapper().map(3, &row(&[&long, "", "41234567", ""])) else {
            panic!()
        };
        assert_eq!(errors[0].column.as_deref(), Some("Name"));
        assert!(errors[0].reason.contains("256 characters"));
    }

    #[test]
    fn row_blank_when_every_cell_empty() {
        assert_eq!(mapper().map(4, &row(&["", "", "", ""])), MappedRow::Blank);
        assert_eq!(mapper().map(4, &row(&[])), MappedRow::Blank);
    }

    #[test]
    fn row_uses_its_own_country_column_for_national_mobiles() {
        let s = settings(&[
            ("Name", "country"),
            ("Mail", "email"),
            ("Phone", "mobile"),
            ("News", "skip"),
        ]);
        let m = s.plan(&cols(&COLS), &account(), 255).unwrap();
        let MappedRow::Record(r) = m.map(2, &row(&["SE", "", "070-123 45 67", ""])) else {
            panic!()
        };
        assert_eq!(r.mobile.unwrap().as_str(), "+46701234567");
    }

    fn group_mapper() -> RowMapper {
        let columns = cols(&[
            "Client", "P1 Name", "P1 Mail", "P2 Name", "P2 Mail", "P2 Phone",
        ]);
        let mut s = settings(&[
            ("Client", "company"),
            ("P1 Name", "first_name#1"),
            ("P1 Mail", "email#1"),
            ("P2 Name", "first_name#2"),
            ("P2 Mail", "email#2"),
            ("P2 Phone", "mobile#2"),
        ]);
        s.primary_key = Some(KeyField::Email);
        s.secondary_key = None;
        s.opt_in.email_marketing = Some(OptInSource::Value {
            value: ConsentStatus::OptedIn,
        });
        s.plan(&columns, &account(), DEFAULT_CELL_LIMIT).unwrap()
    }

    #[test]
    fn r_xls_2_client_row_gives_one_record_per_filled_person_group_sharing_the_client_fields() {
        let MappedRow::People { records, errors } = group_mapper().map(
            2,
            &row(&["Alfa", "Jan", "jan@alfa.cz", "Eva", "eva@alfa.cz", ""]),
        ) else {
            panic!("a client row");
        };
        assert!(errors.is_empty(), "{errors:?}");
        let people: Vec<(u8, &str, &str)> = records
            .iter()
            .map(|(g, r)| {
                (
                    *g,
                    r.fields.first_name.as_deref().unwrap(),
                    r.fields.company.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(people, vec![(1, "Jan", "Alfa"), (2, "Eva", "Alfa")]);
        assert!(
            records.iter().all(|(_, r)| r.email_marketing.is_some()),
            "consent applies to every person"
        );
    }

    #[test]
    fn r_xls_2_a_bad_person_is_an_error_naming_its_column_and_the_others_still_import() {
        let MappedRow::People { records, errors } =
            group_mapper().map(3, &row(&["Beta", "", "", "Eva", "not-mail", "41234567"]))
        else {
            panic!("a client row");
        };
        assert!(records.is_empty());
        assert_eq!(errors[0].column.as_deref(), Some("P2 Mail"));
        let MappedRow::People { records, errors } =
            group_mapper().map(4, &row(&["Beta", "Jan", "bad", "Eva", "eva@beta.cz", ""]))
        else {
            panic!("a client row");
        };
        assert_eq!((records.len(), records[0].0), (1, 2));
        assert_eq!(errors[0].column.as_deref(), Some("P1 Mail"));
    }

    #[test]
    fn r_xls_2_a_client_row_without_any_person_is_an_error() {
        let MappedRow::People { records, errors } =
            group_mapper().map(5, &row(&["Gama", "", "", "", "", ""]))
        else {
            panic!("a client row");
        };
        assert!(records.is_empty());
        assert!(errors[0].reason.contains("no contact person"), "{errors:?}");
    }

    #[test]
    fn mapping_refuses_a_group_beyond_six_and_a_repeated_group_field() {
        let columns = cols(&["A", "B", "C"]);
        let s = settings(&[("A", "email#7"), ("B", "mobile#1"), ("C", "mobile#1")]);
        let found = codes(s.plan(&columns, &account(), DEFAULT_CELL_LIMIT));
        assert!(found.contains(&"invalid_target"), "{found:?}");
        assert!(found.contains(&"duplicate_target"), "{found:?}");
    }

    #[test]
    fn r_xls_8_normalisations_list_mobiles_and_emails_stored_differently() {
        let columns = cols(&COLS);
        let m = settings(&MAP)
            .plan(&columns, &account(), DEFAULT_CELL_LIMIT)
            .unwrap();
        let changes = m.normalisations(2, &row(&["Ola", "Ola@Example.NO", "412 34 567", "yes"]));
        let got: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c.column.as_str(), c.to.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![("Mail", "ola@example.no"), ("Phone", "+4741234567")]
        );
        assert!(m
            .normalisations(3, &row(&["Ola", "ola@example.no", "+4741234567", "yes"]))
            .is_empty());
    }
}

//! The wizard's settings (R-WIZ-4..8, R-IMP-1, R-MST) and the row mapper that turns one file
//! row into an `Incoming` record or row errors naming row, column, value and reason. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::incoming::{ConsentClaim, Incoming};
use crate::model::{ConsentStatus, TEXT_FIELDS};
use crate::normalize::{Country, Email, Mobile};
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
    Custom(String),
    Skip,
}

fn parse_target(raw: &str) -> Option<Target> {
    let raw = raw.trim();
    match raw {
        "email" => Some(Target::Email),
        "mobile" => Some(Target::Mobile),
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
            let target = match self.mapping.get(column) {
                None if self.skip_unmapped => Target::Skip,
                None => {
                    problems.push(problem(format!("mapping.{column}"), "unmapped_column", format!("column {column:?} is not mapped: map it, skip it, or turn on skip_unmapped")));
                    Target::Skip
                }
                Some(raw) => parse_target(raw).unwrap_or_else(|| {
                    problems.push(problem(
                        format!("mapping.{column}"),
                        "invalid_target",
                        format!("{raw:?} is not a contact field, custom:<name> or skip"),
                    ));
                    Target::Skip
                }),
            };
            let key = match &target {
                Target::Text(f) => Some(f.to_string()),
                Target::Email => Some("email".into()),
                Target::Mobile => Some("mobile".into()),
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
            if let Some(key) = key {
                if let Some(other) = used.insert(key.clone(), column) {
                    problems.push(problem(
                        format!("mapping.{column}"),
                        "duplicate_target",
                        format!("{key} is already fed by column {other:?}"),
                    ));
                }
            }
            targets.push(target);
        }
        let mapped = |k: KeyField| {
            targets.iter().any(|t| {
                matches!(
                    (k, t),
                    (KeyField::Email, Target::Email) | (KeyField::Mobile, Target::Mobile)
                )
            })
        };
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

/// A row read through the mapper.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // transient, one per row; boxing would only allocate
pub enum MappedRow {
    /// An empty line (or only empty cells): counted, never an error.
    Blank,
    Record(Incoming),
    Invalid(Vec<RowError>),
}

impl RowMapper {
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The column feeding a key, for naming it in errors.
    pub fn key_column(&self, key: KeyField) -> Option<&str> {
        let i = self.targets.iter().position(|t| {
            matches!(
                (key, t),
                (KeyField::Email, Target::Email) | (KeyField::Mobile, Target::Mobile)
            )
        })?;
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
            .position(|t| *t == Target::Text("country"))
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
        let mut rec = Incoming::default();
        let row_country = self.phone_country(cells);
        for (i, target) in self.targets.iter().enumerate() {
            let value = cells.get(i).map(String::as_str).unwrap_or("");
            if value.is_empty() || *target == Target::Skip {
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
                Target::Custom(name) => {
                    rec.custom
                        .insert(name.clone(), serde_json::Value::String(value.to_owned()));
                }
                Target::Skip => {}
            }
        }
        rec.email_marketing = self.consent(
            &self.email_opt_in,
            &self.vocab_email,
            cells,
            row,
            &mut errors,
        );
        rec.sms_marketing =
            self.consent(&self.sms_opt_in, &self.vocab_sms, cells, row, &mut errors);
        if errors.is_empty() {
            MappedRow::Record(rec)
        } else {
            MappedRow::Invalid(errors)
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
}

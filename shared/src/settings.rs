//! Account settings (API.md "Accounts and keys"): default country, opt-in vocabularies
//! (R-WIZ-6) and custom field definitions, with validation that names the offending field.

use serde::{Deserialize, Serialize};

use crate::incoming::InputError;
use crate::model::ConsentStatus;
use crate::normalize::Country;

/// Most custom fields an account may define.
pub const CUSTOM_FIELDS_MAX: usize = 200;
const VOCAB_WORD_MAX: usize = 50;

/// The words that mean "opted in" and "opted out" in one opt-in column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vocabulary {
    #[serde(rename = "in")]
    pub opted_in: Vec<String>,
    #[serde(rename = "out")]
    pub opted_out: Vec<String>,
}

impl Default for Vocabulary {
    fn default() -> Self {
        Self {
            opted_in: vec!["true".into(), "yes".into()],
            opted_out: vec!["false".into(), "no".into()],
        }
    }
}

impl Vocabulary {
    /// Reads a cell (R-WIZ-6): trimmed, case-insensitive; empty is `None` (untouched);
    /// a word in neither list is an error.
    pub fn read(&self, raw: &str) -> Result<Option<ConsentStatus>, UnknownWord> {
        let v = raw.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let v = v.to_lowercase();
        let is = |words: &[String]| words.iter().any(|w| w.trim().to_lowercase() == v);
        if is(&self.opted_in) {
            Ok(Some(ConsentStatus::OptedIn))
        } else if is(&self.opted_out) {
            Ok(Some(ConsentStatus::OptedOut))
        } else {
            Err(UnknownWord {
                word: raw.trim().to_owned(),
                known: self
                    .opted_in
                    .iter()
                    .chain(&self.opted_out)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
}

/// An opt-in value in neither list of the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecognised opt-in value {word:?}: expected one of {known}")]
pub struct UnknownWord {
    pub word: String,
    pub known: String,
}

/// Vocabularies of both consent channels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptInVocabularies {
    #[serde(default)]
    pub email_marketing: Vocabulary,
    #[serde(default)]
    pub sms_marketing: Vocabulary,
}

/// The type of a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomFieldType {
    Text,
    Number,
    Date,
    Bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: CustomFieldType,
}

/// An account's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub default_country: Option<String>,
    #[serde(default)]
    pub opt_in: OptInVocabularies,
    #[serde(default)]
    pub custom_fields: Vec<CustomFieldDef>,
    /// The most characters an imported cell may hold (R-XLS-3); RAYNET's 255 when not set.
    #[serde(default)]
    pub cell_limit: Option<usize>,
    /// Feeds may fetch from loopback and private addresses (a local test setup only).
    #[serde(default)]
    pub allow_private_feed_urls: bool,
}

/// The range an account may set its import cell limit in (32,767 is Excel's own cell limit).
pub const CELL_LIMIT_RANGE: std::ops::RangeInclusive<usize> = 1..=32_767;

fn invalid(field: String, code: &'static str, message: String) -> InputError {
    InputError {
        field,
        code,
        message,
    }
}

fn check_vocabulary(name: &str, v: &Vocabulary) -> Result<Vocabulary, InputError> {
    let clean = |words: &[String], side: &str| -> Result<Vec<String>, InputError> {
        let field = format!("opt_in.{name}.{side}");
        let out: Vec<String> = words
            .iter()
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .collect();
        if out.is_empty() {
            return Err(invalid(
                field,
                "invalid_vocabulary",
                "at least one word is needed".into(),
            ));
        }
        if let Some(w) = out.iter().find(|w| w.chars().count() > VOCAB_WORD_MAX) {
            return Err(invalid(
                field,
                "invalid_vocabulary",
                format!("{w:?} is over {VOCAB_WORD_MAX} characters"),
            ));
        }
        Ok(out)
    };
    let vocab = Vocabulary {
        opted_in: clean(&v.opted_in, "in")?,
        opted_out: clean(&v.opted_out, "out")?,
    };
    if let Some(w) = vocab.opted_in.iter().find(|w| {
        vocab
            .opted_out
            .iter()
            .any(|o| o.to_lowercase() == w.to_lowercase())
    }) {
        return Err(invalid(
            format!("opt_in.{name}"),
            "invalid_vocabulary",
            format!("{w:?} cannot mean both in and out"),
        ));
    }
    Ok(vocab)
}

impl Settings {
    /// Validates and normalises settings sent by a client.
    pub fn validated(self) -> Result<Self, InputError> {
        let default_country = match self
            .default_country
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(c) => Some(
                Country::parse(c)
                    .map_err(InputError::from)
                    .map_err(|e| InputError {
                        field: "default_country".into(),
                        ..e
                    })?
                    .code(),
            ),
            None => None,
        };
        let opt_in = OptInVocabularies {
            email_marketing: check_vocabulary("email_marketing", &self.opt_in.email_marketing)?,
            sms_marketing: check_vocabulary("sms_marketing", &self.opt_in.sms_marketing)?,
        };
        if self.custom_fields.len() > CUSTOM_FIELDS_MAX {
            return Err(invalid(
                "custom_fields".into(),
                "too_many",
                format!("at most {CUSTOM_FIELDS_MAX} custom fields"),
            ));
        }
        let mut custom_fields = Vec::with_capacity(self.custom_fields.len());
        for (i, f) in self.custom_fields.into_iter().enumerate() {
            let name = f.name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(invalid(
                    format!("custom_fields[{i}].name"),
                    "invalid_custom_field",
                    "names are 1 to 100 characters".into(),
                ));
            }
            if custom_fields
                .iter()
                .any(|c: &CustomFieldDef| c.name.to_lowercase() == name.to_lowercase())
            {
                return Err(invalid(
                    format!("custom_fields[{i}].name"),
                    "duplicate_custom_field",
                    format!("{name:?} is defined twice"),
                ));
            }
            custom_fields.push(CustomFieldDef { name, kind: f.kind });
        }
        if let Some(limit) = self.cell_limit.filter(|l| !CELL_LIMIT_RANGE.contains(l)) {
            return Err(invalid(
                "cell_limit".into(),
                "invalid_cell_limit",
                format!(
                    "{limit} is outside {} to {} characters",
                    CELL_LIMIT_RANGE.start(),
                    CELL_LIMIT_RANGE.end()
                ),
            ));
        }
        Ok(Self {
            default_country,
            opt_in,
            custom_fields,
            cell_limit: self.cell_limit,
            allow_private_feed_urls: self.allow_private_feed_urls,
        })
    }

    /// These settings with a text custom field for each name not defined yet (case-insensitive):
    /// fields "created on the spot" by an import (R-WIZ-4) or a feed mapping (R-FEED-3).
    pub fn with_custom_fields<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Settings {
        let mut next = self.clone();
        for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
            if !next
                .custom_fields
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(name))
            {
                next.custom_fields.push(CustomFieldDef {
                    name: name.to_owned(),
                    kind: CustomFieldType::Text,
                });
            }
        }
        next
    }

    /// The import cell limit in characters (R-XLS-3).
    pub fn cell_limit(&self) -> usize {
        self.cell_limit
            .unwrap_or(crate::import::mapping::DEFAULT_CELL_LIMIT)
    }

    pub fn country(&self) -> Option<Country> {
        self.default_country
            .as_deref()
            .and_then(|c| Country::parse(c).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_wiz_6_default_vocabulary_reads_true_yes_false_no_case_insensitively() {
        let v = Vocabulary::default();
        assert_eq!(v.read(" TRUE "), Ok(Some(ConsentStatus::OptedIn)));
        assert_eq!(v.read("Yes"), Ok(Some(ConsentStatus::OptedIn)));
        assert_eq!(v.read("FALSE"), Ok(Some(ConsentStatus::OptedOut)));
        assert_eq!(v.read("no"), Ok(Some(ConsentStatus::OptedOut)));
        assert_eq!(v.read(""), Ok(None));
        assert!(v
            .read("maybe")
            .unwrap_err()
            .to_string()
            .contains("\"maybe\""));
    }

    #[test]
    fn r_wiz_6_account_vocabulary_replaces_the_default() {
        let v = Vocabulary {
            opted_in: vec!["OptIn".into()],
            opted_out: vec!["OptOut".into()],
        };
        assert_eq!(v.read("optin"), Ok(Some(ConsentStatus::OptedIn)));
        assert!(v.read("yes").is_err());
    }

    #[test]
    fn settings_are_refused_when_a_word_means_both_in_and_out() {
        let mut s = Settings::default();
        s.opt_in.sms_marketing = Vocabulary {
            opted_in: vec!["ja".into()],
            opted_out: vec!["JA".into()],
        };
        assert_eq!(s.validated().unwrap_err().field, "opt_in.sms_marketing");
    }

    #[test]
    fn settings_are_refused_when_country_unknown_or_field_duplicated() {
        let s = Settings {
            default_country: Some("XX".into()),
            ..Settings::default()
        };
        assert_eq!(s.validated().unwrap_err().field, "default_country");
        let f = |n: &str| CustomFieldDef {
            name: n.into(),
            kind: CustomFieldType::Text,
        };
        let s = Settings {
            custom_fields: vec![f("Shoe"), f("shoe ")],
            ..Settings::default()
        };
        assert_eq!(s.validated().unwrap_err().field, "custom_fields[1].name");
    }
}

//! File import: CSV bytes (`csv`), XLSX and multi-byte text turned into UTF-8 CSV
//! (`convert`), the wizard's settings and the row mapper (`mapping`), header suggestions
//! (`headers`), data cleaning (`clean`), chunk planning (`split`), the job (`job`), the
//! pipeline shell that reads chunks and applies rows (`pipeline`), reverts (`revert`) and the
//! scheduled reconciler of stuck jobs and missed drop-folder objects (`reconcile`).

pub mod clean;
pub mod convert;
pub mod csv;
pub mod headers;
pub mod job;
pub mod mapping;
pub mod pipeline;
pub mod reconcile;
pub mod revert;
pub mod split;
pub mod wizard;

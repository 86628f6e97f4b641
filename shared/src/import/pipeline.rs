//! The import pipeline's shell: preview (first rows of the uploaded object), split (stream the
//! object, group rows by identity, write extras objects, one SQS message per chunk), chunk
//! processing (ranged GET, map, batched ingest, row errors to S3, counters once, completion)
//! and the dry run behind "validate" (the same row path, writes into an overlay).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::clean;
use super::convert::{self, ConvertError};
use super::csv::{self, CsvError, Dialect, Scanner, Span};
use super::job::{self, Counts, Job, JobStatus};
use super::mapping::{ImportSettings, MappedRow, Normalised, RowError, RowMapper, SettingsProblem};
use super::split::{self, ChunkSpec, Groups};
use crate::incoming::Incoming;
use crate::ingest::{self, IngestError, Mode, Overlay, Policy};
use crate::model::ContactId;
use crate::rules::{Matching, RuleError};
use crate::settings::Settings;
use crate::store::contacts::UndoLog;
use crate::store::imports::ChunkMark;
use crate::store::StoreError;
use crate::App;

/// Bytes read for a preview.
const PREVIEW_BYTES: u64 = 256 * 1024;
/// Rows shown in a preview (R-WIZ-3).
pub const PREVIEW_ROWS: usize = 100;
/// Rows per ingest call inside a chunk.
const INGEST_BATCH: usize = 500;
/// The largest file a synchronous dry run reads.
pub const VALIDATE_MAX_ROWS: u64 = 200_000;
/// Row errors returned as a sample by validate.
const SAMPLE_ERRORS: usize = 20;

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("s3 {op} failed: {message}")]
    S3 { op: &'static str, message: String },
    #[error("sqs {op} failed: {message}")]
    Sqs { op: &'static str, message: String },
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error("the settings are incomplete or invalid")]
    Settings(Vec<SettingsProblem>),
    #[error("{0}")]
    File(String),
    #[error("ingest failed: {0}")]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

impl From<ConvertError> for PipelineError {
    fn from(e: ConvertError) -> Self {
        Self::File(e.to_string())
    }
}

impl PipelineError {
    fn s3(op: &'static str, e: impl std::fmt::Display) -> Self {
        Self::S3 {
            op,
            message: e.to_string(),
        }
    }
}

/// Where an object's bytes begin after any byte-order mark, and how its records are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileShape {
    pub data_start: u64,
    pub dialect: Dialect,
    /// The text encoding's WHATWG name ("UTF-8", "windows-1252", "ISO-8859-2", "GBK", …).
    #[serde(default = "utf8_name")]
    pub encoding: String,
    /// How the uploaded object becomes records: read in place, or converted first.
    #[serde(default)]
    pub source: Source,
}

/// How an uploaded object is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// UTF-8 or an 8-bit encoding: records are cut from the object's bytes, cells decoded.
    #[default]
    Csv,
    /// UTF-16 or a multi-byte encoding: transcoded to a UTF-8 work object first.
    Transcode,
    /// An XLSX workbook: the sheet is written as a UTF-8 CSV work object first.
    Xlsx { sheet: String },
}

/// The user's overrides of what sniffing found (preview query, import settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub sheet: Option<String>,
    pub encoding: Option<String>,
    pub delimiter: Option<u8>,
}

impl Reading {
    pub fn of(settings: Option<&ImportSettings>) -> Self {
        settings.map_or_else(Self::default, |s| Self {
            sheet: s.sheet.clone(),
            encoding: s.encoding.clone(),
            delimiter: s
                .delimiter
                .as_deref()
                .and_then(|d| super::mapping::delimiter_byte(d).ok()),
        })
    }
}

fn utf8_name() -> String {
    "UTF-8".into()
}

impl FileShape {
    pub fn encoding(&self) -> &'static encoding_rs::Encoding {
        encoding_rs::Encoding::for_label(self.encoding.as_bytes()).unwrap_or(encoding_rs::UTF_8)
    }
}

/// The text encoding of a file from its first bytes: a BOM names UTF-8 or UTF-16; valid UTF-8
/// means UTF-8; anything else is guessed by chardetng (Windows-1252, ISO-8859-2, GBK, …).
fn detect_encoding(head: &[u8], complete: bool) -> &'static encoding_rs::Encoding {
    if let Some((enc, _)) = encoding_rs::Encoding::for_bom(head) {
        return enc;
    }
    match std::str::from_utf8(head) {
        Ok(_) => return encoding_rs::UTF_8,
        Err(e) if e.error_len().is_none() && !complete => return encoding_rs::UTF_8,
        Err(_) => {}
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(head, complete);
    detector.guess(None, chardetng::Utf8Detection::Deny)
}

async fn get_range(
    app: &App,
    bucket: &str,
    key: &str,
    start: u64,
    end: u64,
) -> Result<Bytes, PipelineError> {
    if end <= start {
        return Ok(Bytes::new());
    }
    let out = app
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={start}-{}", end - 1))
        .send()
        .await
        .map_err(|e| PipelineError::s3("GetObject", aws_sdk_s3::error::DisplayErrorContext(e)))?;
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| PipelineError::s3("GetObject", e))?;
    Ok(body.into_bytes())
}

async fn object_len(app: &App, bucket: &str, key: &str) -> Result<u64, PipelineError> {
    let head = app
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| match e.as_service_error() {
            Some(err) if err.is_not_found() => {
                PipelineError::File("no file has been uploaded yet".into())
            }
            _ => PipelineError::s3("HeadObject", aws_sdk_s3::error::DisplayErrorContext(e)),
        })?;
    Ok(head.content_length.unwrap_or(0).max(0) as u64)
}

/// Refuses 8-bit "text" that holds binary data.
fn check_text(head: &[u8]) -> Result<(), PipelineError> {
    if head.iter().take(8192).any(|&b| b == 0) {
        return Err(PipelineError::File(
            "the file holds binary data (NUL bytes), not CSV text".into(),
        ));
    }
    Ok(())
}

/// What the head of an uploaded object says.
struct Head {
    shape: FileShape,
    records: Vec<Vec<String>>,
    /// The workbook's sheets (empty for text files).
    sheets: Vec<convert::SheetInfo>,
}

/// Reads the head of the object: its shape and its first records' cells. XLSX and UTF-16 or
/// multi-byte text are converted as far as the head needs.
async fn head(
    app: &App,
    bucket: &str,
    key: &str,
    max_records: usize,
    reading: &Reading,
) -> Result<Head, PipelineError> {
    let len = object_len(app, bucket, key).await?;
    if len == 0 {
        return Err(PipelineError::File("the file is empty".into()));
    }
    let bytes = get_range(app, bucket, key, 0, len.min(PREVIEW_BYTES)).await?;
    let complete = len <= PREVIEW_BYTES;
    if convert::kind(&bytes)? == convert::FileKind::Xlsx {
        let whole = workbook_bytes(app, bucket, key, len, bytes, complete).await?;
        let sheet = reading.sheet.clone();
        let (csv_bytes, converted) = tokio::task::spawn_blocking(move || {
            convert::check_zip(&whole, &convert::XlsxLimits::default())?;
            let mut out = Vec::new();
            let c =
                convert::xlsx_to_csv(&whole, sheet.as_deref(), Some(max_records as u64), &mut out)?;
            Ok::<_, ConvertError>((out, c))
        })
        .await
        .map_err(|e| PipelineError::File(format!("the workbook could not be read: {e}")))??;
        let shape = FileShape {
            data_start: 0,
            dialect: Dialect::default(),
            encoding: utf8_name(),
            source: Source::Xlsx {
                sheet: converted.sheet,
            },
        };
        let records = records_of(&csv_bytes, &shape, max_records, true)?;
        return Ok(Head {
            shape,
            records,
            sheets: converted.sheets,
        });
    }
    let text = read_text(&bytes, complete, reading)?;
    let records = records_of(&text.bytes, &text.scan, max_records, complete)?;
    if records.is_empty() && !complete {
        return Err(PipelineError::File(format!(
            "row 1: no line break in the first {} KiB (a missing line break or an unterminated quote?)",
            PREVIEW_BYTES >> 10
        )));
    }
    Ok(Head {
        shape: text.shape,
        records,
        sheets: Vec::new(),
    })
}

/// Text bytes as the pipeline reads them: the file's shape (encoding detected unless
/// overridden, delimiter sniffed unless overridden), the bytes records are cut from (the file's
/// own, or its UTF-8 transcoding) and the shape to cut them with.
pub struct Text<'a> {
    pub shape: FileShape,
    pub bytes: std::borrow::Cow<'a, [u8]>,
    pub scan: FileShape,
}

/// Reads the head (or all, when `complete`) of a text file. Pure.
pub fn read_text<'a>(
    bytes: &'a [u8],
    complete: bool,
    reading: &Reading,
) -> Result<Text<'a>, PipelineError> {
    let encoding = match &reading.encoding {
        Some(name) => super::mapping::encoding_named(name).map_err(PipelineError::File)?,
        None => detect_encoding(bytes, complete),
    };
    if convert::needs_transcoding(encoding) {
        let mut text = Vec::with_capacity(bytes.len() * 3 / 2);
        convert::Transcoder::new(encoding).feed(bytes, complete, &mut text);
        let shape = FileShape {
            data_start: 0,
            dialect: reading_dialect(reading, &text),
            encoding: encoding.name().to_owned(),
            source: Source::Transcode,
        };
        let scan = FileShape {
            encoding: utf8_name(),
            ..shape.clone()
        };
        return Ok(Text {
            shape,
            bytes: text.into(),
            scan,
        });
    }
    check_text(bytes)?;
    let shape = FileShape {
        data_start: csv::bom_len(bytes) as u64,
        dialect: reading_dialect(reading, bytes),
        encoding: encoding.name().to_owned(),
        source: Source::Csv,
    };
    Ok(Text {
        scan: shape.clone(),
        shape,
        bytes: bytes.into(),
    })
}

fn reading_dialect(reading: &Reading, head: &[u8]) -> Dialect {
    match reading.delimiter {
        Some(delimiter) => Dialect {
            delimiter,
            ..Dialect::default()
        },
        None => csv::sniff(head),
    }
}

/// The first records of `bytes` (read from `shape.data_start`), as display cells.
pub fn records_of(
    bytes: &[u8],
    shape: &FileShape,
    max_records: usize,
    complete: bool,
) -> Result<Vec<Vec<String>>, PipelineError> {
    let mut scanner = Scanner::new(shape.dialect, shape.data_start, 0);
    let mut spans = Vec::new();
    scanner.feed(&bytes[shape.data_start as usize..], &mut spans)?;
    if complete {
        scanner.finish(&mut spans)?;
    }
    Ok(spans
        .iter()
        .take(max_records)
        .map(|s| cells(&bytes[s.start as usize..s.end as usize], shape))
        .collect())
}

/// A whole workbook (zip needs its directory at the end), refused above the size limit.
async fn workbook_bytes(
    app: &App,
    bucket: &str,
    key: &str,
    len: u64,
    head: Bytes,
    complete: bool,
) -> Result<Bytes, PipelineError> {
    let limit = convert::XlsxLimits::default().max_file_bytes;
    if len > limit {
        return Err(PipelineError::File(format!(
            "the workbook is {} MiB; the limit is {} MiB",
            len >> 20,
            limit >> 20
        )));
    }
    if complete {
        return Ok(head);
    }
    get_range(app, bucket, key, 0, len).await
}

/// Trimmed cells of a record for display: undecodable bytes are replaced.
fn cells(record: &[u8], shape: &FileShape) -> Vec<String> {
    let enc = shape.encoding();
    csv::fields(record, shape.dialect)
        .iter()
        .map(|f| enc.decode_without_bom_handling(f).0.trim().to_owned())
        .collect()
}

/// Trimmed cells of a record for import: undecodable bytes make the row an error.
fn strict_cells(record: &[u8], shape: &FileShape) -> Result<Vec<String>, String> {
    let enc = shape.encoding();
    csv::fields(record, shape.dialect)
        .iter()
        .map(|f| {
            enc.decode_without_bom_handling_and_without_replacement(f)
                .map(|t| t.trim().to_owned())
                .ok_or_else(|| format!("the row is not valid {} text", enc.name()))
        })
        .collect()
}

/// Column names: the header's cells (blank ones named by position, repeats numbered), or
/// "Column 1" … when the file has no header row.
pub fn column_names(first: Option<&Vec<String>>, header_row: bool, width: usize) -> Vec<String> {
    if !header_row {
        return (1..=width).map(|i| format!("Column {i}")).collect();
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    first
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let base = if c.is_empty() {
                format!("Column {}", i + 1)
            } else {
                c.clone()
            };
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                base
            } else {
                format!("{base} ({n})")
            }
        })
        .collect()
}

/// The wizard's preview (R-WIZ-3).
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// "csv" or "xlsx".
    pub file_type: &'static str,
    pub encoding: String,
    pub delimiter: String,
    /// The sheet shown (XLSX only), and every sheet of the workbook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sheets: Vec<convert::SheetInfo>,
    pub header_row: bool,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub suggested_mapping: BTreeMap<String, String>,
    /// "remembered" (the account's last confirmed mapping for these headers) or "dictionary".
    pub mapping_source: &'static str,
}

pub async fn preview(
    app: &App,
    job: &Job,
    header_row: bool,
    reading: &Reading,
) -> Result<Preview, PipelineError> {
    let bucket = &app.imports()?.bucket;
    let Head {
        shape,
        records,
        sheets,
    } = head(app, bucket, &job.object_key, PREVIEW_ROWS + 1, reading).await?;
    let width = records.iter().map(Vec::len).max().unwrap_or(0);
    let columns = column_names(records.first(), header_row, width);
    let rows: Vec<Vec<String>> = records
        .into_iter()
        .skip(usize::from(header_row))
        .take(PREVIEW_ROWS)
        .collect();
    let suggested_mapping = if header_row {
        columns
            .iter()
            .filter_map(|c| super::headers::suggest(c).map(|f| (c.clone(), f)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let remembered = if header_row {
        app.store
            .remembered_mapping(&job.account_id, &columns)
            .await?
    } else {
        None
    };
    let (suggested_mapping, mapping_source) = match remembered {
        Some(r) => (
            r.mapping
                .into_iter()
                .filter(|(c, _)| columns.contains(c))
                .collect(),
            "remembered",
        ),
        None => (suggested_mapping, "dictionary"),
    };
    let sheet = match &shape.source {
        Source::Xlsx { sheet } => Some(sheet.clone()),
        _ => None,
    };
    Ok(Preview {
        file_type: if sheet.is_some() { "xlsx" } else { "csv" },
        encoding: shape.encoding.clone(),
        delimiter: (shape.dialect.delimiter as char).to_string(),
        sheet,
        sheets,
        header_row,
        columns,
        rows,
        suggested_mapping,
        mapping_source,
    })
}

/// Checks saved settings against the file and the account; the mapper reads rows.
pub async fn mapper(
    app: &App,
    job: &Job,
    account: &Settings,
) -> Result<(RowMapper, FileShape), PipelineError> {
    let settings = job.settings.as_ref().ok_or_else(|| {
        PipelineError::Settings(vec![SettingsProblem {
            field: "settings".into(),
            code: "missing_settings",
            message: "save the import settings first".into(),
        }])
    })?;
    let bucket = &app.imports()?.bucket;
    let Head { shape, records, .. } = head(
        app,
        bucket,
        &job.object_key,
        50,
        &Reading::of(Some(settings)),
    )
    .await?;
    let width = records.iter().map(Vec::len).max().unwrap_or(0);
    let columns = column_names(records.first(), settings.header_row, width);
    let mapper = settings
        .plan(&columns, account, account.cell_limit())
        .map_err(PipelineError::Settings)?;
    Ok((mapper, shape))
}

/// Validates settings against the file (for `PUT settings`).
pub async fn check_settings(
    app: &App,
    job: &Job,
    settings: &ImportSettings,
    account: &Settings,
) -> Result<RowMapper, PipelineError> {
    let mut job = job.clone();
    job.settings = Some(settings.clone());
    Ok(mapper(app, &job, account).await?.0)
}

/// Bytes per part of a multipart upload (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 << 20;

/// An object written piece by piece: one PutObject when small, a multipart upload otherwise,
/// so a converted file never sits whole in memory.
struct Upload<'a> {
    app: &'a App,
    bucket: &'a str,
    key: &'a str,
    id: Option<String>,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
    buf: Vec<u8>,
}

impl<'a> Upload<'a> {
    fn new(app: &'a App, bucket: &'a str, key: &'a str) -> Self {
        Self {
            app,
            bucket,
            key,
            id: None,
            parts: Vec::new(),
            buf: Vec::new(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), PipelineError> {
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= PART_BYTES {
            let rest = self.buf.split_off(PART_BYTES);
            let part = std::mem::replace(&mut self.buf, rest);
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Vec<u8>) -> Result<(), PipelineError> {
        let s3 = &self.app.s3;
        let err = |e| PipelineError::s3("UploadPart", aws_sdk_s3::error::DisplayErrorContext(e));
        if self.id.is_none() {
            let out = s3
                .create_multipart_upload()
                .bucket(self.bucket)
                .key(self.key)
                .send()
                .await
                .map_err(|e| {
                    PipelineError::s3(
                        "CreateMultipartUpload",
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    )
                })?;
            self.id = out.upload_id;
        }
        let number = self.parts.len() as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(self.id.clone().unwrap_or_default())
            .part_number(number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(err)?;
        self.parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build(),
        );
        Ok(())
    }

    async fn finish(mut self) -> Result<(), PipelineError> {
        if self.id.is_none() {
            self.app
                .s3
                .put_object()
                .bucket(self.bucket)
                .key(self.key)
                .body(ByteStream::from(std::mem::take(&mut self.buf)))
                .send()
                .await
                .map_err(|e| {
                    PipelineError::s3("PutObject", aws_sdk_s3::error::DisplayErrorContext(e))
                })?;
            return Ok(());
        }
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.send_part(last).await?;
        }
        self.app
            .s3
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(self.id.clone().unwrap_or_default())
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                PipelineError::s3(
                    "CompleteMultipartUpload",
                    aws_sdk_s3::error::DisplayErrorContext(e),
                )
            })?;
        Ok(())
    }
}

/// A `Write` that hands full parts to the async side (for conversions on a blocking thread).
struct PartSender {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl std::io::Write for PartSender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= PART_BYTES {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.tx
            .blocking_send(std::mem::take(&mut self.buf))
            .map_err(|_| std::io::Error::other("the upload stopped"))
    }
}

fn data_key(job: &Job) -> String {
    format!("work/{}/{}/data.csv", job.account_id.0, job.import_id)
}

/// The object the records are read from, and how: the upload itself when it is 8-bit CSV,
/// else a UTF-8 CSV work object converted from it (UTF-16 and multi-byte text transcoded as a
/// stream; an XLSX sheet converted on a blocking thread, parts uploaded as they fill).
async fn data_object(
    app: &App,
    job: &Job,
    shape: &FileShape,
) -> Result<(String, FileShape), PipelineError> {
    let bucket = &app.imports()?.bucket;
    let utf8 = FileShape {
        data_start: 0,
        dialect: shape.dialect,
        encoding: utf8_name(),
        source: Source::Csv,
    };
    let key = data_key(job);
    match &shape.source {
        Source::Csv => return Ok((job.object_key.clone(), shape.clone())),
        Source::Transcode => {
            let out = app
                .s3
                .get_object()
                .bucket(bucket)
                .key(&job.object_key)
                .send()
                .await
                .map_err(|e| {
                    PipelineError::s3("GetObject", aws_sdk_s3::error::DisplayErrorContext(e))
                })?;
            let mut body = out.body;
            let mut transcoder = convert::Transcoder::new(shape.encoding());
            let mut upload = Upload::new(app, bucket, &key);
            let mut text = Vec::new();
            loop {
                let piece = body
                    .try_next()
                    .await
                    .map_err(|e| PipelineError::s3("GetObject", e))?;
                text.clear();
                transcoder.feed(
                    piece.as_deref().unwrap_or_default(),
                    piece.is_none(),
                    &mut text,
                );
                upload.write(&text).await?;
                if piece.is_none() {
                    break;
                }
            }
            upload.finish().await?;
        }
        Source::Xlsx { sheet } => {
            let len = object_len(app, bucket, &job.object_key).await?;
            let whole =
                workbook_bytes(app, bucket, &job.object_key, len, Bytes::new(), false).await?;
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
            let sheet = sheet.clone();
            let convert = tokio::task::spawn_blocking(move || {
                convert::check_zip(&whole, &convert::XlsxLimits::default())?;
                let mut sink = PartSender {
                    tx,
                    buf: Vec::new(),
                };
                let c = convert::xlsx_to_csv(&whole, Some(&sheet), None, &mut sink)?;
                std::io::Write::flush(&mut sink).map_err(|e| ConvertError::Write(e.to_string()))?;
                Ok::<_, ConvertError>(c)
            });
            let mut upload = Upload::new(app, bucket, &key);
            while let Some(part) = rx.recv().await {
                upload.write(&part).await?;
            }
            convert.await.map_err(|e| {
                PipelineError::File(format!("the workbook could not be read: {e}"))
            })??;
            upload.finish().await?;
            return Ok((
                key,
                FileShape {
                    dialect: Dialect::default(),
                    ..utf8
                },
            ));
        }
    }
    Ok((key, utf8))
}

/// Streams an object's records from `shape.data_start`, calling `each` with every record's
/// span and bytes.
async fn stream_records(
    app: &App,
    bucket: &str,
    key: &str,
    shape: &FileShape,
    mut each: impl FnMut(Span, &[u8]) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    let out = app
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={}-", shape.data_start))
        .send()
        .await
        .map_err(|e| PipelineError::s3("GetObject", aws_sdk_s3::error::DisplayErrorContext(e)))?;
    let mut body = out.body;
    let mut scanner = Scanner::new(shape.dialect, shape.data_start, 0);
    let (mut buf, mut buf_start, mut spans) = (Vec::<u8>::new(), shape.data_start, Vec::new());
    loop {
        let piece = body
            .try_next()
            .await
            .map_err(|e| PipelineError::s3("GetObject", e))?;
        match &piece {
            Some(bytes) => scanner.feed(bytes, &mut spans)?,
            None => scanner.finish(&mut spans)?,
        }
        if let Some(bytes) = &piece {
            buf.extend_from_slice(bytes);
        }
        for span in spans.drain(..) {
            each(
                span,
                &buf[(span.start - buf_start) as usize..(span.end - buf_start) as usize],
            )?;
            let keep_from = (span.end - buf_start) as usize;
            buf.drain(..keep_from);
            buf_start = span.end;
        }
        if piece.is_none() {
            return Ok(());
        }
    }
}

/// One chunk's work order (the SQS message body).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkMessage {
    pub account_id: crate::model::AccountId,
    pub import_id: String,
    pub shape: FileShape,
    /// The object the chunk's byte range is in (the upload, or its UTF-8 conversion).
    #[serde(default)]
    pub object_key: String,
    /// The file's column names, so a worker needs no read of the file's head.
    pub columns: Vec<String>,
    pub spec: ChunkSpec,
    pub extras_key: Option<String>,
}

fn extras_key(job: &Job, n: u32) -> String {
    format!(
        "work/{}/{}/extras-{n:06}.csv",
        job.account_id.0, job.import_id
    )
}

fn errors_key(job: &Job, n: u32) -> String {
    format!(
        "reports/{}/{}/errors-{n:06}.jsonl",
        job.account_id.0, job.import_id
    )
}

/// Splits a queued job into chunks and sends one message per chunk. Safe to run twice: a job
/// already running only has its chunk messages sent again (chunks count once).
pub async fn split(app: &App, job: &Job, account: &Settings) -> Result<u64, PipelineError> {
    let cfg = app.imports()?;
    let (mapper, shape) = mapper(app, job, account).await?;
    let (object, shape) = data_object(app, job, &shape).await?;
    let header = job.settings.as_ref().is_some_and(|s| s.header_row);
    let mut groups = Groups::default();
    let mut data: Vec<Span> = Vec::new();
    stream_records(app, &cfg.bucket, &object, &shape, |span, bytes| {
        if header && span.index == 0 {
            return Ok(());
        }
        let hashes = strict_cells(bytes, &shape)
            .map(|c| mapper.identity_hashes(&c))
            .unwrap_or_default();
        groups.add(&hashes);
        data.push(span);
        Ok(())
    })
    .await?;
    if data.is_empty() {
        return Err(PipelineError::File("the file has no data rows".into()));
    }
    let plan = split::plan(&data, &mut groups, cfg.chunk_rows);
    let moved: HashMap<u64, u32> = plan
        .iter()
        .flat_map(|c| c.extras.iter().map(move |&i| (i, c.number)))
        .collect();
    let mut extras: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    if !moved.is_empty() {
        stream_records(app, &cfg.bucket, &object, &shape, |span, bytes| {
            if let Some(&target) = moved.get(&span.index) {
                let buf = extras.entry(target).or_default();
                buf.extend_from_slice(bytes);
                buf.push(b'\n');
            }
            Ok(())
        })
        .await?;
    }
    for (n, bytes) in extras {
        app.s3
            .put_object()
            .bucket(&cfg.bucket)
            .key(extras_key(job, n))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| {
                PipelineError::s3("PutObject", aws_sdk_s3::error::DisplayErrorContext(e))
            })?;
    }
    let rows_total = data.len() as u64;
    let started = app
        .store
        .mark_running(
            &cfg.table,
            &job.account_id,
            &job.import_id,
            rows_total,
            plan.len() as u64,
            &shape.dialect,
        )
        .await?;
    if !started && job.status != JobStatus::Running {
        return Ok(0);
    }
    let messages: Vec<ChunkMessage> = plan
        .into_iter()
        .map(|spec| ChunkMessage {
            account_id: job.account_id.clone(),
            import_id: job.import_id.clone(),
            shape: shape.clone(),
            object_key: object.clone(),
            columns: mapper.columns().to_vec(),
            extras_key: (!spec.extras.is_empty()).then(|| extras_key(job, spec.number)),
            spec,
        })
        .collect();
    send_chunks(app, &cfg.chunk_queue_url, &messages).await?;
    tracing::info!(account_id = %job.account_id, import_id = %job.import_id, rows = rows_total, chunks = messages.len(), "import split");
    Ok(rows_total)
}

async fn send_chunks(
    app: &App,
    queue_url: &str,
    messages: &[ChunkMessage],
) -> Result<(), PipelineError> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    for batch in messages.chunks(10) {
        let mut entries = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            let body = serde_json::to_string(&QueueMessage::Chunk(Box::new(m.clone())))
                .map_err(|e| PipelineError::File(e.to_string()))?;
            entries.push(
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| PipelineError::Sqs {
                        op: "SendMessageBatch",
                        message: e.to_string(),
                    })?,
            );
        }
        let out = app
            .sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| PipelineError::Sqs {
                op: "SendMessageBatch",
                message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
            })?;
        if !out.failed.is_empty() {
            return Err(PipelineError::Sqs {
                op: "SendMessageBatch",
                message: format!("{} messages refused", out.failed.len()),
            });
        }
    }
    Ok(())
}

/// The messages of the import queues.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QueueMessage {
    /// Split a job the wizard started.
    Split {
        account_id: crate::model::AccountId,
        import_id: String,
    },
    Chunk(Box<ChunkMessage>),
    /// One page of a revert.
    Revert(super::revert::RevertMessage),
}

/// A row of a chunk, ready or already decided. A client row with contact-person groups gives
/// one `Record` per person (with the group number) and maybe a `Done(Err)` for the rest.
#[allow(clippy::large_enum_variant)] // most rows are records; boxing them would only allocate
enum Row {
    Record(u64, u8, Incoming),
    Done(Result<(), Vec<RowError>>),
}

/// A file record's rows: decoded with the file's encoding, then mapped.
fn rows_of(mapper: &RowMapper, row: u64, cells: Result<Vec<String>, String>, out: &mut Vec<Row>) {
    let cells = match cells {
        Ok(c) => c,
        Err(reason) => {
            out.push(Row::Done(Err(vec![RowError {
                row,
                column: None,
                value: None,
                reason,
            }])));
            return;
        }
    };
    match mapper.map(row, &cells) {
        MappedRow::Blank => out.push(Row::Done(Ok(()))),
        MappedRow::Invalid(errors) => out.push(Row::Done(Err(errors))),
        MappedRow::Record(r) => out.push(Row::Record(row, 0, r)),
        MappedRow::People { records, errors } => {
            if !errors.is_empty() {
                out.push(Row::Done(Err(errors)));
            }
            out.extend(records.into_iter().map(|(g, r)| Row::Record(row, g, r)));
        }
    }
}

/// Reads and maps a chunk's rows, in file order.
async fn chunk_rows(
    app: &App,
    msg: &ChunkMessage,
    object: &str,
    mapper: &RowMapper,
) -> Result<(Vec<Row>, u64), PipelineError> {
    let cfg = app.imports()?;
    let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
    let bytes = get_range(app, &cfg.bucket, object, msg.spec.start, msg.spec.end).await?;
    let mut scanner = Scanner::new(msg.shape.dialect, msg.spec.start, msg.spec.first_index);
    let mut spans = Vec::new();
    scanner.feed(&bytes, &mut spans)?;
    scanner.finish(&mut spans)?;
    let skip: std::collections::HashSet<u64> = msg.spec.skip.iter().copied().collect();
    for s in spans.iter().filter(|s| !skip.contains(&s.index)) {
        let b = &bytes[(s.start - msg.spec.start) as usize..(s.end - msg.spec.start) as usize];
        records.push((s.index, b.to_vec()));
    }
    if let Some(key) = &msg.extras_key {
        let len = object_len(app, &cfg.bucket, key).await?;
        let extra = get_range(app, &cfg.bucket, key, 0, len).await?;
        let mut scanner = Scanner::new(msg.shape.dialect, 0, 0);
        let mut spans = Vec::new();
        scanner.feed(&extra, &mut spans)?;
        scanner.finish(&mut spans)?;
        for (s, index) in spans.iter().zip(&msg.spec.extras) {
            records.push((*index, extra[s.start as usize..s.end as usize].to_vec()));
        }
    }
    records.sort_by_key(|(i, _)| *i);
    let mut rows = Vec::with_capacity(records.len());
    for (index, bytes) in &records {
        rows_of(
            mapper,
            index + 1,
            strict_cells(bytes, &msg.shape),
            &mut rows,
        );
    }
    Ok((rows, records.len() as u64))
}

/// The id a row's created contact gets (per contact-person group when the row has them): the
/// same on every delivery of the chunk.
pub fn row_contact_id(import_id: &str, row: u64, group: u8) -> ContactId {
    let name = match group {
        0 => format!("intake:import:{import_id}:{row}"),
        g => format!("intake:import:{import_id}:{row}#{g}"),
    };
    ContactId(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string())
}

/// Applies rows in order through `ingest`, in batches, after merging in-file duplicates into
/// their first row (R-XLS-8); returns counts, row errors and the merges.
async fn apply_rows(
    app: &App,
    job: &Job,
    mapper: &RowMapper,
    rows: Vec<Row>,
    chunk: Option<u32>,
    mode: &mut Mode<'_>,
) -> Result<(Counts, Vec<RowError>, Vec<clean::Merged>), PipelineError> {
    let mut counts = Counts::default();
    let mut errors = Vec::new();
    let policy = Policy {
        matching: Matching::Keys(mapper.keys),
        merge: ingest::context(
            Utc::now(),
            format!("import:{}", job.import_id),
            Some(job.label.clone()),
            mapper.master,
        ),
        default_country: None,
        undo: Some(UndoLog {
            chunk,
            ..app
                .store
                .undo_log(&app.imports()?.table, &job.account_id, &job.import_id)
        }),
    };
    let mut records: Vec<clean::FileRecord> = Vec::with_capacity(rows.len());
    for row in rows {
        match row {
            Row::Done(Ok(())) => counts.blank += 1,
            Row::Done(Err(e)) => {
                counts.errors += 1;
                errors.extend(e);
            }
            Row::Record(row, group, mut rec) => {
                rec.lists.insert(job.list_id.clone());
                records.push((row, group, rec));
            }
        }
    }
    let (records, merged) = clean::fold_duplicates(records, mapper.keys, mapper.master);
    counts.merged = merged.len() as u64;
    for batch in records.chunks(INGEST_BATCH) {
        let numbers: Vec<(u64, u8)> = batch.iter().map(|(r, g, _)| (*r, *g)).collect();
        let records: Vec<Incoming> = batch.iter().map(|(_, _, rec)| rec.clone()).collect();
        let ids: Vec<ContactId> = numbers
            .iter()
            .map(|(r, g)| row_contact_id(&job.import_id, *r, *g))
            .collect();
        let (results, _) =
            ingest::upsert_many_with(&app.store, &job.account_id, &records, &ids, &policy, mode)
                .await;
        for ((row, group), result) in numbers.into_iter().zip(results) {
            match result {
                Ok(a) => match a.outcome {
                    ingest::Outcome::Created => counts.created += 1,
                    ingest::Outcome::Updated => counts.updated += 1,
                    ingest::Outcome::Unchanged => counts.unchanged += 1,
                },
                Err(IngestError::Rule(e @ RuleError::NoIdentifier { .. })) => {
                    counts.errors += 1;
                    errors.push(RowError {
                        row,
                        column: mapper
                            .key_column(mapper.keys.primary, group)
                            .map(str::to_owned),
                        value: None,
                        reason: e.to_string(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    errors.sort_by_key(|e| e.row);
    Ok((counts, errors, merged))
}

/// Processes one chunk message. Redelivery-safe: a done chunk is skipped, counters are added
/// with the done marker in one transaction, created contacts have row-derived ids.
pub async fn process_chunk(
    app: &App,
    msg: &ChunkMessage,
    account: &Settings,
) -> Result<ChunkMark, PipelineError> {
    let cfg = app.imports()?;
    let Some(job) = app
        .store
        .job(&cfg.table, &msg.account_id, &msg.import_id)
        .await?
    else {
        return Ok(ChunkMark::AlreadyDone);
    };
    if job.status != JobStatus::Running
        || app
            .store
            .chunk_done(&cfg.table, &job.account_id, &job.import_id, msg.spec.number)
            .await?
    {
        return Ok(ChunkMark::AlreadyDone);
    }
    let settings = job
        .settings
        .as_ref()
        .ok_or_else(|| PipelineError::File("the import has no settings".into()))?;
    let mapper = settings
        .plan(&msg.columns, account, account.cell_limit())
        .map_err(PipelineError::Settings)?;
    let object = if msg.object_key.is_empty() {
        &job.object_key
    } else {
        &msg.object_key
    };
    let (rows, seen) = chunk_rows(app, msg, object, &mapper).await?;
    let (mut counts, errors, _) = apply_rows(
        app,
        &job,
        &mapper,
        rows,
        Some(msg.spec.number),
        &mut Mode::Write,
    )
    .await?;
    counts.rows = seen;
    if !errors.is_empty() {
        let mut body = Vec::new();
        for e in &errors {
            serde_json::to_writer(&mut body, e).map_err(|e| PipelineError::File(e.to_string()))?;
            body.push(b'\n');
        }
        app.s3
            .put_object()
            .bucket(&cfg.bucket)
            .key(errors_key(&job, msg.spec.number))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                PipelineError::s3("PutObject", aws_sdk_s3::error::DisplayErrorContext(e))
            })?;
    }
    let mark = app
        .store
        .mark_chunk_done(
            &cfg.table,
            &job.account_id,
            &job.import_id,
            msg.spec.number,
            &counts,
        )
        .await?;
    if mark == ChunkMark::Counted {
        finish_if_done(app, &job).await?;
    }
    tracing::info!(account_id = %job.account_id, import_id = %job.import_id, chunk = msg.spec.number, created = counts.created, updated = counts.updated, unchanged = counts.unchanged, errors = counts.errors, "chunk processed");
    Ok(mark)
}

/// Finishes the job once every chunk is done (only one worker's update wins).
pub(crate) async fn finish_if_done(app: &App, job: &Job) -> Result<(), PipelineError> {
    let cfg = app.imports()?;
    let Some(now) = app
        .store
        .job(&cfg.table, &job.account_id, &job.import_id)
        .await?
    else {
        return Ok(());
    };
    if now.chunks_done == now.chunks_total && now.status == JobStatus::Running {
        let (mut created, mut updated) = (0, 0);
        app.store
            .each_undo(&cfg.table, &job.account_id, &job.import_id, |r| {
                if r.before.is_some() {
                    updated += 1
                } else {
                    created += 1
                }
            })
            .await?;
        let counts = job::settled(&now.counts, created, updated);
        let status = job::final_status(&counts);
        if app
            .store
            .finish_job(
                &cfg.table,
                &job.account_id,
                &job.import_id,
                status,
                &counts,
                Utc::now(),
            )
            .await?
        {
            tracing::info!(account_id = %job.account_id, import_id = %job.import_id, status = ?status, rows = now.rows_done, "import finished");
        }
    }
    Ok(())
}

/// Every row error of a job, in row order (R-XLS-4).
pub async fn row_errors(app: &App, job: &Job) -> Result<Vec<RowError>, PipelineError> {
    let cfg = app.imports()?;
    let prefix = format!("reports/{}/{}/", job.account_id.0, job.import_id);
    let mut pages = app
        .s3
        .list_objects_v2()
        .bucket(&cfg.bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            PipelineError::s3("ListObjectsV2", aws_sdk_s3::error::DisplayErrorContext(e))
        })?;
        for obj in page.contents() {
            let Some(key) = obj.key() else { continue };
            let len = obj.size.unwrap_or(0).max(0) as u64;
            let body = get_range(app, &cfg.bucket, key, 0, len).await?;
            for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                out.push(
                    serde_json::from_slice(line).map_err(|e| {
                        PipelineError::File(format!("report {key} is malformed: {e}"))
                    })?,
                );
            }
        }
    }
    out.sort_by_key(|e: &RowError| e.row);
    Ok(out)
}

/// What a dry run found (API.md `POST /v1/imports/{id}/validate`), with the cleaning report
/// (R-XLS-8): rows merged into an earlier duplicate, and values the import normalises.
#[derive(Debug, Clone, Serialize)]
pub struct ValidateReport {
    pub rows: u64,
    pub would_create: u64,
    pub would_update: u64,
    pub unchanged: u64,
    pub blank: u64,
    pub errors: u64,
    pub sample_errors: Vec<RowError>,
    pub merged_duplicates: u64,
    pub sample_merged: Vec<clean::Merged>,
    pub normalised: u64,
    pub sample_normalised: Vec<Normalised>,
}

/// The dry run: every row through the import's own path, writes into an overlay.
pub async fn validate(
    app: &App,
    job: &Job,
    account: &Settings,
) -> Result<ValidateReport, PipelineError> {
    let cfg = app.imports()?;
    let (mapper, shape) = mapper(app, job, account).await?;
    let (object, shape) = data_object(app, job, &shape).await?;
    let header = job.settings.as_ref().is_some_and(|s| s.header_row);
    let (mut rows, mut seen, mut normalised, mut changed) = (Vec::new(), 0u64, Vec::new(), 0u64);
    stream_records(app, &cfg.bucket, &object, &shape, |span, bytes| {
        if header && span.index == 0 {
            return Ok(());
        }
        seen += 1;
        if seen > VALIDATE_MAX_ROWS {
            return Err(PipelineError::File(format!("the file has more than {VALIDATE_MAX_ROWS} rows: start the import and read its report")));
        }
        let row = span.index + 1;
        let cells = strict_cells(bytes, &shape);
        if let Ok(cells) = &cells {
            for change in mapper.normalisations(row, cells) {
                changed += 1;
                if normalised.len() < SAMPLE_ERRORS {
                    normalised.push(change);
                }
            }
        }
        rows_of(&mapper, row, cells, &mut rows);
        Ok(())
    })
    .await?;
    let mut overlay = Overlay::default();
    let (counts, errors, merged) = apply_rows(
        app,
        job,
        &mapper,
        rows,
        None,
        &mut Mode::DryRun(&mut overlay),
    )
    .await?;
    Ok(ValidateReport {
        rows: seen,
        would_create: counts.created,
        would_update: counts.updated,
        unchanged: counts.unchanged,
        blank: counts.blank,
        errors: counts.errors,
        sample_errors: errors.into_iter().take(SAMPLE_ERRORS).collect(),
        merged_duplicates: counts.merged,
        sample_merged: merged.into_iter().take(SAMPLE_ERRORS).collect(),
        normalised: changed,
        sample_normalised: normalised,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Supported encodings, the characters they can carry, and whether detection must find
    /// them alone (a BOM or UTF-8) or the user names them (8-bit guesses need more text than a
    /// generated file has; the fixtures prove detection on real text).
    const ENCODINGS: [(&str, &str, bool); 7] = [
        ("UTF-8", "æøåÅØÆšžčř王伟東億", true),
        ("UTF-8 BOM", "æøåÅØÆšžčř王伟東億", true),
        ("UTF-16LE", "æøåÅØÆšžčř王伟東億", true),
        ("UTF-16BE", "æøåÅØÆšžčř王伟東億", true),
        ("windows-1252", "æøåÅØÆéü", false),
        ("ISO-8859-2", "šžčřěŠŽČŘ", false),
        ("GBK", "王伟東億瑋李娜", false),
    ];

    fn encode(text: &str, name: &str) -> Vec<u8> {
        match name {
            "UTF-8" => text.as_bytes().to_vec(),
            "UTF-8 BOM" => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
            "UTF-16LE" => [0xFF, 0xFE]
                .into_iter()
                .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
                .collect(),
            "UTF-16BE" => [0xFE, 0xFF]
                .into_iter()
                .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
                .collect(),
            other => {
                let enc = encoding_rs::Encoding::for_label(other.as_bytes()).unwrap();
                let (bytes, _, unmappable) = enc.encode(text);
                assert!(!unmappable);
                bytes.into_owned()
            }
        }
    }

    fn file_strategy() -> impl Strategy<Value = (usize, u8, Vec<Vec<String>>)> {
        (
            0..ENCODINGS.len(),
            prop::sample::select(vec![b',', b';', b'\t', b'|']),
            2usize..5,
        )
            .prop_flat_map(|(e, delimiter, width)| {
                let class = format!(
                    "[a-zA-Z0-9 \"\n\r{}{}]{{0,8}}",
                    ENCODINGS[e].1,
                    if delimiter == b'\t' {
                        "\t".to_owned()
                    } else {
                        regex_escape(delimiter as char)
                    }
                );
                let cell = proptest::string::string_regex(&class).unwrap();
                let rows = prop::collection::vec(prop::collection::vec(cell, width), 1..8);
                (Just(e), Just(delimiter), rows)
            })
    }

    fn regex_escape(c: char) -> String {
        if c == '|' {
            "\\|".into()
        } else {
            c.to_string()
        }
    }

    proptest! {
        #[test]
        fn csv_written_by_the_csv_crate_round_trips_through_sniff_and_parse_in_every_supported_encoding(
            (e, delimiter, rows) in file_strategy()
        ) {
            let (name, _, detected) = ENCODINGS[e];
            let mut w = ::csv::WriterBuilder::new().delimiter(delimiter).from_writer(vec![]);
            for r in &rows { w.write_record(r).unwrap(); }
            let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
            let bytes = encode(&text, name);
            let reading = Reading {
                encoding: (!detected).then(|| name.to_owned()),
                ..Reading::default()
            };
            let read = read_text(&bytes, true, &reading).unwrap();
            prop_assert_eq!(read.shape.dialect.delimiter, delimiter, "{} {:?}", name, text);
            let got = records_of(&read.bytes, &read.scan, usize::MAX, true).unwrap();
            let want: Vec<Vec<String>> = rows
                .iter()
                .map(|r| r.iter().map(|c| c.trim().to_owned()).collect())
                .collect();
            prop_assert_eq!(got, want, "{} {:?}", name, text);
        }
    }
}

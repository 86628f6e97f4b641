//! Files that are not 8-bit CSV text, turned into UTF-8 CSV so one pipeline reads everything:
//! UTF-16 and multi-byte encodings (GBK, Big5, Shift_JIS, …) are transcoded as a stream, XLSX
//! sheets are written as CSV rows (cells as text, numbers without exponents, dates as ISO).
//! Pure over byte slices and writers; the pipeline streams S3 through it. Hostile inputs meet
//! limits before they cost memory: the zip directory is checked and every entry's inflated size
//! is measured (not trusted) before the workbook is opened.

use std::borrow::Cow;
use std::io::{Cursor, Read, Write};

use calamine::{DataRef, Reader, Xlsx};
use serde::Serialize;

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("{0}")]
    Refused(String),
    #[error("the workbook is damaged or not an XLSX file: {0}")]
    Corrupt(String),
    #[error("the workbook has no sheet named {0:?}")]
    NoSuchSheet(String),
    #[error("the workbook has no sheet with data")]
    NoData,
    #[error("could not write the converted file: {0}")]
    Write(String),
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Text,
    Xlsx,
}

/// Recognises XLSX (a zip) and refuses what is neither CSV nor XLSX, naming what it is.
pub fn kind(head: &[u8]) -> Result<FileKind, ConvertError> {
    if head.starts_with(b"PK\x03\x04") {
        return Ok(FileKind::Xlsx);
    }
    let kinds: [(&[u8], &str); 6] = [
        (b"%PDF", "a PDF document"),
        (
            b"\xD0\xCF\x11\xE0",
            "a legacy .xls (or password-protected) workbook: save it as .xlsx or CSV",
        ),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"\x1F\x8B", "a gzip archive"),
    ];
    if let Some((_, what)) = kinds.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Err(ConvertError::Refused(format!(
            "the file is {what}, not a CSV or XLSX file"
        )));
    }
    Ok(FileKind::Text)
}

/// True when records cannot be split on the delimiter's byte before decoding: UTF-16, and the
/// multi-byte encodings whose trail bytes can equal `|`, `;` or `"` (GBK, Big5, Shift_JIS, …).
pub fn needs_transcoding(encoding: &'static encoding_rs::Encoding) -> bool {
    encoding != encoding_rs::UTF_8 && !encoding.is_single_byte()
}

/// A streaming decoder to UTF-8 that never breaks a character at a piece's edge.
pub struct Transcoder {
    decoder: encoding_rs::Decoder,
}

impl Transcoder {
    pub fn new(encoding: &'static encoding_rs::Encoding) -> Self {
        Self {
            decoder: encoding.new_decoder_with_bom_removal(),
        }
    }

    /// Appends the UTF-8 text of `piece` to `out` (malformed sequences become U+FFFD).
    pub fn feed(&mut self, piece: &[u8], last: bool, out: &mut Vec<u8>) {
        let need = self
            .decoder
            .max_utf8_buffer_length(piece.len())
            .unwrap_or(piece.len() * 3 + 16);
        let start = out.len();
        out.resize(start + need, 0);
        let (_, _, written, _) = self.decoder.decode_to_utf8(piece, &mut out[start..], last);
        out.truncate(start + written);
    }
}

/// Limits for workbooks, checked before and while reading.
#[derive(Debug, Clone, Copy)]
pub struct XlsxLimits {
    /// The uploaded file itself.
    pub max_file_bytes: u64,
    pub max_entries: usize,
    /// Every entry's inflated bytes together (measured while inflating, not trusted).
    pub max_inflated_bytes: u64,
    /// The shared-strings part, which is held in memory.
    pub max_shared_strings_bytes: u64,
}

impl Default for XlsxLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 256 << 20,
            max_entries: 10_000,
            max_inflated_bytes: 1 << 30,
            max_shared_strings_bytes: 512 << 20,
        }
    }
}

fn corrupt(e: impl std::fmt::Display) -> ConvertError {
    ConvertError::Corrupt(e.to_string())
}

/// Refuses zip bombs and oversized workbooks: too many entries, declared or actual inflated
/// sizes over the limits. Inflation stops at the first byte over a limit.
pub fn check_zip(bytes: &[u8], limits: &XlsxLimits) -> Result<(), ConvertError> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(ConvertError::Refused(format!(
            "the workbook is {} MiB; the limit is {} MiB",
            bytes.len() >> 20,
            limits.max_file_bytes >> 20
        )));
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(corrupt)?;
    if zip.len() > limits.max_entries {
        return Err(ConvertError::Refused(format!(
            "the workbook holds {} parts; the limit is {}",
            zip.len(),
            limits.max_entries
        )));
    }
    let too_big = |what: &str, limit: u64| {
        ConvertError::Refused(format!(
            "the workbook inflates to more than {} MiB ({what}); it looks like a zip bomb or is too large to import",
            limit >> 20
        ))
    };
    let mut declared = 0u64;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(corrupt)?;
        declared = declared.saturating_add(entry.size());
        if entry.name().ends_with("sharedStrings.xml")
            && entry.size() > limits.max_shared_strings_bytes
        {
            return Err(too_big("shared strings", limits.max_shared_strings_bytes));
        }
    }
    if declared > limits.max_inflated_bytes {
        return Err(too_big("declared sizes", limits.max_inflated_bytes));
    }
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(corrupt)?;
        let shared = entry.name().ends_with("sharedStrings.xml");
        let room = limits.max_inflated_bytes - total;
        let cap = if shared {
            room.min(limits.max_shared_strings_bytes)
        } else {
            room
        };
        let n = std::io::copy(&mut (&mut entry).take(cap + 1), &mut std::io::sink())
            .map_err(corrupt)?;
        if n > cap {
            return Err(if shared && cap == limits.max_shared_strings_bytes {
                too_big("shared strings", limits.max_shared_strings_bytes)
            } else {
                too_big("all parts", limits.max_inflated_bytes)
            });
        }
        total += n;
    }
    Ok(())
}

/// A cell as the text a user sees: whole numbers without a fraction or exponent (phone numbers
/// and ids stay digits), dates as ISO 8601, errors as Excel shows them.
pub fn cell_text<'a>(value: &'a DataRef<'a>) -> Cow<'a, str> {
    match value {
        DataRef::Empty => Cow::Borrowed(""),
        DataRef::String(s) => Cow::Borrowed(s.as_str()),
        DataRef::SharedString(s) => Cow::Borrowed(s),
        DataRef::Int(i) => Cow::Owned(i.to_string()),
        DataRef::Float(f) => Cow::Owned(number_text(*f)),
        DataRef::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        DataRef::DateTime(d) if d.is_datetime() => match d.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => {
                Cow::Owned(t.format("%Y-%m-%d").to_string())
            }
            Some(t) => Cow::Owned(t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            None => Cow::Owned(number_text(d.as_f64())),
        },
        DataRef::DateTime(d) => Cow::Owned(number_text(d.as_f64())),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cow::Borrowed(s.as_str()),
        DataRef::Error(e) => Cow::Owned(e.to_string()),
    }
}

fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// One sheet of a workbook, as the preview lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SheetInfo {
    pub name: String,
    pub has_data: bool,
}

/// What a conversion read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub sheet: String,
    pub sheets: Vec<SheetInfo>,
    pub rows: u64,
}

fn open(bytes: &[u8]) -> Result<Xlsx<Cursor<&[u8]>>, ConvertError> {
    Xlsx::new(Cursor::new(bytes)).map_err(corrupt)
}

fn sheet_infos(book: &mut Xlsx<Cursor<&[u8]>>) -> Result<Vec<SheetInfo>, ConvertError> {
    let names = book.sheet_names();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let has_data = match book.worksheet_cells_reader(&name) {
            Ok(mut cells) => loop {
                match cells.next_cell() {
                    Ok(Some(c)) if cell_text(c.get_value()).trim().is_empty() => continue,
                    Ok(Some(_)) => break true,
                    _ => break false,
                }
            },
            Err(_) => false,
        };
        out.push(SheetInfo { name, has_data });
    }
    Ok(out)
}

/// Writes a sheet (`sheet`, or the first with data) as UTF-8 CSV, at most `max_rows` rows.
/// Leading empty rows are dropped; empty rows inside the data are kept as blank records so row
/// numbers match the sheet. Call `check_zip` first.
pub fn xlsx_to_csv(
    bytes: &[u8],
    sheet: Option<&str>,
    max_rows: Option<u64>,
    out: impl Write,
) -> Result<Converted, ConvertError> {
    let mut book = open(bytes)?;
    let sheets = sheet_infos(&mut book)?;
    let name = match sheet {
        Some(s) => sheets
            .iter()
            .find(|i| i.name == s)
            .ok_or_else(|| ConvertError::NoSuchSheet(s.to_owned()))?
            .name
            .clone(),
        None => sheets
            .iter()
            .find(|i| i.has_data)
            .ok_or(ConvertError::NoData)?
            .name
            .clone(),
    };
    let mut cells = book.worksheet_cells_reader(&name).map_err(corrupt)?;
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    let write_err = |e: csv::Error| ConvertError::Write(e.to_string());
    let (mut row, mut first, mut rows) = (Vec::<String>::new(), None::<u32>, 0u64);
    let (mut current, mut row_bytes) = (0u32, 0usize);
    let limit = max_rows.unwrap_or(u64::MAX);
    while let Some(cell) = cells.next_cell().map_err(corrupt)? {
        let (r, c) = cell.get_position();
        let text = cell_text(cell.get_value());
        if first.is_none() {
            if text.trim().is_empty() {
                continue;
            }
            first = Some(r);
            current = r;
        }
        if r != current {
            writer.write_record(&row).map_err(write_err)?;
            rows += 1;
            row.clear();
            row_bytes = 0;
            for _ in current + 1..r {
                if rows >= limit {
                    break;
                }
                writer.write_record([""]).map_err(write_err)?;
                rows += 1;
            }
            current = r;
            if rows >= limit {
                break;
            }
        }
        let c = c as usize;
        row_bytes += text.len();
        if row_bytes > super::csv::MAX_RECORD_BYTES {
            return Err(ConvertError::Refused(format!(
                "row {}: the row holds more than {} bytes of text",
                r + 1,
                super::csv::MAX_RECORD_BYTES
            )));
        }
        if row.len() <= c {
            row.resize(c + 1, String::new());
        }
        row[c] = text.into_owned();
    }
    if first.is_some() && rows < limit {
        writer.write_record(&row).map_err(write_err)?;
        rows += 1;
    }
    writer
        .flush()
        .map_err(|e| ConvertError::Write(e.to_string()))?;
    Ok(Converted {
        sheet: name,
        sheets,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_refuses_a_pdf_and_a_legacy_xls_when_their_magic_bytes_lead() {
        assert!(matches!(kind(b"%PDF-1.7\n"), Err(ConvertError::Refused(m)) if m.contains("PDF")));
        assert!(
            matches!(kind(b"\xD0\xCF\x11\xE0\xA1\xB1"), Err(ConvertError::Refused(m)) if m.contains(".xls"))
        );
        assert_eq!(kind(b"PK\x03\x04rest").unwrap(), FileKind::Xlsx);
        assert_eq!(kind(b"name;email\n").unwrap(), FileKind::Text);
    }

    #[test]
    fn transcoder_keeps_characters_whole_when_pieces_split_them() {
        let text = "Navn|邮箱地址\n王伟|wang@example.cn\n";
        for enc in [
            encoding_rs::UTF_16LE,
            encoding_rs::UTF_16BE,
            encoding_rs::GBK,
        ] {
            let (bytes, _, _) = enc.encode(text);
            let bytes: Vec<u8> = if enc == encoding_rs::UTF_16LE {
                text.encode_utf16().flat_map(u16::to_le_bytes).collect()
            } else if enc == encoding_rs::UTF_16BE {
                text.encode_utf16().flat_map(u16::to_be_bytes).collect()
            } else {
                bytes.into_owned()
            };
            for piece in 1..7 {
                let mut t = Transcoder::new(enc);
                let mut out = Vec::new();
                let chunks: Vec<&[u8]> = bytes.chunks(piece).collect();
                for (i, c) in chunks.iter().enumerate() {
                    t.feed(c, i + 1 == chunks.len(), &mut out);
                }
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    text,
                    "{} piece {piece}",
                    enc.name()
                );
            }
        }
    }

    #[test]
    fn needs_transcoding_is_true_for_multi_byte_encodings_only() {
        assert!(needs_transcoding(encoding_rs::GBK));
        assert!(needs_transcoding(encoding_rs::UTF_16LE));
        assert!(needs_transcoding(encoding_rs::SHIFT_JIS));
        assert!(!needs_transcoding(encoding_rs::UTF_8));
        assert!(!needs_transcoding(encoding_rs::WINDOWS_1252));
        assert!(!needs_transcoding(encoding_rs::ISO_8859_2));
    }

    #[test]
    fn cell_text_writes_whole_numbers_as_digits_and_dates_as_iso() {
        assert_eq!(cell_text(&DataRef::Float(41234567.0)), "41234567");
        assert_eq!(cell_text(&DataRef::Float(4741234567.0)), "4741234567");
        assert_eq!(cell_text(&DataRef::Float(2.5)), "2.5");
        assert_eq!(cell_text(&DataRef::Int(7)), "7");
        let date =
            calamine::ExcelDateTime::new(45_292.0, calamine::ExcelDateTimeType::DateTime, false);
        assert_eq!(cell_text(&DataRef::DateTime(date)), "2024-01-01");
        let stamp =
            calamine::ExcelDateTime::new(45_292.5, calamine::ExcelDateTimeType::DateTime, false);
        assert_eq!(cell_text(&DataRef::DateTime(stamp)), "2024-01-01T12:00:00");
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        for (name, body) in entries {
            w.start_file(
                *name,
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated),
            )
            .unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn check_zip_refuses_a_bomb_when_inflated_bytes_pass_the_limit() {
        let zeros = vec![b' '; 4 << 20];
        let bomb = zip_of(&[("xl/worksheets/sheet1.xml", &zeros)]);
        assert!(bomb.len() < 64 << 10, "deflate packs spaces tightly");
        let limits = XlsxLimits {
            max_inflated_bytes: 1 << 20,
            ..XlsxLimits::default()
        };
        let err = check_zip(&bomb, &limits).unwrap_err();
        assert!(err.to_string().contains("zip bomb"), "{err}");
        assert!(check_zip(&bomb, &XlsxLimits::default()).is_ok());
    }

    #[test]
    fn check_zip_refuses_shared_strings_over_their_own_limit() {
        let big = vec![b'a'; 2 << 20];
        let file = zip_of(&[("xl/sharedStrings.xml", &big)]);
        let limits = XlsxLimits {
            max_shared_strings_bytes: 1 << 20,
            ..XlsxLimits::default()
        };
        assert!(check_zip(&file, &limits)
            .unwrap_err()
            .to_string()
            .contains("shared strings"));
    }
}

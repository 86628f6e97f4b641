//! CSV as bytes: an incremental record-boundary scanner (quoted fields may hold line breaks;
//! LF, CRLF and CR endings; a record-size cap), a field parser, and delimiter sniffing. Works
//! on byte offsets so the splitter can cut a file into ranges without decoding it.

use serde::{Deserialize, Serialize};

/// Largest record accepted: a file with a 2 GB line fails fast instead of exhausting memory.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
}

impl Default for Dialect {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: b'"',
        }
    }
}

/// Errors of reading CSV structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("row {row}: a record is longer than {MAX_RECORD_BYTES} bytes (a missing line break or an unterminated quote?)")]
    RecordTooLarge { row: u64 },
    #[error("row {row}: a quoted field is never closed")]
    UnterminatedQuote { row: u64 },
}

/// One record's place in the file: `[start, end)` are its bytes without the line break;
/// `index` counts records from 0, blank lines included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// Finds record boundaries in a byte stream fed in pieces of any size.
#[derive(Debug, Clone)]
pub struct Scanner {
    dialect: Dialect,
    state: State,
    record_start: u64,
    pos: u64,
    index: u64,
    after_cr: bool,
}

impl Scanner {
    /// A scanner whose first byte is at file offset `offset` and whose first record has `index`.
    pub fn new(dialect: Dialect, offset: u64, index: u64) -> Self {
        Self {
            dialect,
            state: State::FieldStart,
            record_start: offset,
            pos: offset,
            index,
            after_cr: false,
        }
    }

    fn end_record(&mut self, end: u64, out: &mut Vec<Span>) {
        out.push(Span {
            start: self.record_start,
            end,
            index: self.index,
        });
        self.index += 1;
        self.state = State::FieldStart;
    }

    /// Scans `bytes`, pushing every record that ends inside them.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Span>) -> Result<(), CsvError> {
        let (d, q) = (self.dialect.delimiter, self.dialect.quote);
        for &b in bytes {
            let here = self.pos;
            self.pos += 1;
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    self.record_start = self.pos;
                    continue;
                }
            }
            match (self.state, b) {
                (State::Quoted, _) if b == q => self.state = State::QuoteInQuoted,
                (State::Quoted, _) => {}
                (State::QuoteInQuoted, _) if b == q => self.state = State::Quoted,
                (State::FieldStart, _) if b == q => self.state = State::Quoted,
                (_, b'\n') | (_, b'\r') => {
                    self.end_record(here, out);
                    self.record_start = self.pos;
                    self.after_cr = b == b'\r';
                    continue;
                }
                (_, _) if b == d => self.state = State::FieldStart,
                _ => self.state = State::Unquoted,
            }
            if (self.pos - self.record_start) as usize > MAX_RECORD_BYTES {
                return Err(CsvError::RecordTooLarge {
                    row: self.index + 1,
                });
            }
        }
        Ok(())
    }

    /// Ends the stream: a last record without a line break is pushed; an open quote is an error.
    pub fn finish(&mut self, out: &mut Vec<Span>) -> Result<(), CsvError> {
        if matches!(self.state, State::Quoted) {
            return Err(CsvError::UnterminatedQuote {
                row: self.index + 1,
            });
        }
        if self.pos > self.record_start {
            self.end_record(self.pos, out);
        }
        Ok(())
    }
}

/// Splits one record's bytes into fields (quotes removed, `""` unescaped). Bytes are kept as
/// given; decoding is the caller's.
pub fn fields(record: &[u8], dialect: Dialect) -> Vec<Vec<u8>> {
    let (d, q) = (dialect.delimiter, dialect.quote);
    let mut out = Vec::new();
    let mut field = Vec::new();
    let mut state = State::FieldStart;
    for &b in record {
        match state {
            State::Quoted if b == q => state = State::QuoteInQuoted,
            State::Quoted => field.push(b),
            State::QuoteInQuoted if b == q => {
                field.push(q);
                state = State::Quoted;
            }
            State::FieldStart if b == q => state = State::Quoted,
            _ if b == d => {
                out.push(std::mem::take(&mut field));
                state = State::FieldStart;
            }
            _ => {
                field.push(b);
                state = State::Unquoted;
            }
        }
    }
    out.push(field);
    out
}

/// Bytes to skip at the start of a file (a UTF-8 byte-order mark).
pub fn bom_len(head: &[u8]) -> usize {
    if head.starts_with(UTF8_BOM) {
        UTF8_BOM.len()
    } else {
        0
    }
}

/// Picks the delimiter (`,` `;` tab `|`) that splits the first records into the most fields
/// most consistently; a comma when nothing tells.
pub fn sniff(head: &[u8]) -> Dialect {
    let head = &head[bom_len(head)..];
    let mut best = (Dialect::default(), 0usize);
    for delimiter in [b',', b';', b'\t', b'|'] {
        let dialect = Dialect {
            delimiter,
            quote: b'"',
        };
        let mut spans = Vec::new();
        let mut scanner = Scanner::new(dialect, 0, 0);
        if scanner.feed(head, &mut spans).is_err() {
            continue;
        }
        let counts: Vec<usize> = spans
            .iter()
            .take(20)
            .filter(|s| s.end > s.start)
            .map(|s| fields(&head[s.start as usize..s.end as usize], dialect).len())
            .collect();
        let Some(&first) = counts.first() else {
            continue;
        };
        let consistent = counts.iter().filter(|&&c| c == first).count();
        let score = if first > 1 { consistent * first } else { 0 };
        if score > best.1 {
            best = (dialect, score);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(field: &[u8]) -> Result<String, std::str::Utf8Error> {
        Ok(std::str::from_utf8(field)?.trim().to_owned())
    }

    fn scan_all(data: &[u8], piece: usize) -> Result<Vec<Span>, CsvError> {
        let mut s = Scanner::new(Dialect::default(), 0, 0);
        let mut out = Vec::new();
        for chunk in data.chunks(piece.max(1)) {
            s.feed(chunk, &mut out)?;
        }
        s.finish(&mut out)?;
        Ok(out)
    }

    fn texts(data: &[u8], spans: &[Span]) -> Vec<Vec<String>> {
        spans
            .iter()
            .map(|s| {
                fields(&data[s.start as usize..s.end as usize], Dialect::default())
                    .iter()
                    .map(|f| text(f).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn scanner_keeps_line_breaks_inside_quotes_in_one_record() {
        let data = b"a,b\n\"multi\nline\",x\r\nlast,\"q\"\"uote\"";
        let spans = scan_all(data, 3).unwrap();
        assert_eq!(
            texts(data, &spans),
            vec![
                vec!["a", "b"],
                vec!["multi\nline", "x"],
                vec!["last", "q\"uote"]
            ]
        );
        assert_eq!(
            spans.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn scanner_counts_blank_lines_as_records() {
        let spans = scan_all(b"a\n\nb\n", 64).unwrap();
        assert_eq!(spans.len(), 3);
        assert_eq!(
            spans[1].start, spans[1].end,
            "the blank line is an empty record"
        );
    }

    #[test]
    fn scanner_handles_cr_and_crlf_endings_split_across_pieces() {
        for data in [&b"a,1\rb,2\rc,3"[..], b"a,1\r\nb,2\r\nc,3\r\n"] {
            for piece in 1..6 {
                let spans = scan_all(data, piece).unwrap();
                assert_eq!(
                    texts(data, &spans),
                    vec![vec!["a", "1"], vec!["b", "2"], vec!["c", "3"]],
                    "{piece}"
                );
            }
        }
    }

    #[test]
    fn scanner_reports_unterminated_quote_with_its_row() {
        assert_eq!(
            scan_all(b"a\nb\n\"never closed\nc\n", 4),
            Err(CsvError::UnterminatedQuote { row: 3 })
        );
    }

    #[test]
    fn scanner_fails_fast_when_a_record_has_no_end() {
        let huge = vec![b'x'; MAX_RECORD_BYTES + 10];
        assert_eq!(
            scan_all(&huge, 4096),
            Err(CsvError::RecordTooLarge { row: 1 })
        );
    }

    #[test]
    fn fields_keep_quotes_inside_unquoted_fields() {
        let f = fields(br#"5" screen,"a,b""#, Dialect::default());
        assert_eq!(f, vec![b"5\" screen".to_vec(), b"a,b".to_vec()]);
    }

    #[test]
    fn sniff_finds_semicolon_tab_and_pipe_files() {
        assert_eq!(
            sniff(b"\xEF\xBB\xBFname;email\nOla;o@x.no\n").delimiter,
            b';'
        );
        assert_eq!(sniff(b"name\temail\nOla\to@x.no\n").delimiter, b'\t');
        assert_eq!(sniff(b"name|email|city\nOla|o@x.no|Oslo\n").delimiter, b'|');
        assert_eq!(
            sniff(b"name,email\n\"Nordmann; Ola\",o@x.no\n").delimiter,
            b','
        );
    }

    proptest! {
        #[test]
        fn csv_written_by_the_csv_crate_round_trips(rows in proptest::collection::vec(proptest::collection::vec("[a-zA-Z0-9 ,;\"\n\r|\tæøå]{0,8}", 3), 1..8), piece in 1usize..9) {
            let mut w = ::csv::WriterBuilder::new().terminator(::csv::Terminator::CRLF).from_writer(vec![]);
            for r in &rows { w.write_record(r).unwrap(); }
            let data = w.into_inner().unwrap();
            let spans = scan_all(&data, piece).unwrap();
            let got: Vec<Vec<String>> = spans.iter().map(|s| fields(&data[s.start as usize..s.end as usize], Dialect::default()).iter().map(|f| String::from_utf8(f.clone()).unwrap()).collect()).collect();
            prop_assert_eq!(got, rows);
        }
    }
}

//! Reading an ERP customers XML (Directo style, R-FEED-1/3): the items under the root channel,
//! each as named field values — the item's attributes, its child elements' text (nested ones
//! by path, `address/city`), and Directo datafields (`<data code="OPTIN" content="yes"
//! param="2024-03-01"/>` → `OPTIN` and `OPTIN.param`). Repeated fields keep every value
//! (classes). Hostile input is refused before it costs: no DTD at all (so no entity
//! expansion, no external entities), only the five XML entities and character references,
//! and limits on bytes, depth, items and fields. Pure.

use std::collections::{BTreeMap, BTreeSet};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Why a feed could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the feed is {0} bytes; the limit is {1}")]
    TooLarge(usize, usize),
    #[error("the feed declares a DTD (<!DOCTYPE>): refused, entities are not expanded")]
    Doctype,
    #[error("unknown entity &{0}; (only the five XML entities and character references are read)")]
    Entity(String),
    #[error("elements nest deeper than {0}")]
    TooDeep(usize),
    #[error("more than {0} items")]
    TooManyItems(usize),
    #[error("an item has more than {0} fields")]
    TooManyFields(usize),
    #[error("malformed XML at byte {at}: {message}")]
    Malformed { at: u64, message: String },
    #[error("no <{0}> root element")]
    NoRoot(String),
}

/// Limits for one feed document.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_items: usize,
    pub max_fields: usize,
    pub max_value_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            max_depth: 32,
            max_items: 2_000_000,
            max_fields: 500,
            max_value_chars: 10_000,
        }
    }
}

/// One item (a customer): field name → values in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    pub fields: BTreeMap<String, Vec<String>>,
}

impl Item {
    /// The first value of a field.
    pub fn first(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    fn push(&mut self, name: String, value: String, limits: &Limits) -> Result<(), XmlError> {
        if !self.fields.contains_key(&name) && self.fields.len() >= limits.max_fields {
            return Err(XmlError::TooManyFields(limits.max_fields));
        }
        let value: String = value.trim().chars().take(limits.max_value_chars).collect();
        self.fields.entry(name).or_default().push(value);
        Ok(())
    }
}

/// A parsed document: its items and every field name seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    pub items: Vec<Item>,
    pub fields: BTreeSet<String>,
}

fn local(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn attributes(
    e: &BytesStart<'_>,
    decoder: quick_xml::encoding::Decoder,
    at: u64,
) -> Result<Vec<(String, String)>, XmlError> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| XmlError::Malformed {
            at,
            message: err.to_string(),
        })?;
        let value =
            a.decoded_and_normalized_value(quick_xml::XmlVersion::Implicit1_0, decoder)
                .map_err(|err| match err {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, name),
                    ) => XmlError::Entity(name),
                    other => XmlError::Malformed {
                        at,
                        message: other.to_string(),
                    },
                })?;
        out.push((local(a.key.local_name().as_ref()), value.into_owned()));
    }
    Ok(out)
}

/// A Directo datafield (`code` + `content`, maybe `param`) as named values.
fn datafield(attrs: &[(String, String)]) -> Option<Vec<(String, String)>> {
    let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let code = get("code")?;
    let content = get("content")?;
    let mut out = vec![(code.clone(), content)];
    if let Some(p) = get("param") {
        out.push((format!("{code}.param"), p));
    }
    Some(out)
}

/// Reads the items `<item>` under the root `<root>` of `xml`.
pub fn parse(xml: &[u8], root: &str, item: &str, limits: &Limits) -> Result<Document, XmlError> {
    if xml.len() > limits.max_bytes {
        return Err(XmlError::TooLarge(xml.len(), limits.max_bytes));
    }
    let mut reader = Reader::from_reader(xml);
    let mut doc = Document::default();
    let mut path: Vec<String> = Vec::new();
    let mut current: Option<Item> = None;
    let mut item_depth = 0usize;
    let mut text = String::new();
    let mut seen_root = false;
    let mut buf = Vec::new();
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError::Malformed {
                at,
                message: e.to_string(),
            })?;
        match event {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Start(_) | Event::Empty(_) => {
                let (e, empty) = match &event {
                    Event::Start(e) => (e, false),
                    Event::Empty(e) => (e, true),
                    _ => unreachable!("matched above"),
                };
                let name = local(e.local_name().as_ref());
                let attrs = attributes(e, reader.decoder(), at)?;
                if path.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep(limits.max_depth));
                }
                if path.is_empty() && name == root {
                    seen_root = true;
                }
                let depth = path.len();
                if current.is_none() && name == item && seen_root && depth == 1 {
                    if doc.items.len() >= limits.max_items {
                        return Err(XmlError::TooManyItems(limits.max_items));
                    }
                    let mut it = Item::default();
                    for (k, v) in attrs {
                        doc.fields.insert(k.clone());
                        it.push(k, v, limits)?;
                    }
                    item_depth = depth;
                    if empty {
                        doc.items.push(it);
                    } else {
                        current = Some(it);
                        path.push(name);
                    }
                    text.clear();
                    continue;
                }
                if let Some(it) = current.as_mut() {
                    let prefix = path[item_depth + 1..].join("/");
                    let field = |n: &str| {
                        if prefix.is_empty() {
                            n.to_owned()
                        } else {
                            format!("{prefix}/{n}")
                        }
                    };
                    if let Some(pairs) = datafield(&attrs) {
                        for (k, v) in pairs {
                            doc.fields.insert(k.clone());
                            it.push(k, v, limits)?;
                        }
                    } else {
                        for (k, v) in attrs {
                            let k = format!("{}@{k}", field(&name));
                            doc.fields.insert(k.clone());
                            it.push(k, v, limits)?;
                        }
                    }
                }
                if !empty {
                    path.push(name);
                }
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| XmlError::Malformed {
                at,
                message: e.to_string(),
            })?),
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                if let Some(c) = r.resolve_char_ref().map_err(|e| XmlError::Malformed {
                    at,
                    message: e.to_string(),
                })? {
                    text.push(c);
                } else {
                    let name = local(&r);
                    match name.as_str() {
                        "amp" => text.push('&'),
                        "lt" => text.push('<'),
                        "gt" => text.push('>'),
                        "quot" => text.push('"'),
                        "apos" => text.push('\''),
                        _ => return Err(XmlError::Entity(name)),
                    }
                }
            }
            Event::End(_) => {
                let Some(name) = path.pop() else { continue };
                if current.is_some() && path.len() == item_depth {
                    doc.items.extend(current.take());
                } else if let Some(it) = current.as_mut() {
                    if !text.trim().is_empty() {
                        let mut field = path[item_depth + 1..].join("/");
                        if !field.is_empty() {
                            field.push('/');
                        }
                        field.push_str(&name);
                        doc.fields.insert(field.clone());
                        it.push(field, std::mem::take(&mut text), limits)?;
                    }
                }
                text.clear();
            }
            Event::Eof => {
                if let Some(open) = path.last() {
                    return Err(XmlError::Malformed {
                        at,
                        message: format!("the document ends inside <{open}>"),
                    });
                }
                break;
            }
            _ => {}
        }
        buf.clear();
    }
    if !seen_root {
        return Err(XmlError::NoRoot(root.to_owned()));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Customers>
  <Customer code="C001" name="Tõnu Õun">
    <email>tonu@example.ee</email>
    <phone>+372 5123 4567</phone>
    <class>VIP</class>
    <address><city>Tartu &amp; Co</city></address>
    <datafields>
      <data code="OPTIN" content="yes" param="2024-03-01"/>
      <data code="SHOE" content="42"/>
    </datafields>
    <classes><class>B2B</class><class>Retail</class></classes>
  </Customer>
  <Customer code="C002" name="Mari" email="mari@example.ee"/>
</Customers>"#;

    #[test]
    fn feed_items_carry_attributes_children_paths_and_datafields() {
        let doc = parse(FEED.as_bytes(), "Customers", "Customer", &Limits::default()).unwrap();
        assert_eq!(doc.items.len(), 2);
        let c = &doc.items[0];
        assert_eq!(c.first("code"), Some("C001"));
        assert_eq!(c.first("name"), Some("Tõnu Õun"));
        assert_eq!(c.first("email"), Some("tonu@example.ee"));
        assert_eq!(c.first("address/city"), Some("Tartu & Co"));
        assert_eq!(c.first("OPTIN"), Some("yes"));
        assert_eq!(c.first("OPTIN.param"), Some("2024-03-01"));
        assert_eq!(c.fields["classes/class"], vec!["B2B", "Retail"]);
        assert_eq!(doc.items[1].first("email"), Some("mari@example.ee"));
        for f in [
            "code",
            "name",
            "email",
            "phone",
            "class",
            "address/city",
            "OPTIN",
            "OPTIN.param",
            "SHOE",
            "classes/class",
        ] {
            assert!(doc.fields.contains(f), "{f} in {:?}", doc.fields);
        }
    }

    #[test]
    fn feed_refuses_billion_laughs_and_external_entities_at_the_doctype() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Customers><Customer name="&lol2;"/></Customers>"#;
        assert_eq!(
            parse(
                laughs.as_bytes(),
                "Customers",
                "Customer",
                &Limits::default()
            ),
            Err(XmlError::Doctype)
        );
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]><Customers><Customer><name>&x;</name></Customer></Customers>"#;
        assert_eq!(
            parse(xxe.as_bytes(), "Customers", "Customer", &Limits::default()),
            Err(XmlError::Doctype)
        );
        let undeclared = r#"<Customers><Customer><name>&x;</name></Customer></Customers>"#;
        assert_eq!(
            parse(
                undeclared.as_bytes(),
                "Customers",
                "Customer",
                &Limits::default()
            ),
            Err(XmlError::Entity("x".into()))
        );
    }

    #[test]
    fn feed_refuses_documents_over_the_limits() {
        let small = Limits {
            max_bytes: 100,
            ..Limits::default()
        };
        assert!(matches!(
            parse(FEED.as_bytes(), "Customers", "Customer", &small),
            Err(XmlError::TooLarge(..))
        ));
        let deep = format!(
            "<Customers><Customer>{}x{}</Customer></Customers>",
            "<a>".repeat(40),
            "</a>".repeat(40)
        );
        assert_eq!(
            parse(deep.as_bytes(), "Customers", "Customer", &Limits::default()),
            Err(XmlError::TooDeep(32))
        );
        let many = Limits {
            max_items: 1,
            ..Limits::default()
        };
        assert_eq!(
            parse(FEED.as_bytes(), "Customers", "Customer", &many),
            Err(XmlError::TooManyItems(1))
        );
        assert!(matches!(
            parse(
                b"<Customers><Customer>",
                "Customers",
                "Customer",
                &Limits::default()
            ),
            Err(XmlError::Malformed { .. })
        ));
        assert_eq!(
            parse(b"<Clients/>", "Customers", "Customer", &Limits::default()),
            Err(XmlError::NoRoot("Customers".into()))
        );
    }
}

//! Message annotations the broker adds to a message it moves on its own (to a dead-letter or an
//! expiry address), saying where it came from and why, under the names ActiveMQ Artemis uses
//! (`x-opt-ORIG-ADDRESS`, `x-opt-ORIG-QUEUE`, `x-opt-ACTUAL-EXPIRY`) plus the broker's reason
//! (`x-opt-DEAD-LETTER-REASON`). The message's other sections are copied unread; annotations it
//! already had are kept, except those the broker writes anew.

use crate::amqp::{
    DecodeError,
    decode::{Decoder, Scalar},
    encode::Encoder,
};

/// The message-annotations section's descriptor.
const MESSAGE_ANNOTATIONS: u64 = 0x72;
/// Sections that come before the message annotations: header and delivery annotations.
const BEFORE: [u64; 2] = [0x70, 0x71];

/// One annotation's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Annotation {
    /// A string.
    Text(String),
    /// A timestamp, milliseconds since the Unix epoch.
    Timestamp(i64),
}

/// `message` (every section encoded) with `annotations` added to its message annotations.
pub fn annotate(message: &[u8], annotations: &[(&str, Annotation)]) -> Result<Vec<u8>, DecodeError> {
    let mut d = Decoder::new(message);
    let mut out = Vec::with_capacity(message.len() + 128);
    let mut existing: Vec<&[u8]> = Vec::new();
    let mut written = false;
    while !d.is_empty() {
        let start = d.position();
        let code = match d.descriptor()? {
            Some(crate::amqp::decode::Descriptor::Code(code)) => code,
            _ => {
                return Err(DecodeError::Invalid(
                    "a message section without a numeric descriptor".into(),
                ));
            }
        };
        if code == MESSAGE_ANNOTATIONS {
            let mut map = d.map()?;
            while let Some(key) = map.next_raw()? {
                let value = map.next_raw()?.unwrap_or_default();
                let ours = match Decoder::new(key).scalar()? {
                    Scalar::Symbol(name) => annotations.iter().any(|(ours, _)| *ours == name),
                    _ => false,
                };
                if !ours {
                    existing.push(key);
                    existing.push(value);
                }
            }
            continue;
        }
        d.skip()?;
        if !written && !BEFORE.contains(&code) {
            write_annotations(&mut out, &existing, annotations);
            written = true;
        }
        out.extend_from_slice(message.get(start..d.position()).unwrap_or_default());
    }
    if !written {
        write_annotations(&mut out, &existing, annotations);
    }
    Ok(out)
}

fn write_annotations(out: &mut Vec<u8>, existing: &[&[u8]], annotations: &[(&str, Annotation)]) {
    let mut e = Encoder::new(out);
    e.descriptor(MESSAGE_ANNOTATIONS);
    e.map(|map| {
        for pair in existing.chunks_exact(2) {
            if let [key, value] = pair {
                map.entry(|e| e.raw(key), |e| e.raw(value));
            }
        }
        for (key, value) in annotations {
            map.entry(
                |e| e.symbol(key),
                |e| match value {
                    Annotation::Text(text) => e.string(text),
                    Annotation::Timestamp(at) => e.timestamp(*at),
                },
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::sections;

    fn message(annotations: Option<&[(&str, &str)]>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out);
        e.descriptor(0x70);
        let mut header = e.list();
        header.flag(true);
        header.end();
        if let Some(annotations) = annotations {
            e.descriptor(MESSAGE_ANNOTATIONS);
            e.symbol_string_map(annotations);
        }
        e.descriptor(0x77);
        e.string("body");
        out
    }

    fn annotations_of(bytes: &[u8]) -> Vec<(String, String)> {
        let mut d = Decoder::new(bytes);
        let mut found = Vec::new();
        while !d.is_empty() {
            let is_annotations = matches!(
                d.descriptor().unwrap(),
                Some(crate::amqp::decode::Descriptor::Code(MESSAGE_ANNOTATIONS))
            );
            if !is_annotations {
                d.skip().unwrap();
                continue;
            }
            let mut map = d.map().unwrap();
            while map.remaining() > 0 {
                let key = map.next(|d| d.symbol().map(str::to_owned)).unwrap().unwrap();
                let value = map
                    .next(|d| d.scalar().map(|v| format!("{v:?}")))
                    .unwrap()
                    .unwrap();
                found.push((key, value));
            }
        }
        found
    }

    #[test]
    fn annotations_go_after_the_header_and_the_rest_is_kept() {
        let original = message(None);
        let annotated = annotate(
            &original,
            &[("x-opt-ORIG-ADDRESS", Annotation::Text("orders".into()))],
        )
        .unwrap();
        let parsed = sections::parse(&annotated).unwrap();
        assert!(parsed.header.durable, "the header is kept");
        assert_eq!(
            annotations_of(&annotated),
            [("x-opt-ORIG-ADDRESS".to_owned(), "Str(\"orders\")".to_owned())]
        );
        assert!(annotated.ends_with(b"body"));
    }

    #[test]
    fn existing_annotations_are_kept_and_ours_replaced() {
        let original = message(Some(&[("x-opt-app", "kept"), ("x-opt-ORIG-ADDRESS", "stale")]));
        let annotated = annotate(
            &original,
            &[
                ("x-opt-ORIG-ADDRESS", Annotation::Text("orders".into())),
                ("x-opt-ACTUAL-EXPIRY", Annotation::Timestamp(42)),
            ],
        )
        .unwrap();
        assert_eq!(
            annotations_of(&annotated),
            [
                ("x-opt-app".to_owned(), "Str(\"kept\")".to_owned()),
                ("x-opt-ORIG-ADDRESS".to_owned(), "Str(\"orders\")".to_owned()),
                ("x-opt-ACTUAL-EXPIRY".to_owned(), "Timestamp(42)".to_owned()),
            ]
        );
        sections::parse(&annotated).unwrap();
    }
}

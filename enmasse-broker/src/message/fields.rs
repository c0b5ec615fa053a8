//! What a selector sees of a message: the JMS header names mapped onto the AMQP header and
//! properties as ActiveMQ Artemis maps them for AMQP messages (its `AMQPMessage` and
//! `SelectorTranslator`), and every other name looked up among the application properties.
//!
//! | name | reads | as |
//! |---|---|---|
//! | `JMSMessageID` | `message-id` | a string, `ID:` in front unless it starts so |
//! | `JMSCorrelationID` | `correlation-id` | a string id as is; `ID:AMQP_UUID:`, `ID:AMQP_ULONG:` before others |
//! | `JMSPriority` | header `priority` | a number, 4 when absent |
//! | `JMSDeliveryMode` | header `durable` | `'PERSISTENT'` or `'NON_PERSISTENT'` |
//! | `JMSTimestamp` | `creation-time` | milliseconds, 0 when absent |
//! | `JMSExpiration` | when the broker expires it | milliseconds, 0 when never |
//! | `JMSType` | `subject` | a string |
//! | `JMSXUserID` | `user-id` | its bytes as UTF-8 |
//! | `JMSXGroupID`, `JMSXGroupSeq` | `group-id`, `group-sequence` | a string, a number |
//! | `JMSXDeliveryCount` | header `delivery-count` | deliveries so far, this one included (from 1) |
//!
//! An application property that is not a boolean, number, string, symbol or timestamp (a binary,
//! a UUID, a list) is absent to a selector, and so is one past the first 1,024 of a message. A
//! message whose properties cannot be read has none.

use std::borrow::Cow;

use crate::{
    amqp::decode::Scalar,
    message::Message,
    selector::{Fields, Value},
};

impl Fields for Message {
    fn field(&self, identifier: &str) -> Option<Value<'_>> {
        let properties = || self.properties().ok().flatten();
        let text = |value: &str| Some(Value::Str(Cow::Owned(value.to_owned())));
        match identifier {
            "JMSMessageID" => properties()?.message_id.and_then(message_id),
            "JMSCorrelationID" => properties()?.correlation_id.and_then(correlation_id),
            "JMSPriority" => Some(Value::Long(i64::from(self.header.priority.unwrap_or(4).min(9)))),
            "JMSDeliveryMode" => Some(Value::Str(Cow::Borrowed(match self.durable {
                true => "PERSISTENT",
                false => "NON_PERSISTENT",
            }))),
            "JMSTimestamp" => Some(Value::Long(
                properties().and_then(|p| p.creation_time).unwrap_or(0),
            )),
            "JMSExpiration" => Some(Value::Long(
                self.expires_at()
                    .and_then(|at| i64::try_from(at).ok())
                    .unwrap_or(0),
            )),
            "JMSType" => text(properties()?.subject?),
            "JMSXUserID" => text(std::str::from_utf8(properties()?.user_id?).ok()?),
            "JMSXGroupID" => text(properties()?.group_id?),
            "JMSXGroupSeq" => Some(Value::Long(i64::from(properties()?.group_sequence?))),
            "JMSXDeliveryCount" => Some(Value::Long(i64::from(self.delivery_count) + 1)),
            name => scalar(self.application_property(name).ok()??),
        }
    }
}

fn scalar(value: Scalar<'_>) -> Option<Value<'_>> {
    Some(match value {
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Long(n) | Scalar::Timestamp(n) => Value::Long(n),
        Scalar::Ulong(n) => Value::Double(n as f64),
        Scalar::Double(x) => Value::Double(x),
        Scalar::Str(s) | Scalar::Symbol(s) => Value::Str(Cow::Borrowed(s)),
        Scalar::Null | Scalar::Binary(_) | Scalar::Uuid(_) | Scalar::Other => return None,
    })
}

fn message_id(id: Scalar<'_>) -> Option<Value<'static>> {
    let text = match id {
        Scalar::Str(s) if s.starts_with("ID:") => s.to_owned(),
        Scalar::Str(s) => format!("ID:{s}"),
        Scalar::Ulong(n) => format!("ID:{n}"),
        Scalar::Long(n) => format!("ID:{n}"),
        Scalar::Uuid(bytes) => format!("ID:{}", uuid(&bytes)),
        _ => return None,
    };
    Some(Value::Str(Cow::Owned(text)))
}

fn correlation_id(id: Scalar<'_>) -> Option<Value<'_>> {
    Some(Value::Str(match id {
        Scalar::Str(s) => Cow::Borrowed(s),
        Scalar::Ulong(n) => Cow::Owned(format!("ID:AMQP_ULONG:{n}")),
        Scalar::Long(n) => Cow::Owned(format!("ID:AMQP_ULONG:{n}")),
        Scalar::Uuid(bytes) => Cow::Owned(format!("ID:AMQP_UUID:{}", uuid(&bytes))),
        _ => return None,
    }))
}

/// A UUID in its usual form, `8-4-4-4-12` lowercase hex digits.
fn uuid(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let part = |range: std::ops::Range<usize>| hex.get(range).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

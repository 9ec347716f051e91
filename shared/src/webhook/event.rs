//! The events a webhook delivers, and their parsing.

use serde_json::{Map, Value};

/// An event that a webhook delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `droplet.created`
    DropletCreated { droplet_id: u64 },
    /// `droplet.updated`
    DropletUpdated { droplet_id: u64 },
    /// `firewall.changed`
    FirewallChanged { firewall_id: String },
    /// `tag.changed`
    TagChanged { tag: String },
    /// `vpc.changed`
    VpcChanged { vpc_id: String },
    /// `action`: a DigitalOcean action, as `/v2/actions` returns it.
    Action {
        /// `action.id`
        action_id: Option<u64>,
        /// `action.resource_type`, e.g. `droplet`.
        resource_type: Option<String>,
        /// `action.resource_id`
        resource_id: Option<u64>,
        /// `action.type`, e.g. `create` or `power_off`.
        kind: String,
    },
}

impl Event {
    /// The event's `type` as it appears in the body.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::DropletCreated { .. } => "droplet.created",
            Event::DropletUpdated { .. } => "droplet.updated",
            Event::FirewallChanged { .. } => "firewall.changed",
            Event::TagChanged { .. } => "tag.changed",
            Event::VpcChanged { .. } => "vpc.changed",
            Event::Action { .. } => "action",
        }
    }
}

/// Why an event body was refused. Messages name the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The body does not parse as JSON.
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("body must be a JSON object")]
    NotObject,
    /// A required field is absent or null.
    #[error("{field} is missing")]
    Missing { field: &'static str },
    /// A field has the wrong type or value.
    #[error("{field} must be {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
    /// `type` names no event this parser knows. The name is quoted and
    /// escaped, and cut to 64 characters.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
}

const UNSIGNED_ID: &str = "a non-negative integer or a string of digits";
const NON_EMPTY_STRING: &str = "a non-empty string";

/// Parses an event body: `{"type": ..., "data": {...}}`. Unknown fields
/// are ignored; a `null` field counts as missing. IDs given as integers
/// may also be strings of digits.
pub fn parse_event(body: &[u8]) -> Result<Event, EventError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    let root = root.as_object().ok_or(EventError::NotObject)?;

    let event_type = match present(root, "type") {
        None => return Err(EventError::Missing { field: "type" }),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(EventError::Invalid {
                field: "type",
                expected: "a string",
            })
        }
    };
    // Check the type before `data`, so an unknown type is reported as such.
    const KNOWN: [&str; 6] = [
        "droplet.created",
        "droplet.updated",
        "firewall.changed",
        "tag.changed",
        "vpc.changed",
        "action",
    ];
    if !KNOWN.contains(&event_type) {
        return Err(EventError::UnknownType(
            event_type.chars().take(64).collect(),
        ));
    }

    let data = match present(root, "data") {
        None => return Err(EventError::Missing { field: "data" }),
        Some(Value::Object(data)) => data,
        Some(_) => {
            return Err(EventError::Invalid {
                field: "data",
                expected: "an object",
            })
        }
    };

    event_of(event_type, data)
}

/// The event of a known `type`, from its `data`.
fn event_of(event_type: &str, data: &Map<String, Value>) -> Result<Event, EventError> {
    Ok(match event_type {
        "droplet.created" => Event::DropletCreated {
            droplet_id: required_id(data, "droplet_id", "data.droplet_id")?,
        },
        "droplet.updated" => Event::DropletUpdated {
            droplet_id: required_id(data, "droplet_id", "data.droplet_id")?,
        },
        "firewall.changed" => Event::FirewallChanged {
            firewall_id: required_string(data, "firewall_id", "data.firewall_id")?,
        },
        "tag.changed" => Event::TagChanged {
            tag: required_string(data, "tag", "data.tag")?,
        },
        "vpc.changed" => Event::VpcChanged {
            vpc_id: required_string(data, "vpc_id", "data.vpc_id")?,
        },
        _ => parse_action(data)?,
    })
}

fn parse_action(data: &Map<String, Value>) -> Result<Event, EventError> {
    let action = match present(data, "action") {
        None => {
            return Err(EventError::Missing {
                field: "data.action",
            })
        }
        Some(Value::Object(action)) => action,
        Some(_) => {
            return Err(EventError::Invalid {
                field: "data.action",
                expected: "an object",
            })
        }
    };
    let resource_type = match present(action, "resource_type") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(EventError::Invalid {
                field: "data.action.resource_type",
                expected: "a string",
            })
        }
    };
    Ok(Event::Action {
        action_id: optional_id(action, "id", "data.action.id")?,
        resource_type,
        resource_id: optional_id(action, "resource_id", "data.action.resource_id")?,
        kind: required_string(action, "type", "data.action.type")?,
    })
}

/// The value of `key`, or `None` if it is absent or `null`.
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn required_id(
    object: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<u64, EventError> {
    optional_id(object, key, field)?.ok_or(EventError::Missing { field })
}

fn optional_id(
    object: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<u64>, EventError> {
    let invalid = EventError::Invalid {
        field,
        expected: UNSIGNED_ID,
    };
    match present(object, key) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(invalid),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|_| invalid)
        }
        Some(_) => Err(invalid),
    }
}

fn required_string(
    object: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<String, EventError> {
    match present(object, key) {
        None => Err(EventError::Missing { field }),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(_) => Err(EventError::Invalid {
            field,
            expected: NON_EMPTY_STRING,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- events -----------------------------------------------------------

    fn parse(body: &str) -> Result<Event, EventError> {
        parse_event(body.as_bytes())
    }

    fn parse_err(body: &str) -> String {
        match parse(body) {
            Ok(event) => panic!("{body} parsed as {event:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn droplet_events() {
        assert_eq!(
            parse(r#"{"type":"droplet.created","data":{"droplet_id":3164444}}"#),
            Ok(Event::DropletCreated {
                droplet_id: 3164444
            })
        );
        assert_eq!(
            parse(r#"{"type":"droplet.updated","data":{"droplet_id":"3164444"}}"#),
            Ok(Event::DropletUpdated {
                droplet_id: 3164444
            })
        );
        assert_eq!(
            parse(r#"{"type":"droplet.created","data":{"droplet_id":18446744073709551615}}"#),
            Ok(Event::DropletCreated {
                droplet_id: u64::MAX
            })
        );
    }

    #[test]
    fn string_events() {
        assert_eq!(
            parse(
                r#"{"type":"firewall.changed","data":{"firewall_id":"bb4b2611-3d72-467b-8602-280330ecd65c"}}"#
            ),
            Ok(Event::FirewallChanged {
                firewall_id: "bb4b2611-3d72-467b-8602-280330ecd65c".to_owned()
            })
        );
        assert_eq!(
            parse(r#"{"type":"tag.changed","data":{"tag":"prod"}}"#),
            Ok(Event::TagChanged {
                tag: "prod".to_owned()
            })
        );
        assert_eq!(
            parse(
                r#"{"type":"vpc.changed","data":{"vpc_id":"5a4981aa-9653-4bd1-bef5-d6bff52042e4"}}"#
            ),
            Ok(Event::VpcChanged {
                vpc_id: "5a4981aa-9653-4bd1-bef5-d6bff52042e4".to_owned()
            })
        );
    }

    #[test]
    fn action_event_as_digitalocean_returns_it() {
        let body = r#"{
          "type": "action",
          "data": {
            "action": {
              "id": 36804636,
              "status": "completed",
              "type": "create",
              "started_at": "2020-11-14T16:29:21Z",
              "completed_at": "2020-11-14T16:30:06Z",
              "resource_id": 3164444,
              "resource_type": "droplet",
              "region": {"name": "New York 3", "slug": "nyc3"},
              "region_slug": "nyc3"
            }
          }
        }"#;
        let event = parse(body).expect("parses");
        assert_eq!(
            event,
            Event::Action {
                action_id: Some(36804636),
                resource_type: Some("droplet".to_owned()),
                resource_id: Some(3164444),
                kind: "create".to_owned(),
            }
        );
        assert_eq!(event.type_name(), "action");
    }

    #[test]
    fn action_event_optional_fields() {
        assert_eq!(
            parse(
                r#"{"type":"action","data":{"action":{"type":"power_off","id":null,"resource_id":"42"}}}"#
            ),
            Ok(Event::Action {
                action_id: None,
                resource_type: None,
                resource_id: Some(42),
                kind: "power_off".to_owned(),
            })
        );
    }

    #[test]
    fn extra_fields_are_ignored() {
        assert_eq!(
            parse(
                r#"{"type":"tag.changed","id":"evt_1","timestamp":"2024-01-01T00:00:00Z",
                    "data":{"tag":"web","droplet_id":"not checked","extra":[1,2,3]}}"#
            ),
            Ok(Event::TagChanged {
                tag: "web".to_owned()
            })
        );
    }

    #[test]
    fn type_names_round_trip() {
        for body in [
            r#"{"type":"droplet.created","data":{"droplet_id":1}}"#,
            r#"{"type":"droplet.updated","data":{"droplet_id":1}}"#,
            r#"{"type":"firewall.changed","data":{"firewall_id":"f"}}"#,
            r#"{"type":"tag.changed","data":{"tag":"t"}}"#,
            r#"{"type":"vpc.changed","data":{"vpc_id":"v"}}"#,
            r#"{"type":"action","data":{"action":{"type":"create"}}}"#,
        ] {
            let event = parse(body).expect("parses");
            let value: Value = serde_json::from_str(body).expect("json");
            assert_eq!(Some(event.type_name()), value["type"].as_str());
        }
    }

    #[test]
    // A data table of bodies and the words their errors must hold.
    #[allow(clippy::too_many_lines)]
    fn malformed_bodies_name_the_problem() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"type":"droplet.created","data":{}}"#,
                "data.droplet_id is missing",
            ),
            (
                r#"{"type":"droplet.updated","data":{"droplet_id":null}}"#,
                "data.droplet_id is missing",
            ),
            (r#"{"type":"foo","data":{}}"#, r#"unknown event type "foo""#),
            (
                r#"{"type":"Droplet.Created","data":{"droplet_id":1}}"#,
                r#"unknown event type "Droplet.Created""#,
            ),
            (
                r#"{"type":"tag.changed","data":{"tag":""}}"#,
                "data.tag must be a non-empty string",
            ),
            (
                r#"{"type":"tag.changed","data":{"tag":"  "}}"#,
                "data.tag must be a non-empty string",
            ),
            (
                r#"{"type":"tag.changed","data":{"tag":7}}"#,
                "data.tag must be a non-empty string",
            ),
            (r#"{"type":"tag.changed","data":{}}"#, "data.tag is missing"),
            (
                r#"{"type":"firewall.changed","data":{"firewall_id":["x"]}}"#,
                "data.firewall_id must be a non-empty string",
            ),
            (
                r#"{"type":"vpc.changed","data":{"vpc":"x"}}"#,
                "data.vpc_id is missing",
            ),
            (
                r#"{"type":"droplet.created","data":{"droplet_id":-1}}"#,
                "data.droplet_id must be a non-negative integer or a string of digits",
            ),
            (
                r#"{"type":"droplet.created","data":{"droplet_id":1.5}}"#,
                "data.droplet_id must be a non-negative integer or a string of digits",
            ),
            (
                r#"{"type":"droplet.created","data":{"droplet_id":"12a"}}"#,
                "data.droplet_id must be a non-negative integer or a string of digits",
            ),
            (
                r#"{"type":"droplet.created","data":{"droplet_id":""}}"#,
                "data.droplet_id must be a non-negative integer or a string of digits",
            ),
            (
                r#"{"type":"droplet.created","data":{"droplet_id":"18446744073709551616"}}"#,
                "data.droplet_id must be a non-negative integer or a string of digits",
            ),
            (
                r#"{"type":"droplet.created","data":{"droplet_id":true}}"#,
                "data.droplet_id must be a non-negative integer or a string of digits",
            ),
            (r#"{"type":"droplet.created"}"#, "data is missing"),
            (
                r#"{"type":"droplet.created","data":[1]}"#,
                "data must be an object",
            ),
            (r#"{"data":{"droplet_id":1}}"#, "type is missing"),
            (r#"{"type":5,"data":{}}"#, "type must be a string"),
            (r#"[1,2]"#, "body must be a JSON object"),
            (r#""droplet.created""#, "body must be a JSON object"),
            (r#"{"type":"action","data":{}}"#, "data.action is missing"),
            (
                r#"{"type":"action","data":{"action":"create"}}"#,
                "data.action must be an object",
            ),
            (
                r#"{"type":"action","data":{"action":{"id":1}}}"#,
                "data.action.type is missing",
            ),
            (
                r#"{"type":"action","data":{"action":{"type":"create","id":"x"}}}"#,
                "data.action.id must be a non-negative integer or a string of digits",
            ),
            (
                r#"{"type":"action","data":{"action":{"type":"create","resource_id":-5}}}"#,
                "data.action.resource_id must be a non-negative integer or a string of digits",
            ),
            (
                r#"{"type":"action","data":{"action":{"type":"create","resource_type":1}}}"#,
                "data.action.resource_type must be a string",
            ),
        ];
        for (body, message) in cases {
            assert_eq!(parse_err(body), *message, "body {body}");
        }
    }

    #[test]
    fn non_json_bodies() {
        for body in [
            "",
            "{",
            "not json",
            "{\"type\":\"tag.changed\",}",
            "\u{feff}{}",
        ] {
            let message = parse_err(body);
            assert!(
                message.starts_with("body is not JSON: "),
                "{body:?}: {message}"
            );
        }
        let message = parse_err("{\"type\": tag}");
        assert!(message.contains("line 1 column"), "{message}");
        let err = parse_event(&[0xff, 0xfe]).expect_err("not JSON");
        assert!(matches!(err, EventError::NotJson(_)));
    }

    #[test]
    fn unknown_type_is_escaped_and_cut() {
        let message = parse_err("{\"type\":\"a\\u001b[31mred\\nx\",\"data\":{}}");
        assert_eq!(message, r#"unknown event type "a\u{1b}[31mred\nx""#);
        let long = "x".repeat(1000);
        let message = parse_err(&format!(r#"{{"type":"{long}","data":{{}}}}"#));
        assert_eq!(
            message,
            format!("unknown event type \"{}\"", "x".repeat(64))
        );
    }
}

//! Lambda event filtering for stream records: the subset of the filter
//! pattern syntax the chat uses (literal values and `exists`), over the
//! record as Lambda would see it in JSON. The patterns are the same file
//! infra/serverless.yml deploys: infra/stream-filter.json.

use serde_json::Value;

/// The event-source mapping's filter patterns, shared with infra/.
pub const STREAM_FILTER: &str = include_str!("../../infra/stream-filter.json");

/// Filter patterns: a record passes when any pattern matches it.
#[derive(Clone, Debug)]
pub struct Filter {
    patterns: Vec<Value>,
}

impl Filter {
    /// Parses a JSON array of patterns.
    pub fn parse(json: &str) -> Result<Self, String> {
        match serde_json::from_str(json) {
            Ok(Value::Array(patterns)) if patterns.iter().all(Value::is_object) => {
                Ok(Self { patterns })
            }
            Ok(_) => Err("filter patterns must be a JSON array of objects".into()),
            Err(error) => Err(format!("filter patterns are not JSON: {error}")),
        }
    }

    /// The chat's own patterns.
    pub fn stream_default() -> Result<Self, String> {
        Self::parse(STREAM_FILTER)
    }

    pub fn matches(&self, record: &Value) -> bool {
        self.patterns
            .iter()
            .any(|pattern| object_matches(pattern, Some(record)))
    }
}

fn object_matches(pattern: &Value, value: Option<&Value>) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, sub)| {
            let child = value.and_then(|value| value.get(key));
            match sub {
                Value::Array(options) => leaf_matches(options, child),
                Value::Object(_) => object_matches(sub, child),
                _ => false,
            }
        }),
        _ => false,
    }
}

/// A leaf matches when any option does: a literal equal to the value, or
/// `{"exists": true|false}`.
fn leaf_matches(options: &[Value], value: Option<&Value>) -> bool {
    options.iter().any(|option| match option {
        Value::Object(rule) => match rule.get("exists") {
            Some(Value::Bool(exists)) => *exists == value.is_some_and(|v| !v.is_null()),
            _ => false,
        },
        literal => value == Some(literal),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter() -> Filter {
        Filter::stream_default().expect("the shipped filter parses")
    }

    #[test]
    fn inserts_pass() {
        assert!(filter().matches(&json!({"eventName": "INSERT", "dynamodb": {}})));
    }

    #[test]
    fn only_modifies_that_close_an_unmeasured_session_pass() {
        let closing = json!({"eventName": "MODIFY", "dynamodb": {"NewImage": {
            "connection_id": {"S": "a"}, "disconnected_at": {"S": "t"}}}});
        let own_write = json!({"eventName": "MODIFY", "dynamodb": {"NewImage": {
            "disconnected_at": {"S": "t"}, "duration_seconds": {"N": "1.5"}}}});
        let other =
            json!({"eventName": "MODIFY", "dynamodb": {"NewImage": {"connection_id": {"S": "a"}}}});
        assert!(filter().matches(&closing));
        assert!(!filter().matches(&own_write));
        assert!(!filter().matches(&other));
    }

    #[test]
    fn removes_and_unknown_events_do_not_pass() {
        assert!(!filter().matches(&json!({"eventName": "REMOVE"})));
        assert!(!filter().matches(&json!({"eventName": "UNKNOWN_TO_SDK_VERSION"})));
    }

    #[test]
    fn rejects_malformed_patterns() {
        assert!(Filter::parse("{}").is_err());
        assert!(Filter::parse("[1]").is_err());
        assert!(Filter::parse("nope").is_err());
    }
}

//! Unknown fields in a JSON body are errors, as unknown keys are in the TOML config and as
//! `docs/openapi.json` says (`additionalProperties: false`): `"upper_treshold": 100` or
//! `"optoins": {...}` must not be accepted with the field silently dropped.
//!
//! The model types (in `rvs-core`) are lenient by serde's default, so the check is made here,
//! generically: the body is parsed as it was given and compared with the value it deserialized
//! into, serialized again. A key of the body that the serialized value lacks is one serde
//! ignored, except the few fields a serializer leaves out at their default
//! ([`OMITTED_AT_DEFAULT`]). Maps keyed by a real's address match keys by their canonical form
//! (`[2001:db8:0::7]:80` is `[2001:db8::7]:80`); list items are matched by their `key`, else
//! by position. Linear in the size of the body.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Fields the model serializes only when they differ from their default, so their absence
/// from the serialized value does not make them unknown (serde has checked their contents).
const OMITTED_AT_DEFAULT: [&str; 2] = ["quorum_gated", "tcp_states"];

/// The unknown fields of `given` (the body as sent) against `known` (what it deserialized
/// into, serialized again), each as "unknown field `name` in `path` (expected ...)".
pub fn unknown_fields(given: &Value, known: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(given, known, "", &mut out);
    out
}

fn walk(given: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (given, known) {
        (Value::Object(g), Value::Object(k)) => objects(g, k, path, out),
        (Value::Array(g), Value::Array(k)) => arrays(g, k, path, out),
        _ => {}
    }
}

fn objects(
    given: &Map<String, Value>,
    known: &Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    for (name, value) in given {
        match lookup(known, name) {
            Some(k) if path.is_empty() => walk(value, k, name, out),
            Some(k) => walk(value, k, &format!("{path}.{name}"), out),
            None if OMITTED_AT_DEFAULT.contains(&name.as_str()) => {}
            None => {
                let expected: Vec<String> = known.keys().map(|k| format!("`{k}`")).collect();
                let place = match path {
                    "" => String::new(),
                    p => format!(" in `{p}`"),
                };
                out.push(format!(
                    "unknown field `{name}`{place}, expected one of {}",
                    expected.join(", ")
                ));
            }
        }
    }
}

/// `name` in `known`, or its canonical form if it is a socket address (a map keyed by reals).
fn lookup<'a>(known: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    known.get(name).or_else(|| {
        let canonical = name.parse::<SocketAddr>().ok()?.to_string();
        known.get(&canonical)
    })
}

/// List items are matched by their `key` (services in `PUT /v1/state`, listed in any order,
/// while the server lists them in its own), else by position.
fn arrays(given: &[Value], known: &[Value], path: &str, out: &mut Vec<String>) {
    let by_key: HashMap<String, &Value> = known
        .iter()
        .filter_map(|k| Some((identity(k.get("key")?), k)))
        .collect();
    for (i, g) in given.iter().enumerate() {
        let k = match g.get("key") {
            Some(key) => by_key.get(&identity(key)).copied(),
            None => known.get(i),
        };
        if let Some(k) = k {
            walk(g, k, path, out);
        }
    }
}

/// A value as text with every socket address in its canonical form.
fn identity(v: &Value) -> String {
    fn canonical(v: &Value) -> Value {
        match v {
            Value::String(s) => match s.parse::<SocketAddr>() {
                Ok(a) => Value::String(a.to_string()),
                Err(_) => v.clone(),
            },
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
            _ => v.clone(),
        }
    }
    canonical(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_nested_and_listed_fields_are_found() {
        let known = json!({"a": 1, "o": {"x": 1}, "l": [{"v": 2}, {"v": 3}]});
        assert!(unknown_fields(&known, &known).is_empty());
        let given = json!({"a": 1, "b": 2, "o": {"x": 1, "y": 0}, "l": [{"v": 2}, {"w": 1}]});
        let found = unknown_fields(&given, &known);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0], "unknown field `b`, expected one of `a`, `l`, `o`");
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("unknown field `w` in `l`"))
        );
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("unknown field `y` in `o`, expected one of `x`"))
        );
    }

    #[test]
    fn defaults_left_out_and_address_keys_are_not_unknown() {
        let known = json!({"reals": {"[2001:db8::7]:80": {"weight": 1}}});
        let given = json!({"reals": {"[2001:db8:0::7]:80": {"weight": 1, "quorum_gated": false}},
                           "tcp_states": {}});
        assert!(unknown_fields(&given, &known).is_empty());
        let given = json!({"reals": {"[2001:db8:0::7]:80": {"wieght": 1}}});
        assert_eq!(unknown_fields(&given, &known).len(), 1);
    }

    #[test]
    fn list_items_in_another_order_match_their_own() {
        let key = |a: &str| json!({"kind": "addr", "addr": a});
        let known = json!([{"key": key("[::1]:1"), "a": 0}, {"key": key("[::2]:2"), "b": 0}]);
        let given = json!([{"key": key("[0::2]:2"), "b": 0}, {"key": key("[::1]:1"), "a": 0}]);
        assert!(unknown_fields(&given, &known).is_empty());
        let given = json!([{"key": key("[::2]:2"), "a": 0}]);
        assert_eq!(unknown_fields(&given, &known).len(), 1);
    }
}

//! Keys given twice in one JSON object are errors, as duplicate keys are in the TOML config.
//! serde refuses a struct's field twice, but a map keeps the last value: a real listed twice
//! in `PUT /v1/state` — also as `[2001:db8::7]:80` and `[2001:db8:0::7]:80`, one address —
//! lost one definition without a word. The body is scanned once more, streaming, no tree.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;

/// Every key given twice in an object of `body` (a valid JSON text), as "`key` given twice
/// (in `path`)"; a key that is a socket address counts in its canonical form.
pub fn duplicate_keys(body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    Scan {
        path: "",
        out: &mut out,
    }
    .deserialize(&mut de)?;
    Ok(out)
}

/// One value at `path`; what it finds goes to `out`.
struct Scan<'a> {
    path: &'a str,
    out: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Scan<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let canonical = key
                .parse::<SocketAddr>()
                .map_or_else(|_| key.clone(), |a| a.to_string());
            if !seen.insert(canonical) {
                let place = match self.path {
                    "" => String::new(),
                    p => format!(" in `{p}`"),
                };
                self.out.push(format!("`{key}` given twice{place}"));
            }
            let path = match self.path {
                "" => key,
                p => format!("{p}.{key}"),
            };
            map.next_value_seed(Scan {
                path: &path,
                out: self.out,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Scan {
                path: self.path,
                out: self.out,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_given_twice_are_found_with_their_place() {
        let body = br#"{"a": 1, "o": {"x": [{"k": 1, "k": 2}], "y": 0}, "a": 2,
                        "reals": {"[2001:db8::7]:80": {}, "[2001:db8:0::7]:80": {}}}"#;
        let d = duplicate_keys(body).unwrap();
        assert_eq!(
            d,
            [
                "`k` given twice in `o.x`",
                "`a` given twice",
                "`[2001:db8:0::7]:80` given twice in `reals`"
            ]
        );
        assert!(
            duplicate_keys(br#"{"a": {"b": 1}, "b": [1, "x", null, 2.5, true]}"#)
                .unwrap()
                .is_empty()
        );
    }
}

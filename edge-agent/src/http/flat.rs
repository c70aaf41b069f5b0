//! The `data` of an OIP JSON input, flattened while it is parsed.
//!
//! Parsing `data` into a `serde_json::Value` first costs 32 bytes per element plus the array
//! growth, and flattening nested arrays copies that again: a 16 MiB body of `[1,1,...]` held
//! over half a gigabyte. [`FlatData`] keeps each element in at most 16 bytes (a number) or a
//! `String`, in one vector per kind, so what a request can make the agent hold stays a small,
//! documented multiple of its body ([`JSON_MEMORY_FACTOR`]).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// How deeply `data` arrays may nest.
pub const MAX_DEPTH: usize = 32;

/// An upper bound on the bytes an infer request's JSON can make the agent hold while it is
/// decoded, per byte of JSON: the body itself (1), the flattened elements (16 bytes each, at
/// most one per 2 bytes of JSON, and a vector may hold twice its length while it grows: 16), and
/// the typed tensors built from them (at most 8 bytes per element: 4), rounded up.
pub const JSON_MEMORY_FACTOR: usize = 24;

/// One JSON number, as JSON wrote it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// A non-negative integer.
    U(u64),
    /// A negative integer.
    I(i64),
    /// Anything with a fraction or exponent.
    F(f64),
}

impl Num {
    /// The value as an `i64`, if it is an integer that fits.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Num::U(u) => i64::try_from(u).ok(),
            Num::I(i) => Some(i),
            Num::F(_) => None,
        }
    }

    /// The value as a `u64`, if it is a non-negative integer.
    pub fn as_u64(self) -> Option<u64> {
        match self {
            Num::U(u) => Some(u),
            _ => None,
        }
    }

    /// The value as an `f64` (integers convert, possibly rounding).
    pub fn as_f64(self) -> f64 {
        match self {
            Num::U(u) => u as f64,
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::U(u) => write!(f, "{u}"),
            Num::I(i) => write!(f, "{i}"),
            Num::F(x) => write!(f, "{x}"),
        }
    }
}

/// Flattened `data`: every leaf of the (possibly nested) arrays, in row-major order, all of
/// one kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum FlatData {
    /// `[]` or only empty arrays.
    #[default]
    Empty,
    /// Numbers.
    Numbers(Vec<Num>),
    /// Booleans.
    Bools(Vec<bool>),
    /// Strings.
    Strings(Vec<String>),
}

impl FlatData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            FlatData::Empty => 0,
            FlatData::Numbers(v) => v.len(),
            FlatData::Bools(v) => v.len(),
            FlatData::Strings(v) => v.len(),
        }
    }

    /// The kind of element held, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            FlatData::Empty => "nothing",
            FlatData::Numbers(_) => "numbers",
            FlatData::Bools(_) => "booleans",
            FlatData::Strings(_) => "strings",
        }
    }

    fn mixed<E: de::Error>(&self, other: &str) -> E {
        E::custom(format!(
            "data mixes {} and {other}; a tensor's elements all have one type",
            self.kind()
        ))
    }

    fn push_num<E: de::Error>(&mut self, n: Num) -> Result<(), E> {
        match self {
            FlatData::Empty => *self = FlatData::Numbers(vec![n]),
            FlatData::Numbers(v) => v.push(n),
            _ => return Err(self.mixed("numbers")),
        }
        Ok(())
    }

    fn push_bool<E: de::Error>(&mut self, b: bool) -> Result<(), E> {
        match self {
            FlatData::Empty => *self = FlatData::Bools(vec![b]),
            FlatData::Bools(v) => v.push(b),
            _ => return Err(self.mixed("booleans")),
        }
        Ok(())
    }

    fn push_str<E: de::Error>(&mut self, s: String) -> Result<(), E> {
        match self {
            FlatData::Empty => *self = FlatData::Strings(vec![s]),
            FlatData::Strings(v) => v.push(s),
            _ => return Err(self.mixed("strings")),
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut flat = FlatData::Empty;
        Leaf {
            out: &mut flat,
            depth: 0,
        }
        .deserialize(deserializer)?;
        Ok(flat)
    }
}

/// Appends one JSON value (a leaf or a nested array) to `out`.
struct Leaf<'a> {
    out: &'a mut FlatData,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Leaf<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Leaf<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, boolean, string, or an array of them")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.out.push_num(Num::U(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.out
            .push_num(if v >= 0 { Num::U(v as u64) } else { Num::I(v) })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.out.push_num(Num::F(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.out.push_bool(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.out.push_str(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.out.push_str(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom(format!(
                "data is nested more than {MAX_DEPTH} arrays deep"
            )));
        }
        while seq
            .next_element_seed(Leaf {
                out: &mut *self.out,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<FlatData, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn nested_arrays_flatten_in_row_major_order() {
        assert_eq!(
            parse("[[1, -2], [3.5, 4]]").unwrap(),
            FlatData::Numbers(vec![Num::U(1), Num::I(-2), Num::F(3.5), Num::U(4)])
        );
        assert_eq!(parse("[[], []]").unwrap(), FlatData::Empty);
        assert_eq!(parse("7").unwrap(), FlatData::Numbers(vec![Num::U(7)]));
        assert_eq!(
            parse(r#"[["a"], ["b"]]"#).unwrap(),
            FlatData::Strings(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse("[true, false]").unwrap(),
            FlatData::Bools(vec![true, false])
        );
    }

    #[test]
    fn mixed_null_objects_and_deep_nesting_are_refused() {
        assert!(parse(r#"[1, "a"]"#)
            .unwrap_err()
            .contains("mixes numbers and strings"));
        assert!(parse("[1, null]").is_err());
        assert!(parse(r#"[{"a": 1}]"#).is_err());
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert!(parse(&deep).unwrap_err().contains("nested more than 32"));
        let ok = format!("{}1{}", "[".repeat(32), "]".repeat(32));
        assert_eq!(parse(&ok).unwrap().len(), 1);
    }
}

//! [`BackendChoice`]: which engine to load a model on, or which to try first.

use std::fmt;
use std::str::FromStr;

use super::BackendKind;

/// How to pick the engine when loading a model: one engine, or one first and the other when
/// the first refuses the model (or, for ONNX Runtime, is not available). [`crate::Model::backend`]
/// then says which engine runs it and [`crate::Model::fallback`] why the first did not.
///
/// Spelled `tract`, `ort` (or `onnxruntime`), `auto` and `auto-ort` in configs and on the
/// command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// tract only; the default (in a build without tract, `Ort` is).
    #[cfg_attr(feature = "tract", default)]
    Tract,
    /// ONNX Runtime only.
    #[cfg_attr(not(feature = "tract"), default)]
    Ort,
    /// tract first; ONNX Runtime when tract refuses the model. Without ONNX Runtime (no
    /// library configured, or one that does not load) this is tract only.
    Auto,
    /// ONNX Runtime first; tract when ONNX Runtime refuses the model or is not available.
    AutoOrt,
}

impl BackendChoice {
    /// Every choice, in the order `--help` lists them.
    pub const ALL: [BackendChoice; 4] = [
        BackendChoice::Tract,
        BackendChoice::Ort,
        BackendChoice::Auto,
        BackendChoice::AutoOrt,
    ];

    /// The lowercase name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Tract => "tract",
            BackendChoice::Ort => "ort",
            BackendChoice::Auto => "auto",
            BackendChoice::AutoOrt => "auto-ort",
        }
    }

    /// The engine tried first, and the one tried when it fails, if any. In a build without
    /// one of the engines (cargo features), `auto` and `auto-ort` are the engine it has.
    pub fn engines(self) -> (BackendKind, Option<BackendKind>) {
        let (first, fallback) = self.engines_as_spelled();
        match fallback {
            Some(second) if !first.is_built() => (second, None),
            Some(second) if !second.is_built() => (first, None),
            _ => (first, fallback),
        }
    }

    fn engines_as_spelled(self) -> (BackendKind, Option<BackendKind>) {
        match self {
            BackendChoice::Tract => (BackendKind::Tract, None),
            BackendChoice::Ort => (BackendKind::Ort, None),
            BackendChoice::Auto => (BackendKind::Tract, Some(BackendKind::Ort)),
            BackendChoice::AutoOrt => (BackendKind::Ort, Some(BackendKind::Tract)),
        }
    }

    /// The choice that tries `first`, then `fallback` (ignored when it is `first` again).
    pub fn from_engines(first: BackendKind, fallback: Option<BackendKind>) -> Self {
        match (first, fallback.filter(|f| *f != first)) {
            (BackendKind::Tract, None) => BackendChoice::Tract,
            (BackendKind::Ort, None) => BackendChoice::Ort,
            (BackendKind::Tract, Some(_)) => BackendChoice::Auto,
            (BackendKind::Ort, Some(_)) => BackendChoice::AutoOrt,
        }
    }
}

/// The choice of exactly this engine.
impl From<BackendKind> for BackendChoice {
    fn from(kind: BackendKind) -> Self {
        Self::from_engines(kind, None)
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a backend choice.
#[derive(Debug, thiserror::Error)]
#[error("unknown backend `{0}`; expected `tract`, `ort`, `auto` (tract, else ONNX Runtime) or `auto-ort` (ONNX Runtime, else tract)")]
pub struct UnknownBackendChoice(pub String);

impl FromStr for BackendChoice {
    type Err = UnknownBackendChoice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tract" => Ok(BackendChoice::Tract),
            "ort" | "onnxruntime" => Ok(BackendChoice::Ort),
            "auto" => Ok(BackendChoice::Auto),
            "auto-ort" => Ok(BackendChoice::AutoOrt),
            _ => Err(UnknownBackendChoice(s.to_owned())),
        }
    }
}

/// Serialized as its lowercase name.
impl serde::Serialize for BackendChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Deserialized from any name [`FromStr`] accepts.
impl<'de> serde::Deserialize<'de> for BackendChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_engines_round_trip() {
        for choice in BackendChoice::ALL {
            assert_eq!(choice.name().parse::<BackendChoice>().unwrap(), choice);
            assert_eq!(
                choice
                    .to_string()
                    .to_uppercase()
                    .parse::<BackendChoice>()
                    .unwrap(),
                choice
            );
            let (first, fallback) = choice.engines();
            assert_eq!(BackendChoice::from_engines(first, fallback), choice);
        }
        assert_eq!(
            "onnxruntime".parse::<BackendChoice>().unwrap(),
            BackendChoice::Ort
        );
        assert_eq!(BackendChoice::from(BackendKind::Ort), BackendChoice::Ort);
        assert_eq!(
            BackendChoice::from_engines(BackendKind::Tract, Some(BackendKind::Tract)),
            BackendChoice::Tract
        );
        let err = "tensorflow"
            .parse::<BackendChoice>()
            .unwrap_err()
            .to_string();
        for name in ["`tensorflow`", "`tract`", "`ort`", "`auto`", "`auto-ort`"] {
            assert!(err.contains(name), "{err}");
        }
        use serde::de::value::{Error as DeError, StrDeserializer};
        use serde::Deserialize;
        let parsed = BackendChoice::deserialize(StrDeserializer::<DeError>::new("auto-ort"));
        assert_eq!(parsed.unwrap(), BackendChoice::AutoOrt);
        assert!(BackendChoice::deserialize(StrDeserializer::<DeError>::new("autoort")).is_err());
    }
}

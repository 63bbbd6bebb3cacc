//! Verdicts (DESIGN §3): `true`, `false` or `"unknown"`, and how they combine.

use serde::{Deserialize, Serialize};

/// A checker's answer. Serialised as `true`, `false` or `"unknown"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validity {
    Valid,
    Invalid,
    /// The checker could not decide (time or memory limit, internal failure).
    Unknown,
}

impl Validity {
    /// Combining verdicts: false beats unknown beats true.
    pub fn combine(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// The process exit code for this verdict (DESIGN §3): 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 2,
        }
    }
}

impl Serialize for Validity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => Ok(Validity::Valid),
            serde_json::Value::Bool(false) => Ok(Validity::Invalid),
            serde_json::Value::String(s) if s == "unknown" => Ok(Validity::Unknown),
            other => Err(serde::de::Error::custom(format!(
                "valid must be true, false or \"unknown\", got {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn false_beats_unknown_beats_true() {
        use Validity::*;
        assert_eq!(Valid.combine(Unknown), Unknown);
        assert_eq!(Unknown.combine(Invalid), Invalid);
        assert_eq!(Valid.combine(Valid), Valid);
        assert_eq!(Invalid.combine(Valid), Invalid);
    }

    #[test]
    fn serialises_as_design_says() {
        for (v, text) in [
            (Validity::Valid, "true"),
            (Validity::Invalid, "false"),
            (Validity::Unknown, "\"unknown\""),
        ] {
            assert_eq!(serde_json::to_string(&v).unwrap(), text);
            assert_eq!(serde_json::from_str::<Validity>(text).unwrap(), v);
        }
    }
}

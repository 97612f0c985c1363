//! Typed identifiers. Every id that appears in a topic is one MQTT topic level,
//! so it is restricted to `[A-Za-z0-9_-]{1,64}`: no `/`, `+`, `#` or spaces that
//! would change a topic's meaning or defeat a broker ACL.

use std::fmt;
use std::sync::Arc;

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} id is empty")]
    Empty { kind: &'static str },
    #[error("{kind} id `{value}` is longer than {MAX_ID_LEN} characters")]
    TooLong { kind: &'static str, value: String },
    #[error("{kind} id `{value}` may only contain letters, digits, `_` and `-`")]
    BadChar { kind: &'static str, value: String },
}

fn check(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { kind, value: value.chars().take(80).collect() });
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(IdError::BadChar { kind, value: value.chars().take(80).collect() });
    }
    Ok(())
}

/// The first character of `text` that does not print: a control character
/// (newline, escape, DEL, C1 controls) or an invisible formatting mark (zero
/// width, bidirectional overrides) that could forge or hide text in a log
/// line or on the dashboard. Returns its character index and the character.
pub fn first_unprintable(text: &str) -> Option<(usize, char)> {
    text.chars().enumerate().find(|(_, c)| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        ///
        /// Shared, immutable text: a clone (live state, balances, API
        /// views hold many) is a reference count, not a copy.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validate and wrap an id.
            pub fn parse(value: impl AsRef<str>) -> Result<Self, IdError> {
                let value = value.as_ref();
                check($kind, value)?;
                Ok(Self(Arc::from(value)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A plant or site (`{site}` in topics).
    SiteId,
    "site"
);
id_type!(
    /// An edge agent, the messenger (`{agent}` in topics, `agent` in envelopes).
    AgentId,
    "agent"
);
id_type!(
    /// A production line or feeder; identified together with its site.
    AssetId,
    "asset"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(SiteId::parse("plant-A_01").is_ok());
        assert!(AgentId::parse("x".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_topic_metacharacters_and_bad_lengths() {
        for bad in ["", "a/b", "a+b", "#", "a b", "é"] {
            assert!(AssetId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(AgentId::parse("x".repeat(65)), Err(IdError::TooLong { .. })));
    }

    #[test]
    fn serde_validates() {
        let ok: SiteId = serde_json::from_str("\"s1\"").unwrap();
        assert_eq!(ok.as_str(), "s1");
        assert!(serde_json::from_str::<SiteId>("\"s/1\"").is_err());
    }
}

//! Every secret the config names (API tokens, webhook secrets, the InfluxDB
//! token, the broker password), read once. Validation reads the secrets it
//! reports on and keeps them here by key; each section's build takes its
//! secret out, reading it then only if validation did not. The reading itself
//! is `throughline_shared::secret`, as in the edge agent, so both binaries
//! accept the same three spellings and name a failing key the same way.

use std::collections::HashMap;
use std::path::Path;

use throughline_shared::secret::{read_secret, require_secret, SecretError};

/// Where a section keeps one secret: `{section}.{name}`, set inline as
/// `name`, or in `name_file` or `name_env`. `Debug` leaves the inline
/// value out.
#[derive(Clone)]
pub struct Secret<'a> {
    /// The section's full key, e.g. `auth.tokens[2]`.
    pub section: String,
    pub name: &'static str,
    pub inline: Option<&'a str>,
    pub file: Option<&'a Path>,
    pub env: Option<&'a str>,
    /// Whether leaving all three unset is a problem.
    pub required: bool,
}

impl std::fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("key", &self.key())
            .field("inline", &self.inline.map(|_| "<redacted>"))
            .field("file", &self.file)
            .field("env", &self.env)
            .field("required", &self.required)
            .finish()
    }
}

impl Secret<'_> {
    fn key(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }

    fn read(&self) -> Result<Option<String>, SecretError> {
        let (section, name) = (self.section.as_str(), self.name);
        if self.required {
            require_secret(section, name, self.inline, self.file, self.env).map(Some)
        } else {
            read_secret(section, name, self.inline, self.file, self.env)
        }
    }
}

/// Secrets read so far, by key. The values never reach `Debug` output.
#[derive(Default)]
pub struct Secrets {
    read: HashMap<String, Result<Option<String>, SecretError>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.read.keys().collect();
        keys.sort();
        f.debug_struct("Secrets").field("keys", &keys).finish()
    }
}

impl Secrets {
    /// Read `secret` now (unless it was read already) and report why it
    /// cannot be read, under its key.
    pub fn check(&mut self, secret: &Secret<'_>, problems: &mut Vec<String>) {
        let read = self.read.entry(secret.key()).or_insert_with(|| secret.read());
        if let Err(e) = read {
            problems.push(e.to_string());
        }
    }

    /// The value of a secret [`Secrets::check`] read, if it could be read.
    pub fn peek(&self, secret: &Secret<'_>) -> Option<&str> {
        match self.read.get(&secret.key()) {
            Some(Ok(Some(v))) => Some(v.as_str()),
            _ => None,
        }
    }

    /// Hand a secret to the build that uses it; it is not kept here
    /// afterwards. Read now only if [`Secrets::check`] did not read it.
    pub fn take(&mut self, secret: &Secret<'_>) -> Result<Option<String>, SecretError> {
        self.read.remove(&secret.key()).unwrap_or_else(|| secret.read())
    }

    /// [`Secrets::take`] for a required secret.
    pub fn take_required(&mut self, secret: &Secret<'_>) -> Result<String, SecretError> {
        debug_assert!(secret.required, "{} is optional", secret.key());
        // A required secret reads as a value or an error, never as `None`.
        Ok(self.take(secret)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_secret(path: &Path) -> Secret<'_> {
        Secret {
            section: "auth.tokens[0]".into(),
            name: "token",
            inline: None,
            file: Some(path),
            env: None,
            required: true,
        }
    }

    #[test]
    fn a_checked_secret_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let mut secrets = Secrets::default();
        let mut problems = Vec::new();
        secrets.check(&file_secret(&path), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!format!("{secrets:?}").contains("s3cret"));
        // Gone from disk after the check: the build gets what was read then.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(secrets.take_required(&file_secret(&path)).unwrap(), "s3cret");
        // Taken: a second take reads the source again, which is gone.
        let e = secrets.take_required(&file_secret(&path)).unwrap_err().to_string();
        assert!(e.starts_with("auth.tokens[0].token_file: cannot read "), "{e}");
    }

    #[test]
    fn problems_name_the_key_and_unset_optional_secrets_are_none() {
        let mut secrets = Secrets::default();
        let mut problems = Vec::new();
        let missing = Secret {
            section: "webhooks[1]".into(),
            name: "secret",
            inline: None,
            file: None,
            env: None,
            required: true,
        };
        secrets.check(&missing, &mut problems);
        assert_eq!(problems, ["webhooks[1].secret: set one of secret, secret_file, secret_env"]);
        let optional = Secret { section: "mqtt".into(), name: "password", required: false, ..missing };
        assert_eq!(secrets.take(&optional).unwrap(), None);
        let inline = Secret { inline: Some("hunter2"), ..optional };
        assert_eq!(secrets.take(&inline).unwrap().as_deref(), Some("hunter2"));
        assert!(!format!("{inline:?}").contains("hunter2"));
    }
}

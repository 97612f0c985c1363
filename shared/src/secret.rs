//! Secrets in config files (broker passwords, API tokens, webhook secrets):
//! each is set in exactly one of three ways, under one name `NAME`:
//! `NAME` (inline), `NAME_file` (a file, trailing newlines dropped) or
//! `NAME_env` (an environment variable). Both binaries read their secrets
//! here, once, at start-up; errors name the key and never the value.

use std::path::{Path, PathBuf};

/// Why a secret could not be read. `key` is the full config key of the
/// secret (`section.NAME`, or `NAME` alone when the section is empty).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{key}_file: cannot read {}: {source}", path.display())]
    File { key: String, path: PathBuf, source: std::io::Error },
    #[error("{key}_env: environment variable {var} is not set")]
    Env { key: String, var: String },
    #[error("{key}: set only one of {name}, {name}_file, {name}_env")]
    Conflict { key: String, name: String },
    #[error("{key}: set one of {name}, {name}_file, {name}_env")]
    Missing { key: String, name: String },
}

/// Read the secret `name` under `section` from whichever of `inline`,
/// `file` and `env` is set; `Ok(None)` when none is (an optional secret).
/// More than one set is an error, whatever the order of precedence would be.
pub fn read_secret(
    section: &str,
    name: &str,
    inline: Option<&str>,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Option<String>, SecretError> {
    let key = || if section.is_empty() { name.to_string() } else { format!("{section}.{name}") };
    match (inline, file, env) {
        (None, None, None) => Ok(None),
        (Some(s), None, None) => Ok(Some(s.to_string())),
        (None, Some(f), None) => std::fs::read_to_string(f)
            .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_string()))
            .map_err(|source| SecretError::File { key: key(), path: f.to_path_buf(), source }),
        (None, None, Some(v)) => {
            std::env::var(v).map(Some).map_err(|_| SecretError::Env { key: key(), var: v.to_string() })
        }
        _ => Err(SecretError::Conflict { key: key(), name: name.to_string() }),
    }
}

/// [`read_secret`] for a secret that must be set.
pub fn require_secret(
    section: &str,
    name: &str,
    inline: Option<&str>,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<String, SecretError> {
    read_secret(section, name, inline, file, env)?.ok_or_else(|| SecretError::Missing {
        key: if section.is_empty() { name.to_string() } else { format!("{section}.{name}") },
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("tl-secret-{}-{}", std::process::id(), text.len()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn each_source_is_read() {
        assert_eq!(read_secret("mqtt", "password", None, None, None).unwrap(), None);
        assert_eq!(read_secret("mqtt", "password", Some("p"), None, None).unwrap().as_deref(), Some("p"));
        let file = temp_file("s3cret\r\n\n");
        assert_eq!(
            read_secret("mqtt", "password", None, Some(&file), None).unwrap().as_deref(),
            Some("s3cret"),
            "trailing newlines are not part of the secret"
        );
        std::fs::remove_file(&file).unwrap();
        // PATH is set wherever tests run.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(require_secret("", "token", None, None, Some("PATH")).unwrap(), path);
    }

    // The messages the aggregator's config reports today, key for key.
    #[test]
    fn errors_name_the_key_as_the_configs_do() {
        let missing = Path::new("/nonexistent/throughline/secret");
        let e = read_secret("", "token", None, Some(missing), None).unwrap_err().to_string();
        assert!(e.starts_with("token_file: cannot read /nonexistent/throughline/secret: "), "{e}");
        let e = read_secret("auth.tokens[2]", "token", None, None, Some("THROUGHLINE_TEST_UNSET_VAR"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "auth.tokens[2].token_env: environment variable THROUGHLINE_TEST_UNSET_VAR is not set");
        let e = read_secret("", "secret", Some("a"), None, Some("V")).unwrap_err().to_string();
        assert_eq!(e, "secret: set only one of secret, secret_file, secret_env");
        let e = require_secret("webhooks[0]", "secret", None, None, None).unwrap_err().to_string();
        assert_eq!(e, "webhooks[0].secret: set one of secret, secret_file, secret_env");
        let e = read_secret("mqtt", "password", None, Some(missing), None).unwrap_err().to_string();
        assert!(e.starts_with("mqtt.password_file: cannot read"), "{e}");
    }
}

//! `[auth]`: API access by bearer token; builds the [`Auth`] handle the HTTP
//! extractors ask.

use std::path::PathBuf;

use serde::Deserialize;

use super::secrets::{Secret, Secrets};
use super::ConfigError;
use crate::service::auth::Auth;
pub use crate::service::auth::Role;

/// API access.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthConfig {
    /// When true, reads need a token too (any role).
    #[serde(default)]
    pub read_requires_token: bool,
    /// Bearer tokens. Writes need a planner or admin token.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One bearer token.
#[derive(Clone, Deserialize)]
pub struct TokenConfig {
    /// Who holds it; recorded as the actor of acknowledgements and imports.
    pub name: String,
    pub role: Role,
    /// The token itself; prefer `token_file` or `token_env`.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("token_env", &self.token_env)
            .finish()
    }
}

impl TokenConfig {
    /// The token of `auth.tokens[i]`.
    fn secret(&self, i: usize) -> Secret<'_> {
        Secret {
            section: format!("auth.tokens[{i}]"),
            name: "token",
            inline: self.token.as_deref(),
            file: self.token_file.as_deref(),
            env: self.token_env.as_deref(),
            required: true,
        }
    }
}

impl AuthConfig {
    /// Report every problem under `auth`, reading every token.
    pub fn validate(&self, secrets: &mut Secrets, p: &mut Vec<String>) {
        for (i, t) in self.tokens.iter().enumerate() {
            secrets.check(&t.secret(i), p);
        }
    }

    /// The access handle, with every token.
    pub fn build(&self, secrets: &mut Secrets) -> Result<Auth, ConfigError> {
        let mut auth = Auth::new(self.read_requires_token);
        for (i, t) in self.tokens.iter().enumerate() {
            auth.add(&t.name, t.role, &secrets.take_required(&t.secret(i))?);
        }
        Ok(auth)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn token(name: &str, role: Role, token: Option<&str>, env: Option<&str>) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            role,
            token: token.map(Into::into),
            token_file: None,
            token_env: env.map(Into::into),
        }
    }

    #[test]
    fn every_token_problem_is_named_and_build_accepts_the_tokens() {
        let bad = AuthConfig {
            read_requires_token: false,
            tokens: vec![
                token("wall", Role::Viewer, Some("v"), None),
                token("nobody", Role::Planner, None, None),
                token("both", Role::Admin, Some("x"), Some("V")),
            ],
        };
        let mut p = Vec::new();
        bad.validate(&mut Secrets::default(), &mut p);
        assert_eq!(
            p,
            [
                "auth.tokens[1].token: set one of token, token_file, token_env",
                "auth.tokens[2].token: set only one of token, token_file, token_env",
            ]
        );
        let e = bad.build(&mut Secrets::default()).unwrap_err().to_string();
        assert_eq!(e, "auth.tokens[1].token: set one of token, token_file, token_env");

        let good = AuthConfig {
            read_requires_token: true,
            tokens: vec![token("alice", Role::Planner, Some("p-token"), None)],
        };
        let mut secrets = Secrets::default();
        good.validate(&mut secrets, &mut p);
        let auth = good.build(&mut secrets).unwrap();
        assert!(auth.read(&HeaderMap::new()).is_err(), "reads need a token");
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, "Bearer p-token".parse().unwrap());
        assert_eq!(auth.write(&h, Role::Planner).unwrap().name, "alice");
        assert!(!format!("{good:?}").contains("p-token"));
    }
}

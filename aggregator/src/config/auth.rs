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
    /// Report every problem under `auth`, reading every token: a token that
    /// cannot be read, an empty or blank one (it would match an empty
    /// `Bearer` or `?token=`), and one that repeats another's (a request
    /// with it could not say who, or which role, it is).
    pub fn validate(&self, secrets: &mut Secrets, p: &mut Vec<String>) {
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let secret = t.secret(i);
            secrets.check(&secret, p);
            let Some(value) = secrets.peek(&secret).map(|v| v.trim().to_string()) else { continue };
            if value.is_empty() {
                p.push(format!("auth.tokens[{i}].token: is empty or blank; set a long random token"));
                continue;
            }
            match seen.iter().find(|(v, _)| *v == value) {
                Some((_, j)) => {
                    let other = &self.tokens[*j];
                    let roles = if other.role == t.role {
                        format!("both {:?}", t.role)
                    } else {
                        format!("{:?} there, {:?} here", other.role, t.role)
                    };
                    p.push(format!(
                        "auth.tokens[{i}].token: the same token as auth.tokens[{j}] (`{}`, {roles}); give each holder a token of its own",
                        other.name
                    ));
                }
                None => seen.push((value, i)),
            }
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
        let twice = AuthConfig {
            read_requires_token: false,
            tokens: vec![
                token("wall", Role::Viewer, Some("same-secret"), None),
                token("blank", Role::Planner, Some("   "), None),
                token("empty", Role::Planner, Some(""), None),
                token("office", Role::Planner, Some("same-secret"), None),
            ],
        };
        let mut q = Vec::new();
        twice.validate(&mut Secrets::default(), &mut q);
        assert_eq!(
            q,
            [
                "auth.tokens[1].token: is empty or blank; set a long random token",
                "auth.tokens[2].token: is empty or blank; set a long random token",
                "auth.tokens[3].token: the same token as auth.tokens[0] (`wall`, Viewer there, Planner here); give each holder a token of its own",
            ]
        );
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

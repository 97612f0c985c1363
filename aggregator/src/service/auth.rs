//! Bearer-token access. Tokens come from the config with a role; a request's
//! token is compared with every configured one in constant time (over
//! SHA-256 digests, so lengths do not leak either). Tokens are never logged.
//! The HTTP API asks through its extractors (`crate::api::auth`).

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Roles, each allowed what the one before it may do and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Imports forecasts, acknowledges and resolves alerts, quotes promises.
    Planner,
    /// Everything.
    Admin,
}

/// Why a request may not do what it asks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No usable token where one is needed (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A token whose role is too low (403).
    #[error("{0}")]
    Forbidden(String),
}

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    name: String,
    role: Role,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Auth {
    entries: Vec<Entry>,
    read_requires_token: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.entries.iter().map(|e| (&e.name, e.role)).collect::<Vec<_>>())
            .field("read_requires_token", &self.read_requires_token)
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Auth {
    /// No tokens yet; reads need one when `read_requires_token`. Built from
    /// `[auth]` by `crate::config::AuthConfig::build`.
    pub fn new(read_requires_token: bool) -> Auth {
        Auth { entries: Vec::new(), read_requires_token }
    }

    /// Accept `token` for `name` with `role`; only its digest is kept.
    pub fn add(&mut self, name: &str, role: Role, token: &str) {
        self.entries.push(Entry { digest: digest(token.as_bytes()), name: name.to_string(), role });
    }

    fn actor(&self, headers: &HeaderMap) -> Result<Option<Actor>, AuthError> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else { return Ok(None) };
        // The scheme is case-insensitive (RFC 7235): `bearer`, `BEARER`.
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| {
                AuthError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        if token.is_empty() {
            // No configured token is empty (the config refuses it); say so
            // rather than compare.
            return Err(AuthError::Unauthorized("empty token: send `Authorization: Bearer <token>`".into()));
        }
        let d = digest(token.as_bytes());
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&d)) {
                found = Some(e);
            }
        }
        match found {
            Some(e) => Ok(Some(Actor { name: e.name.clone(), role: e.role })),
            None => Err(AuthError::Unauthorized("unknown token".into())),
        }
    }

    /// Check a read.
    pub fn read(&self, headers: &HeaderMap) -> Result<Option<Actor>, AuthError> {
        let actor = self.actor(headers)?;
        if self.read_requires_token && actor.is_none() {
            return Err(AuthError::Unauthorized("reading needs a token (auth.read_requires_token)".into()));
        }
        Ok(actor)
    }

    /// Check a write that needs at least `role`.
    pub fn write(&self, headers: &HeaderMap, role: Role) -> Result<Actor, AuthError> {
        match self.actor(headers)? {
            None if self.entries.is_empty() => Err(AuthError::Unauthorized(
                "writes need a bearer token and none is configured: add [[auth.tokens]] to the config".into(),
            )),
            None => Err(AuthError::Unauthorized("this needs `Authorization: Bearer <token>`".into())),
            Some(a) if a.role < role => Err(AuthError::Forbidden(format!(
                "token `{}` has role {:?}; this needs {:?} or above",
                a.name, a.role, role
            ))),
            Some(a) => Ok(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(read: bool) -> Auth {
        let mut a = Auth::new(read);
        a.add("wall", Role::Viewer, "v-token");
        a.add("alice", Role::Planner, "p-token");
        a
    }

    fn h(token: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        if let Some(t) = token {
            m.insert(axum::http::header::AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
        }
        m
    }

    #[test]
    fn roles_and_tokens() {
        let a = auth(false);
        assert_eq!(a.read(&h(None)).unwrap(), None);
        assert!(matches!(a.read(&h(Some("nope"))), Err(AuthError::Unauthorized(_))));
        assert_eq!(a.write(&h(Some("p-token")), Role::Planner).unwrap().name, "alice");
        assert!(matches!(a.write(&h(Some("v-token")), Role::Planner), Err(AuthError::Forbidden(_))));
        assert!(matches!(a.write(&h(None), Role::Planner), Err(AuthError::Unauthorized(_))));
        assert!(matches!(a.write(&h(Some("p-token")), Role::Admin), Err(AuthError::Forbidden(_))));
        let closed = auth(true);
        assert!(closed.read(&h(None)).is_err());
        assert!(closed.read(&h(Some("v-token"))).is_ok());
        assert!(!format!("{a:?}").contains("token\""));
    }

    fn raw(value: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(axum::http::header::AUTHORIZATION, value.parse().unwrap());
        m
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_an_empty_token_matches_nothing() {
        let a = auth(true);
        for ok in ["BEARER p-token", "bearer p-token", "BeArEr   p-token  "] {
            assert_eq!(a.write(&raw(ok), Role::Planner).unwrap().name, "alice", "{ok}");
        }
        for bad in ["Bearer", "Bearer ", "Bearer    ", "Basic p-token", "p-token", "Bearerp-token"] {
            assert!(matches!(a.read(&raw(bad)), Err(AuthError::Unauthorized(_))), "{bad:?}");
        }
        // Even a store built without the config's check: the empty token is never compared.
        let mut open = Auth::new(true);
        open.add("blank", Role::Admin, "");
        assert!(open.read(&raw("Bearer ")).is_err());
    }
}

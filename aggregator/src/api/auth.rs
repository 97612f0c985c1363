//! Who may call an endpoint, as axum extractors: a handler that takes a
//! [`Reader`] may be read (with a token if `auth.read_requires_token`), one
//! that takes a [`Planner`] needs a planner's token or above. The check
//! itself is the service's ([`crate::service::auth::Auth`]).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::service::auth::Actor;
use crate::service::auth::Role;
use crate::service::Services;

/// A request allowed to read; the caller, if it sent a token.
#[derive(Debug, Clone)]
pub struct Reader(pub Option<Actor>);

/// A request allowed to plan: import forecasts, act on alerts, quote.
#[derive(Debug, Clone)]
pub struct Planner(pub Actor);

impl FromRequestParts<Arc<Services>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Services>) -> Result<Reader, ApiError> {
        Ok(Reader(s.auth.read(&parts.headers)?))
    }
}

impl FromRequestParts<Arc<Services>> for Planner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Services>) -> Result<Planner, ApiError> {
        Ok(Planner(s.auth.write(&parts.headers, Role::Planner)?))
    }
}

//! `PUT /api/v1/assets/{site}/{asset}/owner`: move an asset to another
//! agent (a replaced gateway), for an asset whose `[[assets]]` entry names
//! no `agents` (those are moved in the config). Admin tokens only; logged.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use throughline_shared::{AgentId, AssetId, SiteId};

use super::error::ApiError;
use crate::service::auth::Role;
use crate::service::Services;
use crate::state::MoveError;

/// The body: the agent that reports the asset from now on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    pub agent: String,
}

pub async fn move_owner(
    State(s): State<Arc<Services>>,
    headers: HeaderMap,
    Path((site, asset)): Path<(String, String)>,
    Json(body): Json<MoveBody>,
) -> Result<Json<Value>, ApiError> {
    let actor = s.auth.write(&headers, Role::Admin)?;
    let bad = |e: throughline_shared::IdError| ApiError::BadRequest(e.to_string());
    let (site, asset) = (SiteId::parse(site).map_err(bad)?, AssetId::parse(asset).map_err(bad)?);
    let agent = AgentId::parse(&body.agent).map_err(bad)?;
    match s.live.move_asset(&site, &asset, agent.clone()) {
        Ok(before) => {
            tracing::info!(by = %actor.name, %site, %asset, from = ?before.as_ref().map(|a| a.as_str()), to = %agent, "asset moved to another agent");
            Ok(Json(json!({ "site": site, "asset": asset, "agent": agent, "previous": before })))
        }
        Err(MoveError::Unknown) => Err(ApiError::NotFound(format!(
            "no asset `{asset}` at site `{site}` has been registered or heard from"
        ))),
        Err(MoveError::Configured(agents)) => {
            let names: Vec<&str> = agents.iter().map(|a| a.as_str()).collect();
            Err(ApiError::Conflict(format!(
                "asset `{asset}` at site `{site}` names its agents in the config ({names:?}): change `agents` of its [[assets]] entry and restart"
            )))
        }
    }
}

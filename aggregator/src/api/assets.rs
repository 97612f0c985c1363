//! `GET /api/v1/assets?site=&group=&state=&limit=&cursor=`: the assets in
//! (site, asset) order, a page at a time. A plant of 100,000 assets is not
//! one body: a page holds at most [`MAX_LIMIT`] assets (the default), and
//! `next_cursor` says where the next one starts when there is more.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use throughline_shared::{AssetId, AssetState, SiteId};

use super::auth::Reader;
use super::error::ApiError;
use crate::service::Services;
use crate::state::AssetLive;

/// Assets in a page when the request names no `limit`, and the most it may
/// ask for: about 480 bytes each (478,603 for a page of 1,000 in
/// `tests/e2e/assets_pages.rs`), so a page stays under half a megabyte.
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetsQuery {
    site: Option<String>,
    group: Option<String>,
    state: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// What the answer keeps to, parsed from the query.
#[derive(Debug)]
struct Filter {
    site: Option<SiteId>,
    group: Option<String>,
    /// `Some(None)`: assets that have not reported a state (`unknown`).
    state: Option<Option<AssetState>>,
    limit: usize,
    after: Option<(SiteId, AssetId)>,
}

impl Filter {
    fn parse(q: AssetsQuery) -> Result<Filter, ApiError> {
        let bad = |m: String| ApiError::BadRequest(m);
        let site = q.site.map(SiteId::parse).transpose().map_err(|e| bad(format!("`site`: {e}")))?;
        let state = match q.state.as_deref() {
            None => None,
            Some("unknown") => Some(None),
            Some(s) => Some(Some(AssetState::parse(s).ok_or_else(|| {
                bad(format!(
                    "`state` is running, idle, down, setup, maintenance or unknown, not {:?}",
                    cut(s)
                ))
            })?)),
        };
        let limit = match q.limit.as_deref() {
            None => MAX_LIMIT,
            Some(l) => {
                l.trim().parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                    bad(format!("`limit` must be a whole number from 1 to {MAX_LIMIT}, found {:?}", cut(l)))
                })?
            }
        };
        let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(Filter { site, group: q.group, state, limit, after })
    }

    fn keeps(&self, a: &AssetLive) -> bool {
        self.group.as_ref().is_none_or(|g| a.registration.as_ref().is_some_and(|r| &r.group == g))
            && self.state.is_none_or(|s| s == a.state)
    }
}

/// An echoed value, cut to 100 characters.
fn cut(s: &str) -> String {
    s.chars().take(100).collect()
}

/// The cursor is the last asset of a page, `site/asset` in hex: opaque to
/// clients, and nothing they could take for a filter.
fn encode_cursor(site: &SiteId, asset: &AssetId) -> String {
    hex::encode(format!("{site}/{asset}"))
}

fn decode_cursor(c: &str) -> Result<(SiteId, AssetId), ApiError> {
    let parsed = hex::decode(c.trim()).ok().and_then(|b| String::from_utf8(b).ok()).and_then(|s| {
        let (site, asset) = s.split_once('/')?;
        Some((SiteId::parse(site).ok()?, AssetId::parse(asset).ok()?))
    });
    parsed.ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`cursor` {:?} is not one this endpoint gave out; pass `next_cursor` of the previous page as is",
            cut(c)
        ))
    })
}

/// `GET /api/v1/assets`: `{"assets": [...], "next_cursor": "..."}`, the
/// cursor only when more assets match after this page.
pub async fn list(
    State(s): State<Arc<Services>>,
    _: Reader,
    q: Result<Query<AssetsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::BadRequest(format!(
            "{}; this endpoint takes site, group, state, limit and cursor",
            e.body_text()
        ))
    })?;
    let f = Filter::parse(q)?;
    let (list, more) = s.live.read(|st| {
        let mut it = st.assets_after(f.site.as_ref(), f.after.as_ref()).filter(|a| f.keeps(a));
        let list: Vec<_> = it.by_ref().take(f.limit).map(|a| st.asset_view(a)).collect();
        let more = it.next().is_some();
        (list, more)
    });
    let mut body = json!({ "assets": list });
    if more {
        if let Some(last) = list.last() {
            body["next_cursor"] = json!(encode_cursor(&last.site, &last.asset));
        }
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_goes_round_and_a_forged_one_is_refused() {
        let site = SiteId::parse("plant-a").unwrap();
        let asset = AssetId::parse("press_1").unwrap();
        let c = encode_cursor(&site, &asset);
        assert_eq!(decode_cursor(&c).unwrap(), (site, asset));
        for bad in ["zz", "", &hex::encode("no-slash"), &hex::encode("a/b/c"), &hex::encode("a/")] {
            let e = decode_cursor(bad).unwrap_err();
            assert!(matches!(&e, ApiError::BadRequest(m) if m.contains("`cursor`")), "{bad}: {e:?}");
        }
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let q = |f: fn(&mut AssetsQuery)| {
            let mut q = AssetsQuery::default();
            f(&mut q);
            match Filter::parse(q) {
                Err(ApiError::BadRequest(m)) => m,
                other => panic!("{other:?}"),
            }
        };
        assert!(q(|q| q.limit = Some("0".into())).starts_with("`limit`"));
        assert!(q(|q| q.limit = Some("1001".into())).contains("from 1 to 1000"));
        assert!(q(|q| q.state = Some("runing".into())).starts_with("`state`"));
        assert!(q(|q| q.site = Some("a b".into())).starts_with("`site`"));
        let long = q(|q| q.state = Some("x".repeat(5000)));
        assert!(long.len() < 300, "the echoed value is cut: {}", long.len());
        let f = Filter::parse(AssetsQuery::default()).unwrap();
        assert_eq!(f.limit, MAX_LIMIT, "the default is bounded");
    }
}

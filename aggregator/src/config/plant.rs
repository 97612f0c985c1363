//! `[[groups]]` and `[[assets]]`: the plant. The types are the planning
//! core's (`throughline_core::model`); here they are checked, each problem
//! under its key (`groups[1].shortfall_pct`, `assets[0].rated_capacity`).

use std::collections::{HashMap, HashSet};

use crate::model::{AssetConfig, AssetKind, GroupConfig};

/// The longest `groups.close_grace_secs` accepted: a week (an agent's spool
/// holds about that much).
const MAX_CLOSE_GRACE_SECS: u64 = 7 * 86_400;
/// The longest `groups.alert_after_secs` accepted: a day.
const MAX_ALERT_AFTER_SECS: u64 = 86_400;

/// Group ids and thresholds, and whether each asset's group holds one kind.
pub fn validate_groups(groups: &[GroupConfig], assets: &[AssetConfig], p: &mut Vec<String>) {
    let mut group_ids = HashSet::new();
    for (i, g) in groups.iter().enumerate() {
        if g.id.trim().is_empty() || !group_ids.insert(g.id.clone()) {
            p.push(format!("groups[{i}].id: `{}` is empty or appears twice", g.id));
        }
        for (key, v, lo, hi) in [
            ("shortfall_pct", g.shortfall_pct, 0.0, 100.0),
            ("deviation_pct", g.deviation_pct, 0.0, 1000.0),
            ("downtime_minutes", g.downtime_minutes, 0.0, 10_080.0),
            ("hysteresis_pct", g.hysteresis_pct, 0.0, 100.0),
        ] {
            if !(v.is_finite() && v >= lo && v <= hi) {
                p.push(format!("groups[{i}].{key}: must be between {lo} and {hi}, found {v}"));
            }
        }
        // Whole seconds >= 0 by its type (a negative number is refused when
        // the file is read); a debounce longer than a day would hide a stop
        // for longer than most buckets last.
        if g.alert_after_secs > MAX_ALERT_AFTER_SECS {
            p.push(format!(
                "groups[{i}].alert_after_secs: must be between 0 and {MAX_ALERT_AFTER_SECS}, found {}",
                g.alert_after_secs
            ));
        }
        if let Some(m) = g.default_repair_minutes {
            if !(m.is_finite() && m > 0.0 && m <= 10_080.0) {
                p.push(format!(
                    "groups[{i}].default_repair_minutes: must be more than 0 and at most 10080, found {m}"
                ));
            }
        }
        if g.close_grace_secs > MAX_CLOSE_GRACE_SECS {
            p.push(format!(
                "groups[{i}].close_grace_secs: must be between 0 and {MAX_CLOSE_GRACE_SECS}, found {}",
                g.close_grace_secs
            ));
        }
    }
    // One pass each (a plant of 100,000 assets is checked in milliseconds):
    // declared groups by id, and per undeclared group the first asset of
    // each kind.
    let declared: HashMap<&str, &GroupConfig> = groups.iter().map(|g| (g.id.as_str(), g)).collect();
    let mut first_of_kind: HashMap<(&str, AssetKind), &AssetConfig> = HashMap::new();
    for a in assets {
        first_of_kind.entry((a.group.as_str(), a.kind)).or_insert(a);
    }
    for (i, a) in assets.iter().enumerate() {
        if let Some(g) = declared.get(a.group.as_str()) {
            if g.kind != a.kind {
                p.push(format!(
                    "assets[{i}].group: group `{}` is a {:?} group but the asset is a {:?}",
                    g.id, g.kind, a.kind
                ));
            }
        } else if let Some(other) = first_of_kind.get(&(a.group.as_str(), other_kind(a.kind))) {
            p.push(format!(
                "assets[{i}].group: group `{}` mixes lines and feeders (also `{}`); declare it under [[groups]]",
                a.group, other.id
            ));
        }
    }
}

fn other_kind(kind: AssetKind) -> AssetKind {
    match kind {
        AssetKind::Line => AssetKind::Feeder,
        AssetKind::Feeder => AssetKind::Line,
    }
}

/// Each asset registered once, with a rated capacity and a group.
pub fn validate_assets(assets: &[AssetConfig], p: &mut Vec<String>) {
    let mut seen = HashSet::new();
    for (i, a) in assets.iter().enumerate() {
        if !seen.insert((a.site.clone(), a.id.clone())) {
            p.push(format!("assets[{i}]: site `{}` asset `{}` is registered twice", a.site, a.id));
        }
        if !(a.rated_capacity.is_finite() && a.rated_capacity > 0.0) {
            p.push(format!("assets[{i}].rated_capacity: must be a number > 0 ({})", a.kind.rate_unit()));
        }
        if a.group.trim().is_empty() {
            p.push(format!("assets[{i}].group: must not be empty"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn plant(toml: &str) -> Vec<String> {
        let c: Config = toml::from_str(toml).unwrap();
        let mut p = Vec::new();
        validate_groups(&c.groups, &c.assets, &mut p);
        validate_assets(&c.assets, &mut p);
        p
    }

    #[test]
    fn groups_and_assets_are_checked_by_key() {
        assert!(plant("[[assets]]\nsite=\"s\"\nid=\"a\"\nkind=\"line\"\ngroup=\"g\"\nrated_capacity=1")
            .is_empty());
        let p = plant(
            r#"
[[groups]]
id = "g"
kind = "feeder"
shortfall_pct = 101
[[groups]]
id = "g"
kind = "feeder"
alert_after_secs = 86401
default_repair_minutes = 0
[[assets]]
site = "s"
id = "a"
kind = "line"
group = "g"
rated_capacity = 1
[[assets]]
site = "s"
id = "b"
kind = "line"
group = "mixed"
rated_capacity = 1
[[assets]]
site = "s"
id = "c"
kind = "feeder"
group = "mixed"
rated_capacity = 1
"#,
        );
        for want in [
            "groups[0].shortfall_pct: must be between 0 and 100, found 101",
            "groups[1].id: `g` is empty or appears twice",
            "groups[1].alert_after_secs: must be between 0 and 86400, found 86401",
            "groups[1].default_repair_minutes: must be more than 0 and at most 10080, found 0",
            "assets[0].group: group `g` is a Feeder group but the asset is a Line",
            "assets[1].group: group `mixed` mixes lines and feeders (also `c`); declare it under [[groups]]",
        ] {
            assert!(p.iter().any(|m| m == want), "{want} missing in {p:?}");
        }
    }

    #[test]
    fn close_grace_defaults_to_a_quarter_hour_and_is_at_most_a_week() {
        let c: Config = toml::from_str("[[groups]]\nid = \"g\"\nkind = \"feeder\"").unwrap();
        assert_eq!(c.groups[0].close_grace_secs, 900);
        let c: Config =
            toml::from_str("[[groups]]\nid = \"g\"\nkind = \"feeder\"\nclose_grace_secs = 604801").unwrap();
        let mut p = Vec::new();
        validate_groups(&c.groups, &c.assets, &mut p);
        assert_eq!(p, ["groups[0].close_grace_secs: must be between 0 and 604800, found 604801"]);
    }

    #[test]
    fn alert_after_secs_defaults_to_two_minutes_and_is_never_negative() {
        let c: Config = toml::from_str("[[groups]]\nid = \"g\"\nkind = \"line\"").unwrap();
        assert_eq!(c.groups[0].alert_after_secs, 120);
        let c: Config =
            toml::from_str("[[groups]]\nid = \"g\"\nkind = \"line\"\nalert_after_secs = 0").unwrap();
        assert_eq!(c.groups[0].alert_after_secs, 0);
        let e = toml::from_str::<Config>("[[groups]]\nid = \"g\"\nkind = \"line\"\nalert_after_secs = -1")
            .unwrap_err();
        assert!(e.to_string().contains("alert_after_secs"), "{e}");
    }
}

//! Who may log in to the embedded broker and what each login may do: the
//! same rights as the shipped Mosquitto ACL (`deploy/mosquitto/throughline.acl`,
//! one block per agent as `add-agent.sh` writes it). Pure: no I/O.
//!
//! An agent's login (username = agent id) may
//! - write `throughline/v1/{site}/{agent}/status` and
//!   `throughline/v1/{site}/{agent}/{asset}/telemetry`, nothing else (so no
//!   `alerts`, `resend` or `notice` topic, and nothing of another agent);
//! - subscribe to `throughline/v1/{site}/{agent}/resend` and
//!   `throughline/v1/{site}/{agent}/notice`, exactly those filters (no
//!   wildcard, so no `#`).
//!
//! The aggregator's own client does not log in here: it connects to the
//! broker behind the front with a secret made at each start.

use std::collections::HashMap;

use subtle::ConstantTimeEq;
use throughline_shared::{AgentId, SiteId};

/// One agent's login: its id (the username), the site its topics are
/// under, and its password.
#[derive(Clone)]
pub struct AgentLogin {
    pub agent: AgentId,
    pub site: SiteId,
    pub password: String,
}

impl std::fmt::Debug for AgentLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLogin")
            .field("agent", &self.agent)
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

/// Every login of the embedded broker, by username.
#[derive(Debug, Clone, Default)]
pub struct Logins {
    by_user: HashMap<String, AgentLogin>,
}

/// Why a CONNECT was refused (a metrics label each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// No username and password in the CONNECT.
    NoLogin,
    /// Unknown username or wrong password (not told apart, to the client
    /// or in the metrics).
    BadLogin,
    /// The last will is on a topic the login may not write.
    WillDenied,
}

impl LoginRefusal {
    pub fn label(self) -> &'static str {
        match self {
            LoginRefusal::NoLogin => "no_login",
            LoginRefusal::BadLogin => "bad_login",
            LoginRefusal::WillDenied => "will_denied",
        }
    }
}

impl Logins {
    pub fn new(logins: impl IntoIterator<Item = AgentLogin>) -> Logins {
        Logins { by_user: logins.into_iter().map(|l| (l.agent.to_string(), l)).collect() }
    }

    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// The rights of `username` if `password` is its password. The
    /// comparison takes the same time wherever the passwords differ.
    pub fn check(&self, username: &str, password: &str) -> Result<Rights, LoginRefusal> {
        let login = self.by_user.get(username);
        // Compare against something of the same shape when the user is
        // unknown, so timing does not tell known usernames apart.
        let stored = login.map(|l| l.password.as_bytes()).unwrap_or(b"\0unknown-user\0");
        let same: bool = stored.ct_eq(password.as_bytes()).into();
        match login {
            Some(l) if same => Ok(Rights { site: l.site.to_string(), agent: l.agent.to_string() }),
            _ => Err(LoginRefusal::BadLogin),
        }
    }
}

/// What one logged-in agent may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rights {
    site: String,
    agent: String,
}

impl Rights {
    /// The username, which is also the client id the broker sees.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Whether a PUBLISH (or the last will) on `topic` is allowed: the
    /// agent's own status, or telemetry of any asset under its own prefix.
    pub fn may_publish(&self, topic: &str) -> bool {
        let mut levels = topic.split('/');
        let prefix = [Some("throughline"), Some("v1"), Some(self.site.as_str()), Some(self.agent.as_str())];
        if prefix.iter().any(|want| levels.next() != *want) {
            return false;
        }
        let rest: Vec<&str> = levels.collect();
        match rest.as_slice() {
            ["status"] => true,
            [asset, "telemetry"] => !asset.is_empty() && !asset.contains(['+', '#']),
            _ => false,
        }
    }

    /// Whether a SUBSCRIBE to `filter` is allowed: exactly the agent's own
    /// resend or notice topic.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        let own = |leaf: &str| {
            filter
                .strip_prefix("throughline/v1/")
                .and_then(|r| r.strip_prefix(self.site.as_str()))
                .and_then(|r| r.strip_prefix('/'))
                .and_then(|r| r.strip_prefix(self.agent.as_str()))
                .and_then(|r| r.strip_prefix('/'))
                == Some(leaf)
        };
        own("resend") || own("notice")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logins() -> Logins {
        Logins::new(["gw-a", "gw-b"].map(|a| AgentLogin {
            agent: AgentId::parse(a).unwrap(),
            site: SiteId::parse("plant-a").unwrap(),
            password: format!("pw-{a}"),
        }))
    }

    #[test]
    fn only_the_right_password_logs_in() {
        let l = logins();
        assert_eq!(l.check("gw-a", "pw-gw-a").unwrap().agent(), "gw-a");
        for (user, pw) in
            [("gw-a", "pw-gw-b"), ("gw-a", ""), ("gw-a", "pw-gw-a "), ("nobody", "pw-gw-a"), ("", "")]
        {
            assert_eq!(l.check(user, pw), Err(LoginRefusal::BadLogin), "{user}/{pw}");
        }
        assert!(!format!("{l:?}").contains("pw-"), "no password in Debug output");
    }

    #[test]
    fn an_agent_writes_only_its_own_status_and_telemetry() {
        let a = logins().check("gw-a", "pw-gw-a").unwrap();
        for ok in ["throughline/v1/plant-a/gw-a/status", "throughline/v1/plant-a/gw-a/press-1/telemetry"] {
            assert!(a.may_publish(ok), "{ok}");
        }
        for denied in [
            "throughline/v1/plant-a/gw-b/status",
            "throughline/v1/plant-a/gw-b/press-1/telemetry",
            "throughline/v1/plant-b/gw-a/status",
            "throughline/v1/plant-a/alerts",
            "throughline/v1/plant-a/gw-a/resend",
            "throughline/v1/plant-a/gw-a/notice",
            "throughline/v1/plant-a/gw-a/press-1/telemetry/x",
            "throughline/v1/plant-a/gw-a//telemetry",
            "throughline/v1/plant-a/gw-a/+/telemetry",
            "throughline/v1/plant-a/gw-a",
            "throughline/v1/plant-a/gw-ab/status",
            "other/v1/plant-a/gw-a/status",
            "",
        ] {
            assert!(!a.may_publish(denied), "{denied}");
        }
    }

    #[test]
    fn an_agent_subscribes_only_to_its_own_resend_and_notice_topics() {
        let a = logins().check("gw-a", "pw-gw-a").unwrap();
        assert!(a.may_subscribe("throughline/v1/plant-a/gw-a/resend"));
        assert!(a.may_subscribe("throughline/v1/plant-a/gw-a/notice"));
        for denied in [
            "#",
            "throughline/#",
            "throughline/v1/plant-a/+/resend",
            "throughline/v1/plant-a/gw-a/#",
            "throughline/v1/plant-a/gw-a/+",
            "throughline/v1/plant-a/gw-b/resend",
            "throughline/v1/plant-a/gw-a/status",
            "throughline/v1/plant-a/alerts",
            "$SYS/#",
        ] {
            assert!(!a.may_subscribe(denied), "{denied}");
        }
    }
}

//! `[[webhooks]]`, `[alertmanager]` and `[outbox]`: where alert changes are
//! sent, and how many wait for a receiver; each receiver builds its outbox
//! [`Receiver`].

use std::path::PathBuf;

use serde::Deserialize;

use super::secrets::{Secret, Secrets};
use super::ConfigError;
use crate::service::delivery::{Receiver, ReceiverKind};

/// A webhook: every alert change is POSTed as JSON, signed with
/// HMAC-SHA256 of the body in `X-Throughline-Signature: sha256=<hex>`.
#[derive(Clone, Deserialize)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .field("secret_env", &self.secret_env)
            .finish()
    }
}

/// Prometheus Alertmanager (v2 API).
#[derive(Debug, Clone, Deserialize)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093`; alerts go to `{url}/api/v2/alerts`.
    pub url: String,
}

/// `[outbox]`: what waits for a receiver that does not take it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Undelivered alert events kept per receiver. When a new one would
    /// exceed it, that receiver's oldest undelivered events are dropped,
    /// logged and counted (`throughline_outbox_dropped_total{receiver}`):
    /// the latest changes (e.g. a resolution) matter more than old ones.
    #[serde(default = "default_max_pending")]
    pub max_pending: u64,
}

fn default_max_pending() -> u64 {
    100_000
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig { max_pending: default_max_pending() }
    }
}

impl OutboxConfig {
    /// Report every problem under `outbox`.
    pub fn validate(&self, p: &mut Vec<String>) {
        if self.max_pending == 0 {
            p.push("outbox.max_pending: must be at least 1".into());
        }
    }
}

/// Check that `url` (the value of `key`) is an http or https URL with a
/// host. The URL itself is not echoed: it may carry credentials.
fn check_url(key: &str, url: &str, p: &mut Vec<String>) {
    match reqwest::Url::parse(url) {
        Err(e) => p.push(format!("{key}: not a URL ({e})")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            p.push(format!("{key}: must be an http:// or https:// URL, not {}:", u.scheme()))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => p.push(format!("{key}: the URL has no host")),
        Ok(_) => {}
    }
}

impl WebhookConfig {
    /// The signing secret of `webhooks[i]`.
    fn signing_secret(&self, i: usize) -> Secret<'_> {
        Secret {
            section: format!("webhooks[{i}]"),
            name: "secret",
            inline: self.secret.as_deref(),
            file: self.secret_file.as_deref(),
            env: self.secret_env.as_deref(),
            required: true,
        }
    }

    /// Report every problem of `webhooks[i]`, reading its secret.
    pub fn validate(&self, i: usize, secrets: &mut Secrets, p: &mut Vec<String>) {
        check_url(&format!("webhooks[{i}].url"), &self.url, p);
        secrets.check(&self.signing_secret(i), p);
    }

    /// The receiver of `webhooks[i]`, outbox queue `webhook:NAME`.
    pub fn build(
        &self,
        i: usize,
        secrets: &mut Secrets,
        outbox: &OutboxConfig,
    ) -> Result<Receiver, ConfigError> {
        let secret = secrets.take_required(&self.signing_secret(i))?;
        Ok(Receiver {
            name: format!("webhook:{}", self.name),
            kind: ReceiverKind::Webhook { url: self.url.clone(), secret: secret.into_bytes() },
            max_pending: outbox.max_pending,
        })
    }
}

impl AlertmanagerConfig {
    /// Report every problem under `alertmanager`.
    pub fn validate(&self, p: &mut Vec<String>) {
        check_url("alertmanager.url", &self.url, p);
    }

    /// The receiver, outbox queue `alertmanager`.
    pub fn build(&self, outbox: &OutboxConfig) -> Receiver {
        Receiver {
            name: "alertmanager".into(),
            kind: ReceiverKind::Alertmanager {
                url: format!("{}/api/v2/alerts", self.url.trim_end_matches('/')),
            },
            max_pending: outbox.max_pending,
        }
    }
}

/// Every receiver: the webhooks in order, then Alertmanager.
pub fn receivers(
    webhooks: &[WebhookConfig],
    alertmanager: Option<&AlertmanagerConfig>,
    outbox: &OutboxConfig,
    secrets: &mut Secrets,
) -> Result<Vec<Receiver>, ConfigError> {
    let mut out = Vec::new();
    for (i, w) in webhooks.iter().enumerate() {
        out.push(w.build(i, secrets, outbox)?);
    }
    out.extend(alertmanager.map(|a| a.build(outbox)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, secret: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            name: "erp".into(),
            url: url.into(),
            secret: secret.map(Into::into),
            secret_file: None,
            secret_env: None,
        }
    }

    #[test]
    fn problems_are_named_per_receiver() {
        let mut p = Vec::new();
        let mut secrets = Secrets::default();
        hook("ftp://erp", None).validate(0, &mut secrets, &mut p);
        hook("https://erp", Some("k")).validate(1, &mut secrets, &mut p);
        AlertmanagerConfig { url: "am:9093".into() }.validate(&mut p);
        OutboxConfig { max_pending: 0 }.validate(&mut p);
        assert_eq!(
            p,
            [
                "webhooks[0].url: must be an http:// or https:// URL, not ftp:",
                "webhooks[0].secret: set one of secret, secret_file, secret_env",
                "alertmanager.url: must be an http:// or https:// URL, not am:",
                "outbox.max_pending: must be at least 1",
            ]
        );
        let e = hook("https://erp", None)
            .build(3, &mut secrets, &OutboxConfig::default())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "webhooks[3].secret: set one of secret, secret_file, secret_env");
    }

    #[test]
    fn receivers_in_order_with_their_queues() {
        let am = AlertmanagerConfig { url: "http://am:9093/".into() };
        let outbox = OutboxConfig { max_pending: 5 };
        let r =
            receivers(&[hook("https://erp/hook", Some("k"))], Some(&am), &outbox, &mut Secrets::default())
                .unwrap();
        assert!(r.iter().all(|r| r.max_pending == 5));
        assert_eq!(r.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["webhook:erp", "alertmanager"]);
        assert!(
            matches!(&r[0].kind, ReceiverKind::Webhook { url, secret } if url == "https://erp/hook" && secret == b"k")
        );
        assert!(
            matches!(&r[1].kind, ReceiverKind::Alertmanager { url } if url == "http://am:9093/api/v2/alerts")
        );
        assert!(!format!("{r:?}").contains("\"k\""));
    }

    #[test]
    fn urls_are_parsed_not_matched_by_prefix() {
        let problems = |url: &str| {
            let mut p = Vec::new();
            hook(url, Some("k")).validate(2, &mut Secrets::default(), &mut p);
            p
        };
        for good in ["http://127.0.0.1:8080/hook", "https://erp.plant.local/h?x=1", "http://[::1]:9/"] {
            assert_eq!(problems(good), Vec::<String>::new(), "{good}");
        }
        assert_eq!(
            problems("http://a b/"),
            ["webhooks[2].url: not a URL (invalid international domain name)"]
        );
        assert_eq!(problems("http://"), ["webhooks[2].url: not a URL (empty host)"]);
        assert_eq!(problems("http:// /"), ["webhooks[2].url: not a URL (invalid international domain name)"]);
        assert_eq!(problems("erp/hook"), ["webhooks[2].url: not a URL (relative URL without a base)"]);
        assert_eq!(
            problems("file:///etc/passwd"),
            ["webhooks[2].url: must be an http:// or https:// URL, not file:"]
        );
        let mut p = Vec::new();
        AlertmanagerConfig { url: "http://am host:9093".into() }.validate(&mut p);
        assert_eq!(p, ["alertmanager.url: not a URL (invalid international domain name)"]);
    }
}

//! `[[webhooks]]` and `[alertmanager]`: where alert changes are sent; each
//! builds its outbox [`Receiver`].

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

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
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
        if !is_http(&self.url) {
            p.push(format!("webhooks[{i}].url: must start with http:// or https://"));
        }
        secrets.check(&self.signing_secret(i), p);
    }

    /// The receiver of `webhooks[i]`, outbox queue `webhook:NAME`.
    pub fn build(&self, i: usize, secrets: &mut Secrets) -> Result<Receiver, ConfigError> {
        let secret = secrets.take_required(&self.signing_secret(i))?;
        Ok(Receiver {
            name: format!("webhook:{}", self.name),
            kind: ReceiverKind::Webhook { url: self.url.clone(), secret: secret.into_bytes() },
        })
    }
}

impl AlertmanagerConfig {
    /// Report every problem under `alertmanager`.
    pub fn validate(&self, p: &mut Vec<String>) {
        if !is_http(&self.url) {
            p.push("alertmanager.url: must start with http:// or https://".into());
        }
    }

    /// The receiver, outbox queue `alertmanager`.
    pub fn build(&self) -> Receiver {
        Receiver {
            name: "alertmanager".into(),
            kind: ReceiverKind::Alertmanager {
                url: format!("{}/api/v2/alerts", self.url.trim_end_matches('/')),
            },
        }
    }
}

/// Every receiver: the webhooks in order, then Alertmanager.
pub fn receivers(
    webhooks: &[WebhookConfig],
    alertmanager: Option<&AlertmanagerConfig>,
    secrets: &mut Secrets,
) -> Result<Vec<Receiver>, ConfigError> {
    let mut out = Vec::new();
    for (i, w) in webhooks.iter().enumerate() {
        out.push(w.build(i, secrets)?);
    }
    out.extend(alertmanager.map(AlertmanagerConfig::build));
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
        assert_eq!(
            p,
            [
                "webhooks[0].url: must start with http:// or https://",
                "webhooks[0].secret: set one of secret, secret_file, secret_env",
                "alertmanager.url: must start with http:// or https://",
            ]
        );
        let e = hook("https://erp", None).build(3, &mut secrets).unwrap_err().to_string();
        assert_eq!(e, "webhooks[3].secret: set one of secret, secret_file, secret_env");
    }

    #[test]
    fn receivers_in_order_with_their_queues() {
        let am = AlertmanagerConfig { url: "http://am:9093/".into() };
        let r =
            receivers(&[hook("https://erp/hook", Some("k"))], Some(&am), &mut Secrets::default()).unwrap();
        assert_eq!(r.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["webhook:erp", "alertmanager"]);
        assert!(
            matches!(&r[0].kind, ReceiverKind::Webhook { url, secret } if url == "https://erp/hook" && secret == b"k")
        );
        assert!(
            matches!(&r[1].kind, ReceiverKind::Alertmanager { url } if url == "http://am:9093/api/v2/alerts")
        );
        assert!(!format!("{r:?}").contains("\"k\""));
    }
}

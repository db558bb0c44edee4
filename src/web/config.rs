//! The `[web]` section (the staff page): the checked data, the file's raw form, the defaults
//! and the check. The section is this room's; `config` reads the file and composes it, and
//! this module imports only the low key error and value readers, never `config` (issue 14).

use crate::config_value::{ConfigError, duration_key, key_err};
use serde::Deserialize;
use std::time::Duration;

/// The staff page.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: std::net::SocketAddr,
    /// Served through a proxy that terminates TLS and sets `X-Forwarded-Proto: https`:
    /// cookies are marked `Secure`.
    pub behind_tls_proxy: bool,
    /// A staff session ends after this long.
    pub session_ttl: Duration,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed (issue 13): anyone
    /// else could write them. Default: loopback when `behind_tls_proxy`, else nobody.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl WebConfig {
    /// Whether `peer` is one of [`WebConfig::trusted_proxies`].
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        let peer = match peer {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWeb {
    listen: Option<String>,
    behind_tls_proxy: Option<bool>,
    session_ttl: Option<String>,
    trusted_proxies: Option<Vec<String>>,
}

/// `[web] trusted_proxies`: addresses (`127.0.0.1`, `::1`) or networks (`10.0.0.0/8`).
fn trusted_proxies(
    list: Option<Vec<String>>,
    behind_tls_proxy: bool,
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(list) = list else {
        return Ok(if behind_tls_proxy {
            ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect()
        } else {
            Vec::new()
        });
    };
    list.iter()
        .map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    key_err(
                        "web.trusted_proxies",
                        format!(
                            "`{entry}` is not an address (127.0.0.1) or a network (10.0.0.0/8)"
                        ),
                    )
                })
        })
        .collect()
}

pub(crate) fn check_web(raw: RawWeb) -> Result<WebConfig, ConfigError> {
    Ok(WebConfig {
        listen: raw
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|e| {
                key_err(
                    "web.listen",
                    format!("not an address like 127.0.0.1:8080: {e}"),
                )
            })?,
        behind_tls_proxy: raw.behind_tls_proxy.unwrap_or(false),
        trusted_proxies: trusted_proxies(
            raw.trusted_proxies,
            raw.behind_tls_proxy.unwrap_or(false),
        )?,
        session_ttl: duration_key(
            "web.session_ttl",
            raw.session_ttl,
            Duration::from_secs(12 * 3600),
        )?,
    })
}

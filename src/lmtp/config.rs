//! The `[lmtp]` section: where the LMTP listener listens (RFC 2033), which recipients it takes
//! and which TCP peers may deliver. The section is this room's; `config` reads the file and
//! composes it, and this module imports only `config_value`, never `config` (issue 14).
//!
//! Absent = LMTP off (the IMAP watcher alone, the default).

use crate::config_value::{ConfigError, OneOrMany, key_err, looks_like_address};
use serde::Deserialize;
use std::path::PathBuf;

/// `[lmtp]` as the file says it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLmtp {
    listen: Option<String>,
    recipients: Option<OneOrMany<String>>,
    allow_from: Option<Vec<String>>,
}

/// `[lmtp]`: the MTA delivers the helpdesk address to postroom over LMTP (RFC 2033).
#[derive(Debug, Clone)]
pub struct LmtpConfig {
    pub listen: LmtpListen,
    /// Addresses taken at `RCPT TO`, lower-case (default: the helpdesk address); any other
    /// gets 550.
    pub recipients: Vec<String>,
    /// TCP peers allowed to deliver (default: loopback). Whoever delivers here is believed as
    /// the MTA is, `Authentication-Results` included, so the list is short on purpose. A Unix
    /// socket is guarded by its file permissions instead.
    pub allow_from: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpListen {
    Tcp(std::net::SocketAddr),
    /// An absolute path (`/run/postroom/lmtp.sock`, or written `unix:/run/…`).
    Unix(PathBuf),
}

/// Check `[lmtp]`; `helpdesk` is the helpdesk's address, the default recipient.
pub fn check_lmtp(raw: RawLmtp, helpdesk: &str) -> Result<LmtpConfig, ConfigError> {
    let Some(listen) = raw.listen.map(|l| l.trim().to_owned()) else {
        return Err(key_err(
            "lmtp.listen",
            "missing: an address like \"127.0.0.1:2424\" or a socket path like \"/run/postroom/lmtp.sock\" (leave [lmtp] out to turn LMTP off)",
        ));
    };
    let path = listen.strip_prefix("unix:").unwrap_or(&listen);
    let listen = if path.starts_with('/') {
        LmtpListen::Unix(PathBuf::from(path))
    } else {
        LmtpListen::Tcp(listen.parse().map_err(|_| {
            key_err(
                "lmtp.listen",
                format!(
                    "`{listen}` is not an address like 127.0.0.1:2424 nor an absolute socket path like /run/postroom/lmtp.sock"
                ),
            )
        })?)
    };
    let recipients = match raw.recipients {
        None => vec![helpdesk.to_ascii_lowercase()],
        Some(list) => {
            let list: Vec<String> = list
                .into_vec()
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .collect();
            if list.is_empty() {
                return Err(key_err("lmtp.recipients", "lists no address"));
            }
            if let Some(bad) = list.iter().find(|a| !looks_like_address(a)) {
                return Err(key_err(
                    "lmtp.recipients",
                    format!("`{bad}` is not an email address"),
                ));
            }
            list
        }
    };
    let allow_from = match raw.allow_from {
        None => ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect(),
        Some(list) => list
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        key_err(
                            "lmtp.allow_from",
                            format!(
                                "`{entry}` is not an address (127.0.0.1) or a network (10.0.0.0/8)"
                            ),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(LmtpConfig {
        listen,
        recipients,
        allow_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Result<LmtpConfig, ConfigError> {
        let raw: RawLmtp = toml::from_str(text).map_err(|e| key_err("lmtp", e.to_string()))?;
        check_lmtp(raw, "Helpdesk@NHS.example")
    }

    #[test]
    fn tcp_or_a_socket() {
        let l = raw("listen = \"127.0.0.1:2424\"\n").unwrap();
        assert_eq!(l.listen, LmtpListen::Tcp("127.0.0.1:2424".parse().unwrap()));
        assert_eq!(
            l.recipients,
            ["helpdesk@nhs.example"],
            "the helpdesk address by default"
        );
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(l.allow_from.iter().any(|n| n.contains(&ip("127.0.0.1"))));
        assert!(l.allow_from.iter().any(|n| n.contains(&ip("::1"))));
        assert!(!l.allow_from.iter().any(|n| n.contains(&ip("10.0.0.1"))));

        for listen in ["/run/postroom/lmtp.sock", "unix:/run/postroom/lmtp.sock"] {
            let l = raw(&format!(
                "listen = \"{listen}\"\nrecipients = [\"HD@nhs.example\", \"it@nhs.example\"]\nallow_from = [\"10.0.0.0/8\", \"192.0.2.7\"]\n"
            ))
            .unwrap();
            assert_eq!(l.listen, LmtpListen::Unix("/run/postroom/lmtp.sock".into()));
            assert_eq!(l.recipients, ["hd@nhs.example", "it@nhs.example"]);
            assert_eq!(l.allow_from.len(), 2);
        }
        let l = raw("listen = \"[::1]:24\"\nrecipients = \"one@nhs.example\"\n").unwrap();
        assert_eq!(l.recipients, ["one@nhs.example"]);
    }

    #[test]
    fn bad_keys_are_named() {
        for (text, key) in [
            ("", "lmtp.listen"),
            ("listen = \"localhost\"\n", "lmtp.listen"),
            ("listen = \"run/lmtp.sock\"\n", "lmtp.listen"),
            (
                "listen = \"127.0.0.1:24\"\nrecipients = [\"not an address\"]\n",
                "lmtp.recipients",
            ),
            (
                "listen = \"127.0.0.1:24\"\nrecipients = []\n",
                "lmtp.recipients",
            ),
            (
                "listen = \"127.0.0.1:24\"\nallow_from = [\"everyone\"]\n",
                "lmtp.allow_from",
            ),
            ("listen = \"127.0.0.1:24\"\nport = 24\n", "port"),
        ] {
            let err = raw(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }
}

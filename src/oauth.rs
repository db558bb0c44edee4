//! OAuth2 access tokens for XOAUTH2 sign-in (`[imap] auth = "xoauth2"`, `[smtp] auth = …`).
//!
//! A [`TokenSource`] gets a token either from a token endpoint with the client-credentials
//! grant (Microsoft 365: basic auth is retired there) or from a program (`token_command`), and
//! keeps it until shortly before it expires, so reconnects do not hammer the provider.
//!
//! Failures carry the provider's own words (`error`, `error_description`), never the client
//! secret, and are counted on the shared [`Status`] (`/metrics`, `/healthz`): a token that
//! silently stops refreshing is the classic way such a desk goes quiet (field notes).

use crate::config_value::{ConfigError, key_err, secret_key};
use crate::secret::Secret;
use crate::status::Status;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A token is refreshed this long before the provider said it expires, so one fetched just
/// before a reconnect cannot run out in the middle of the sign-in.
const EARLY: Duration = Duration::from_secs(60);
/// Bound on one token request or token command.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Where tokens come from.
#[derive(Debug, Clone)]
pub enum Provider {
    /// OAuth2 client-credentials grant (RFC 6749 §4.4) against `token_url`.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: Option<String>,
    },
    /// `sh -c COMMAND`; the first line of its stdout is the token. It is run on every sign-in
    /// (the expiry is unknown here; tools like `az account get-access-token` cache themselves).
    Command(String),
}

impl Provider {
    /// Where tokens come from, for `check` and logs (no secret).
    pub fn describe(&self) -> String {
        match self {
            Provider::ClientCredentials { token_url, .. } => format!("token from {token_url}"),
            Provider::Command(_) => "token from token_command".into(),
        }
    }
}

/// How postroom signs in to a mail server (`[imap] auth`, `[smtp] auth`): the checked section,
/// data only. Whoever signs in builds its [`TokenSource`] from it ([`Auth::tokens`]) and keeps
/// it, so that reconnects reuse the token.
#[derive(Debug, Clone)]
pub enum Auth {
    Password,
    /// SASL XOAUTH2 with an OAuth2 access token (Microsoft 365, Google).
    Xoauth2(Provider),
}

impl Auth {
    /// For `check` and logs: `password`, or `xoauth2, token from …`.
    pub fn describe(&self) -> String {
        match self {
            Auth::Password => "password".into(),
            Auth::Xoauth2(provider) => format!("xoauth2, {}", provider.describe()),
        }
    }

    /// The token source of an XOAUTH2 sign-in, its failures counted on `status` (the
    /// daemon's); `None` for a password.
    pub fn tokens(&self, status: Option<&Status>) -> Option<TokenSource> {
        match self {
            Auth::Password => None,
            Auth::Xoauth2(provider) => {
                let source = TokenSource::new(provider.clone());
                if let Some(status) = status {
                    source.attach_status(status);
                }
                Some(source)
            }
        }
    }
}

// The `auth`, `oauth2` and `token_command` keys of `[imap]` and `[smtp]` as the file gives
// them, and the check that turns them into an [`Auth`]: the section is this module's, and
// `imap::config` and `smtp::config` read it through here (issue 14).

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AuthKind {
    Password,
    Xoauth2,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOauth2 {
    token_url: String,
    client_id: String,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    scope: Option<String>,
}

pub(crate) fn check_auth(
    section: &str,
    kind: Option<AuthKind>,
    oauth2: Option<RawOauth2>,
    command: Option<String>,
) -> Result<Auth, ConfigError> {
    let k = |name: &str| format!("{section}.{name}");
    if kind.unwrap_or(AuthKind::Password) == AuthKind::Password {
        // A token source that is never used is a mistake worth saying so at start.
        if oauth2.is_some() {
            return Err(key_err(&k("oauth2"), "only used with auth = \"xoauth2\""));
        }
        if command.is_some() {
            return Err(key_err(
                &k("token_command"),
                "only used with auth = \"xoauth2\"",
            ));
        }
        return Ok(Auth::Password);
    }
    let provider = match (oauth2, command) {
        (Some(_), Some(_)) => {
            return Err(key_err(
                &k("oauth2"),
                "give `oauth2` or `token_command`, not both",
            ));
        }
        (None, None) => {
            return Err(key_err(
                &k("auth"),
                "xoauth2 needs a token source: `oauth2 = { token_url, client_id, client_secret_file, scope }` or `token_command`",
            ));
        }
        (None, Some(command)) if command.trim().is_empty() => {
            return Err(key_err(&k("token_command"), "empty"));
        }
        (None, Some(command)) => Provider::Command(command),
        (Some(o), None) => {
            let kk = |name: &str| format!("{section}.oauth2.{name}");
            let url = o.token_url.trim().to_owned();
            // The client secret travels in the request body: clear text only on loopback.
            let loopback = url.strip_prefix("http://").is_some_and(|rest| {
                ["127.0.0.1", "localhost", "[::1]"].iter().any(|h| {
                    rest.strip_prefix(h)
                        .is_some_and(|after| after.is_empty() || after.starts_with([':', '/']))
                })
            });
            if !(url.starts_with("https://") || loopback) {
                return Err(key_err(
                    &kk("token_url"),
                    format!("`{url}` must be an https:// URL"),
                ));
            }
            if o.client_id.trim().is_empty() {
                return Err(key_err(&kk("client_id"), "empty"));
            }
            let secret = secret_key(&kk("client_secret"), o.client_secret, o.client_secret_file)?
                .filter(|s| !s.expose().is_empty())
                .ok_or_else(|| key_err(&kk("client_secret_file"), "missing or empty"))?;
            Provider::ClientCredentials {
                token_url: url,
                client_id: o.client_id.trim().to_owned(),
                client_secret: secret,
                scope: o.scope.filter(|s| !s.trim().is_empty()),
            }
        }
    };
    Ok(Auth::Xoauth2(provider))
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token endpoint {url} said: {message}")]
    Provider { url: String, message: String },
    #[error("token endpoint {url}: {message}")]
    Transport { url: String, message: String },
    #[error("token_command: {0}")]
    Command(String),
}

struct Cached {
    token: Secret,
    /// `None`: do not reuse (token_command).
    good_until: Option<Instant>,
}

struct Inner {
    provider: Provider,
    cache: tokio::sync::Mutex<Option<Cached>>,
    /// Set once by the daemon; `check` and tests run without one.
    status: OnceLock<Status>,
}

/// A cheap handle (`Clone` shares the cache), built from [`Auth`] by whoever signs in.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSource({})", self.describe())
    }
}

impl TokenSource {
    pub fn new(provider: Provider) -> TokenSource {
        TokenSource {
            inner: Arc::new(Inner {
                provider,
                cache: tokio::sync::Mutex::new(None),
                status: OnceLock::new(),
            }),
        }
    }

    /// Where tokens come from, for `check` and logs (no secret).
    pub fn describe(&self) -> String {
        self.inner.provider.describe()
    }

    /// Count later failures on `status` (first call wins; the daemon has one Status).
    pub fn attach_status(&self, status: &Status) {
        let _ = self.inner.status.set(status.clone());
    }

    /// A token that is good for at least [`EARLY`] more, fetched only when the cached one is
    /// stale or was refused.
    pub async fn token(&self) -> Result<Secret, TokenError> {
        let mut cache = self.inner.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && c.good_until.is_some_and(|t| Instant::now() < t)
        {
            return Ok(c.token.clone());
        }
        *cache = None;
        match self.fetch().await {
            Ok(fresh) => {
                let token = fresh.token.clone();
                *cache = Some(fresh);
                Ok(token)
            }
            Err(e) => {
                if let Some(status) = self.inner.status.get() {
                    status.token_failure();
                }
                Err(e)
            }
        }
    }

    /// No usable cached token: the next [`TokenSource::token`] asks the provider. A cache
    /// that is busy (a fetch under way) counts as fresh.
    pub fn is_stale(&self) -> bool {
        match self.inner.cache.try_lock() {
            Ok(cache) => cache
                .as_ref()
                .is_none_or(|c| c.good_until.is_none_or(|t| Instant::now() >= t)),
            Err(_) => false,
        }
    }

    /// The server refused the token (revoked before its expiry): the next sign-in fetches a
    /// new one instead of retrying the cached one until it expires.
    pub async fn invalidate(&self) {
        *self.inner.cache.lock().await = None;
    }

    async fn fetch(&self) -> Result<Cached, TokenError> {
        match self.inner.provider.clone() {
            Provider::Command(command) => run_command(&command).await.map(|token| Cached {
                token,
                good_until: None,
            }),
            Provider::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let url = token_url.clone();
                // ureq is blocking: keep it off the runtime's worker threads.
                let joined = tokio::task::spawn_blocking(move || {
                    client_credentials(&token_url, &client_id, &client_secret, scope.as_deref())
                })
                .await;
                match joined {
                    Ok(r) => r,
                    Err(e) => Err(TokenError::Transport {
                        url,
                        message: format!("request task failed: {e}"),
                    }),
                }
            }
        }
    }
}

/// The SASL XOAUTH2 initial response (before base64, which async-imap and lettre add).
pub fn xoauth2_string(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

fn client_credentials(
    url: &str,
    client_id: &str,
    client_secret: &Secret,
    scope: Option<&str>,
) -> Result<Cached, TokenError> {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", client_secret.expose()),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let started = Instant::now();
    let transport = |message: String| TokenError::Transport {
        url: url.to_owned(),
        message,
    };
    let body = match ureq::post(url)
        .timeout(FETCH_TIMEOUT)
        .set("Accept", "application/json")
        .send_form(&form)
    {
        Ok(resp) => resp
            .into_string()
            .map_err(|e| transport(format!("reading the answer: {e}")))?,
        Err(ureq::Error::Status(code, resp)) => {
            let body = resp.into_string().unwrap_or_default();
            return Err(match provider_message(&body) {
                Some(message) => TokenError::Provider {
                    url: url.to_owned(),
                    message,
                },
                None => transport(format!("HTTP {code}")),
            });
        }
        // ureq's transport errors name the URL and the cause, not the form body.
        Err(ureq::Error::Transport(t)) => return Err(transport(t.to_string())),
    };
    parse_token(&body, started).map_err(|message| match provider_message(&body) {
        Some(message) => TokenError::Provider {
            url: url.to_owned(),
            message,
        },
        None => transport(message),
    })
}

/// `error: error_description` from an RFC 6749 §5.2 error answer.
fn provider_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let error = v.get("error")?.as_str()?;
    // Microsoft's descriptions run over several lines (trace ids): the first says why.
    let first = |s: &str| s.lines().next().unwrap_or("").trim().to_owned();
    Some(match v.get("error_description").and_then(|d| d.as_str()) {
        Some(d) if !d.trim().is_empty() => format!("{error}: {}", first(d)),
        _ => error.to_owned(),
    })
}

fn parse_token(body: &str, fetched: Instant) -> Result<Cached, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    let token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or("answer has no access_token")?;
    // Some providers send the number as a string.
    let expires_in = match v.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    // Without a lifetime, assume the common hour rather than fetching on every reconnect.
    .unwrap_or(3600);
    let good_for = Duration::from_secs(expires_in).saturating_sub(EARLY);
    Ok(Cached {
        token: Secret::new(token),
        good_until: Some(fetched + good_for),
    })
}

async fn run_command(command: &str) -> Result<Secret, TokenError> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(FETCH_TIMEOUT, child).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(TokenError::Command(format!("cannot run sh: {e}"))),
        Err(_) => {
            return Err(TokenError::Command(format!(
                "no token after {FETCH_TIMEOUT:?}"
            )));
        }
    };
    if !out.status.success() {
        // Its stderr is the program's explanation; stdout could hold a token, so not that.
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.lines().next().unwrap_or("").trim();
        return Err(TokenError::Command(format!(
            "exited with {}: {err}",
            out.status
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().next().map(str::trim) {
        Some(t) if !t.is_empty() => Ok(Secret::new(t)),
        _ => Err(TokenError::Command("printed no token".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_string_has_the_xoauth2_shape() {
        assert_eq!(
            xoauth2_string("u@x", "T"),
            "user=u@x\x01auth=Bearer T\x01\x01"
        );
    }

    #[test]
    fn token_is_kept_until_a_minute_before_expiry() {
        let now = Instant::now();
        let c = parse_token(r#"{"access_token":"a","expires_in":3600}"#, now).unwrap();
        assert_eq!(c.token.expose(), "a");
        assert_eq!(c.good_until, Some(now + Duration::from_secs(3540)));
        // A lifetime shorter than the margin is never reused.
        let c = parse_token(r#"{"access_token":"a","expires_in":"30"}"#, now).unwrap();
        assert_eq!(c.good_until, Some(now));
        assert!(parse_token(r#"{"token_type":"Bearer"}"#, now).is_err());
    }

    #[test]
    fn provider_message_names_the_error_not_the_trace() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret.\r\nTrace ID: 1"}"#;
        assert_eq!(
            provider_message(body).unwrap(),
            "invalid_client: AADSTS7000215: Invalid client secret."
        );
        assert_eq!(provider_message(r#"{"error":"x"}"#).unwrap(), "x");
        assert!(provider_message("<html>").is_none());
    }

    #[tokio::test]
    async fn cached_token_is_reused_until_stale_or_invalidated() {
        let source = TokenSource::new(Provider::Command("false".into()));
        *source.inner.cache.lock().await = Some(Cached {
            token: Secret::new("cached"),
            good_until: Some(Instant::now() + Duration::from_secs(60)),
        });
        // The command would fail: a cached token must not run it.
        assert_eq!(source.token().await.unwrap().expose(), "cached");
        source.invalidate().await;
        assert!(source.token().await.is_err());
        // A stale one is not reused either.
        *source.inner.cache.lock().await = Some(Cached {
            token: Secret::new("old"),
            good_until: Some(Instant::now()),
        });
        assert!(source.token().await.is_err());
    }

    #[tokio::test]
    async fn token_command_first_line_and_failures() {
        let ok = TokenSource::new(Provider::Command("printf 'tok-1\\nignored\\n'".into()));
        assert_eq!(ok.token().await.unwrap().expose(), "tok-1");
        let failing = TokenSource::new(Provider::Command(
            "echo secret-ish; echo 'no login' >&2; exit 3".into(),
        ));
        let status = Status::new();
        failing.attach_status(&status);
        let e = failing.token().await.unwrap_err().to_string();
        assert!(e.contains("no login"), "{e}");
        assert!(!e.contains("secret-ish"), "{e}");
        assert_eq!(status.snapshot().token_failures, 1);
        let empty = TokenSource::new(Provider::Command("true".into()));
        assert!(
            empty
                .token()
                .await
                .unwrap_err()
                .to_string()
                .contains("no token")
        );
    }

    #[tokio::test]
    async fn unreachable_endpoint_names_the_url_not_the_secret() {
        let source = TokenSource::new(Provider::ClientCredentials {
            token_url: "http://127.0.0.1:9/token".into(),
            client_id: "id".into(),
            client_secret: Secret::new("s3cret"),
            scope: None,
        });
        let e = source.token().await.unwrap_err().to_string();
        assert!(e.contains("http://127.0.0.1:9/token"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}

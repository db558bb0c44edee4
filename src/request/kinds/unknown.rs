//! Unknown (`unknown`): nothing, or more than one thing, recognisable was asked for.
//!
//! Not a kind a site can ask for (it is not in `RequestKind::ALL`): it has no wording, is never
//! applied, and goes to a person. It is here so that every kind, this one included, answers the
//! same questions (see `request::kinds`).

use super::kind::Kind;
use super::kind::Scope;
use super::kind::Strength;
use std::collections::BTreeMap;

pub(super) struct Unknown;

impl Kind for Unknown {
    fn name(&self) -> &'static str {
        "unknown"
    }

    fn title(&self) -> &'static str {
        "Request"
    }

    fn targets_account(&self) -> bool {
        false
    }

    fn names_among(&self) -> Scope {
        Scope::Organisation
    }

    /// Nothing names it: it is what is left when nothing else is named.
    fn block_wording(&self) -> Vec<String> {
        Vec::new()
    }

    fn wording(&self) -> Vec<(Strength, String)> {
        Vec::new()
    }

    /// Never asked: nothing is applied for it (`policy::needs_confirmation`).
    fn confirmation(&self, _target: &str, _fields: &BTreeMap<String, String>) -> String {
        self.title().to_owned()
    }
}

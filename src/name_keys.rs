//! The keys a person's name is compared by: accents folded, case, apostrophes, hyphens and
//! titles set aside. Pure, and the one definition both the stored keys (the store writes them
//! with every account) and the look-ups (`resolve`) use.

/// Titles dropped from a name before it is compared.
const TITLES: [&str; 9] = ["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame"];

/// The longest name compared (longer text is not a name anyone wrote).
pub(crate) const MAX_NAME_CHARS: usize = 120;

/// The folded words of a name: accents folded, lower case, apostrophes removed, hyphens and
/// other punctuation as spaces, titles dropped. Pure; the one definition both the stored keys
/// and the look-ups use.
pub fn name_words(name: &str) -> Vec<String> {
    let clipped: String = name.chars().take(MAX_NAME_CHARS).collect();
    let folded = deunicode::deunicode(&clipped).to_lowercase();
    let mut words = Vec::new();
    let mut word = String::new();
    for c in folded.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else if c == '\'' || c == '`' {
            // O'Neil, O’Neil (deunicode folds ’ to ') → oneil
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words.retain(|w| !TITLES.contains(&w.as_str()));
    words
}

/// A name without the titles before it ("Dr Tariq Aziz" → "Tariq Aziz", "Mrs. J. Smith" →
/// "J. Smith"), as written otherwise.
pub fn without_title(name: &str) -> String {
    let mut rest = name.trim();
    loop {
        let word = rest.split_whitespace().next().unwrap_or_default();
        let bare = word.trim_end_matches('.').to_lowercase();
        if rest.len() > word.len() && TITLES.contains(&bare.as_str()) {
            rest = rest.get(word.len()..).unwrap_or_default().trim_start();
        } else {
            return rest.to_owned();
        }
    }
}

/// The keys an account is found by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameKeys {
    /// Every word: `ravi gupta`.
    pub full: String,
    /// The first word: `ravi`.
    pub first: String,
    /// First initial and last word: `r gupta`.
    pub initial: String,
}

impl NameKeys {
    pub fn of(name: &str) -> NameKeys {
        let words = name_words(name);
        let full = words.join(" ");
        let first = words.first().cloned().unwrap_or_default();
        let initial = match (words.first(), words.last()) {
            (Some(f), Some(l)) if words.len() >= 2 => {
                format!(
                    "{} {l}",
                    f.chars().next().map(String::from).unwrap_or_default()
                )
            }
            _ => String::new(),
        };
        NameKeys {
            full,
            first,
            initial,
        }
    }
}

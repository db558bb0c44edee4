//! Prose → sentences of tokens. Words keep their spelling (for names); each sentence also has a
//! normalised copy (lower case, one space between words, `'`/`-` inside words as spaces,
//! addresses as one placeholder word) that the kind wording is matched against, with a map from
//! its byte offsets back to tokens. One pass over the text: linear in its length.

use crate::request::lines::ADDRESS;

/// The word an address becomes in the normalised copy.
pub const ADDRESS_WORD: &str = "someaddress";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok<'a> {
    /// Letters and digits, with `'`/`’`/`-` inside (O'Neil, Smith-Jones, can't).
    Word(&'a str),
    /// An address as written.
    Address(&'a str),
    /// One punctuation character; a line break is `'\n'`.
    Punct(char),
}

/// A sentence: its tokens, the normalised copy, and where each token starts in it.
#[derive(Debug, Clone)]
pub struct Sentence<'a> {
    pub toks: Vec<Tok<'a>>,
    pub norm: String,
    /// For each token, its byte range in `norm` (empty for punctuation).
    pub spans: Vec<(usize, usize)>,
    /// Whether the sentence ended with `?`.
    pub question_mark: bool,
}

impl Sentence<'_> {
    /// The token index at byte `offset` of `norm` (the token whose span contains it).
    pub fn tok_at(&self, offset: usize) -> usize {
        let i = self.spans.partition_point(|&(_, end)| end <= offset);
        i.min(self.toks.len().saturating_sub(1))
    }
}

/// Titles that end with a dot without ending the sentence.
const ABBREVIATIONS: [&str; 8] = ["mr", "mrs", "ms", "dr", "miss", "st", "mx", "prof"];

/// Splits prose into tokens.
pub fn tokens(text: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut addresses = ADDRESS.find_iter(text).peekable();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if let Some(a) = addresses.peek()
            && a.start() == i
        {
            out.push(Tok::Address(a.as_str()));
            let end = a.end();
            addresses.next();
            while chars.peek().is_some_and(|&(j, _)| j < end) {
                chars.next();
            }
            continue;
        }
        // An address that starts inside a word (rare: the regex found a later start) is skipped.
        while addresses.peek().is_some_and(|a| a.start() < i) {
            addresses.next();
        }
        if c.is_alphanumeric() {
            let start = i;
            let mut end = i;
            while let Some(&(j, d)) = chars.peek() {
                if addresses.peek().is_some_and(|a| a.start() == j) {
                    break;
                }
                let inner = matches!(d, '\'' | '’' | '-')
                    && text
                        .get(j + d.len_utf8()..)
                        .and_then(|rest| rest.chars().next())
                        .is_some_and(char::is_alphanumeric)
                    && j > start;
                if d.is_alphanumeric() || inner {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            if let Some(word) = text.get(start..end) {
                out.push(Tok::Word(word));
            }
        } else {
            chars.next();
            if !c.is_whitespace() || c == '\n' {
                out.push(Tok::Punct(c));
            }
        }
    }
    out
}

/// Splits tokens into sentences at `.`, `!`, `?`, `;` and blank lines. A dot after a title or
/// a single letter (an initial) does not end a sentence.
pub fn sentences(text: &str) -> Vec<Sentence<'_>> {
    let toks = tokens(text);
    let mut out = Vec::new();
    let mut current: Vec<Tok<'_>> = Vec::new();
    let mut newline_run = 0;
    for tok in toks {
        let end = match &tok {
            Tok::Punct('.') => !matches!(current.last(), Some(Tok::Word(w))
                if w.chars().count() == 1 || ABBREVIATIONS.contains(&w.to_lowercase().as_str())),
            Tok::Punct('!' | '?' | ';') => true,
            // A blank line ends a sentence, unless the sentence ends with `:` (a list under it:
            // "create accounts for:\n\nHannah Moss\nOliver Bennett").
            Tok::Punct('\n') => {
                newline_run >= 1
                    && !matches!(
                        current.iter().rev().find(|t| **t != Tok::Punct('\n')),
                        Some(Tok::Punct(':'))
                    )
            }
            _ => false,
        };
        newline_run = if tok == Tok::Punct('\n') {
            newline_run + 1
        } else {
            0
        };
        let question = tok == Tok::Punct('?');
        current.push(tok);
        if end {
            out.push(sentence(std::mem::take(&mut current), question));
        }
    }
    if !current.is_empty() {
        out.push(sentence(current, false));
    }
    out.retain(|s| s.toks.iter().any(|t| !matches!(t, Tok::Punct(_))));
    out
}

fn sentence(toks: Vec<Tok<'_>>, question_mark: bool) -> Sentence<'_> {
    let mut norm = String::with_capacity(toks.len() * 6);
    let mut spans = Vec::with_capacity(toks.len());
    for tok in &toks {
        let word = match tok {
            Tok::Word(w) => Some(w.to_lowercase().replace(['\'', '’', '-'], " ")),
            Tok::Address(_) => Some(ADDRESS_WORD.to_string()),
            Tok::Punct(_) => None,
        };
        match word {
            Some(w) => {
                if !norm.is_empty() {
                    norm.push(' ');
                }
                let start = norm.len();
                norm.push_str(&w);
                spans.push((start, norm.len()));
            }
            None => spans.push((norm.len(), norm.len())),
        }
    }
    Sentence {
        toks,
        norm,
        spans,
        question_mark,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_addresses_and_punctuation() {
        let toks = tokens("Mr O'Neil's e-mail: tom.smith@nhs.example, can't.");
        assert_eq!(
            toks,
            vec![
                Tok::Word("Mr"),
                Tok::Word("O'Neil's"),
                Tok::Word("e-mail"),
                Tok::Punct(':'),
                Tok::Address("tom.smith@nhs.example"),
                Tok::Punct(','),
                Tok::Word("can't"),
                Tok::Punct('.'),
            ]
        );
    }

    #[test]
    fn sentences_end_at_stops_but_not_after_titles_or_initials() {
        let s = sentences("Please unlock Mr. R. Gupta. Thanks!\n\nIs Joe ok?");
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].norm, "please unlock mr r gupta");
        assert!(s[2].question_mark);
        let s = sentences("reset the password for\nRavi Gupta please");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].norm, "reset the password for ravi gupta please");
    }

    #[test]
    fn offsets_map_back_to_tokens() {
        let s = &sentences("Unlock Joe's account, someone@x.example")[0];
        let at = s.norm.find("joe").unwrap_or_default();
        assert_eq!(s.toks[s.tok_at(at)], Tok::Word("Joe's"));
        assert!(s.norm.ends_with(ADDRESS_WORD));
    }
}

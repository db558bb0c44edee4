//! Names as sites write them and as imports carry them: the sanitiser (`text`) and the
//! folding that resolution looks names up by (`resolve`). Neither may panic, and each keeps
//! its promise: no unsafe character survives `clean`, keys are bounded and ASCII, a clipped
//! string is at most its limit, a defused cell never starts a formula.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postroom::resolve::{self, NameKeys, NameQuery};
use postroom::text;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let cleaned = text::clean(&s);
    assert!(!cleaned.chars().any(text::is_unsafe));
    let _ = text::name_problem(&cleaned);
    assert!(text::clip(&s, 40).chars().count() <= 40);
    let cell = text::csv_cell(&s);
    assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']));
    let keys = NameKeys::of(&s);
    assert!(keys.full.is_ascii() && keys.first.is_ascii() && keys.initial.is_ascii());
    let _ = NameQuery::of(&s);
    let _ = resolve::without_title(&s);
});

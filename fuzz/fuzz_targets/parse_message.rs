//! Raw bytes, as any sender can send them, through everything postroom does before it touches
//! the store: parse → screen → extract.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postroom::message;
use postroom::request::extract::{self, ExtractContext};
use postroom::screen::screen;

fuzz_target!(|raw: &[u8]| {
    let msg = message::parse(raw);
    assert_eq!(msg.size, raw.len());
    let _ = screen(&msg, "helpdesk@nhs.example");
    let ctx = ExtractContext {
        mailbox: msg.from.as_deref(),
        helpdesk: "helpdesk@nhs.example",
        reference_prefix: "HD",
    };
    let ex = extract::extract(&msg, &ctx);
    // Quoted history is never read as part of the request.
    assert!(!ex.new_text.lines().any(|l| l.trim_start().starts_with('>')));
});

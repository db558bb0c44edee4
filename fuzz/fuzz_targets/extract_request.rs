//! Request text: the first line is the subject, the rest the body of a synthetic message
//! (so the fuzzer spends its time in the request grammar, not in MIME).
#![no_main]

use libfuzzer_sys::fuzz_target;
use postroom::message::Message;
use postroom::request::extract::{self, ExtractContext, detect_kind, strip_quoted};

fuzz_target!(|input: &str| {
    let (subject, body) = input.split_once('\n').unwrap_or((input, ""));
    let stripped = strip_quoted(body);
    assert!(!stripped.lines().any(|l| l.trim_start().starts_with('>')));
    let _ = detect_kind(subject, &stripped);
    let msg = Message {
        subject: subject.to_owned(),
        text: body.to_owned(),
        from: Some("rosehill.care@nhs.example".to_owned()),
        ..Default::default()
    };
    let ctx = ExtractContext {
        mailbox: msg.from.as_deref(),
        helpdesk: "helpdesk@nhs.example",
        reference_prefix: "HD",
    };
    let ex = extract::extract(&msg, &ctx);
    assert_eq!(ex.new_text, stripped);
});

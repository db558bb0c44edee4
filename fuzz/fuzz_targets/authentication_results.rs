//! `Authentication-Results` values (one per line) as a sender could plant them, parsed and
//! assessed as if stamped under our boundary's id. Nothing a sender writes below our own
//! header may prove anything.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postroom::message::Message;
use postroom::trust::{Method, TrustConfig, TrustMode, assess, parse_authentication_results};

fuzz_target!(|input: &str| {
    let mut headers = vec![(
        "authentication-results".to_owned(),
        "mx.nhs.example; dmarc=fail header.from=nhs.example".to_owned(),
    )];
    for line in input.lines() {
        let _ = parse_authentication_results(line);
        headers.push(("authentication-results".to_owned(), line.to_owned()));
    }
    let msg = Message {
        from: Some("rosehill.care@nhs.example".to_owned()),
        headers,
        ..Default::default()
    };
    let cfg = TrustConfig {
        modes: vec![TrustMode::AuthenticationResults],
        authserv_ids: vec!["mx.nhs.example".to_owned()],
        ..Default::default()
    };
    // Our own boundary's header is on top and says fail: whatever follows is forged.
    let ev = assess(&msg, &cfg, &[]);
    assert!(
        !ev.proven,
        "forged header below ours proved: {}",
        ev.summary
    );
    // And the fuzzed headers alone, read as our own (every branch of the assessment).
    let planted = Message {
        headers: msg.headers[1..].to_vec(),
        ..msg
    };
    let _ = assess(
        &planted,
        &TrustConfig {
            accept: vec![Method::Dmarc, Method::Dkim, Method::Spf],
            ..cfg
        },
        &[],
    );
});

//! `postroom run` with a backlog: 1,000 messages waiting before it starts. All are processed
//! and filed, in bounded batches, with memory that does not grow with the backlog.

use crate::common::mailstack::MailStack;
use crate::daemon_support::{Site, eventually};
use std::time::{Duration, Instant};

const MESSAGES: usize = 1000;
/// Each message carries this much body, so the backlog (~100 MB) is far more than the memory
/// bound below: holding it all at once would fail the test.
const MESSAGE_BYTES: usize = 100 * 1024;
const BATCH: usize = 100;
/// Peak RSS of the debug binary (baseline ~20–30 MB).
const MAX_RSS_KB: u64 = 150 * 1024;

#[tokio::test]
async fn a_backlog_of_1000_is_processed_in_batches_with_flat_memory() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[("imap", "batch_size", &BATCH.to_string())]);

    // One IMAP session for the whole backlog (the helper would log in per message).
    let started = Instant::now();
    {
        let mut s = stack.imap_login(&site.helpdesk).await.unwrap();
        for _ in 0..MESSAGES {
            let (_, raw) = site.ignored_message(MESSAGE_BYTES);
            s.append("INBOX", None, None, &raw).await.unwrap();
        }
        let _ = s.logout().await;
    }
    eprintln!("appended {MESSAGES} in {:?}", started.elapsed());
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, MESSAGES);

    let started = Instant::now();
    let daemon = site.start();
    eventually("the backlog is filed", Duration::from_secs(150), || async {
        stack.folder_count(&site.helpdesk, "postroom/ignored").await == MESSAGES
    })
    .await;
    eprintln!("processed {MESSAGES} in {:?}", started.elapsed());
    assert_eq!(stack.folder_count(&site.helpdesk, "INBOX").await, 0);

    let peak = daemon.peak_rss_kb();
    eprintln!("peak RSS {} MB", peak / 1024);
    let log = daemon.stop();
    assert!(peak < MAX_RSS_KB, "peak RSS {peak} kB");
    assert_eq!(
        log.matches("processed outcome=").count(),
        MESSAGES,
        "each message once"
    );
    // Moves are grouped per batch and folder: one UID MOVE per batch here, not per message.
    let moves = log.lines().filter(|l| l.contains(" moved ")).count();
    assert!(moves <= MESSAGES / BATCH + 2, "{moves} moves");
    assert!(moves >= MESSAGES / BATCH, "{moves} moves");
}

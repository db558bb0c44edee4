//! Every real-world message in ../shared/corpus (bounces, Outlook, broken MIME, odd charsets)
//! goes through `process --dry-run` without a panic and gets an outcome.

use crate::support::Instance;
use std::path::{Path, PathBuf};

fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_message(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(
        out.len() > 500,
        "the shared corpus was not found at {} ({} files)",
        root.display(),
        out.len()
    );
    out
}

/// Everything but the corpus's own documentation and licence files.
fn is_message(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let path = p.to_string_lossy();
    !(name.ends_with(".md")
        || name.ends_with(".tsv")
        || name.starts_with("README")
        || name.contains("LICENSE")
        || path.contains("/LICENSES/"))
}

#[test]
fn every_corpus_message_gets_an_outcome() {
    run_corpus(Instance::with_directory(""));
}

/// With `[trust] mode = "none"` nothing is proven or refused on evidence: still no panic, an
/// outcome for each, and nothing applied (no corpus message comes from a registered mailbox).
#[test]
fn every_corpus_message_gets_an_outcome_when_trusting_everything() {
    run_corpus(Instance::import_fixture_directory(Instance::configured(
        "[trust]\nmode = \"none\"\n",
        "",
    )));
}

fn run_corpus(i: Instance) {
    let files = corpus_files();
    for chunk in files.chunks(200) {
        let refs: Vec<&Path> = chunk.iter().map(PathBuf::as_path).collect();
        let out = i.process(&refs, true);
        assert_eq!(out.len(), chunk.len());
        for v in out {
            let o = v["outcome"]
                .as_str()
                .unwrap_or_else(|| panic!("no outcome: {v}"));
            assert!(
                [
                    "applied",
                    "rejected",
                    "needs_review",
                    "ignored",
                    "duplicate"
                ]
                .contains(&o),
                "{v}"
            );
            // Nothing from outside our directory can be applied.
            assert_ne!(o, "applied", "{v}");
        }
    }
}

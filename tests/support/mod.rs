//! Shared by the integration tests: a throw-away postroom (config + a database of its own in a
//! temp dir) driven through the real binary, exactly as scripts call it. The database is a
//! SQLite file, or a fresh PostgreSQL database when `POSTROOM_TEST_BACKEND=postgres` (see
//! `tests/common/testdb.rs`).

#![allow(dead_code)]

pub use crate::common::testdb;

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub const HELPDESK: &str = "helpdesk@nhs.example";

/// The fixtures carry `Authentication-Results: mail.nhs.example; … dmarc=pass`: trust that
/// boundary unless a test says otherwise (a later `[trust]` in `extra` would clash, so tests
/// of trust itself use `Instance::with_config`).
pub const TRUST: &str = "[trust]\nauthserv_id = \"mail.nhs.example\"\n";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join("requests").join(name)
}

pub struct Instance {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: testdb::TestDb,
}

impl Instance {
    /// A fresh instance trusting the fixtures' boundary; `extra` is appended to the config.
    pub fn new(extra: &str) -> Instance {
        Instance::configured(TRUST, extra)
    }

    /// A fresh instance with its own `[trust]` section (`trust` may be empty: the default).
    pub fn configured(trust: &str, extra: &str) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("postroom.toml");
        let db = testdb::TestDb::new(dir.path());
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"{}\"\n\n[helpdesk]\naddress = \"{HELPDESK}\"\nname = \"Test Helpdesk\"\nreference_prefix = \"HD\"\n{trust}{extra}\n",
                db.url
            ),
        )
        .unwrap();
        Instance { dir, config, db }
    }

    /// An instance with the fixture directory imported.
    pub fn with_directory(extra: &str) -> Instance {
        Instance::import_fixture_directory(Instance::new(extra))
    }

    pub fn import_fixture_directory(i: Instance) -> Instance {
        let out = i.ok(&[
            "directory",
            "import",
            fixtures().join("directory.csv").to_str().unwrap(),
        ]);
        assert!(out.contains("\"accounts\""), "{out}");
        i
    }

    /// The `[database]` settings of this instance's config, for tests that look at the
    /// database through the Store.
    pub fn database(&self) -> postroom::config::DatabaseConfig {
        postroom::config::Config::load(&self.config)
            .unwrap()
            .database
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("postroom").unwrap();
        c.arg("--config")
            .arg(&self.config)
            .env_remove("POSTROOM_CONFIG")
            .env_remove("POSTROOM_DATABASE_URL");
        c
    }

    /// Run, expect success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "postroom {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `process` files; one JSON value per line.
    pub fn process(&self, files: &[&Path], dry_run: bool) -> Vec<Value> {
        let mut args: Vec<String> = vec!["process".into()];
        if dry_run {
            args.push("--dry-run".into());
        }
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
            .collect()
    }

    pub fn process_fixture(&self, name: &str) -> Value {
        let f = fixture(name);
        let mut v = self.process(&[f.as_path()], false);
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    pub fn export(&self) -> String {
        self.ok(&["directory", "export"])
    }

    pub fn audit(&self) -> Vec<Value> {
        self.ok(&["audit"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The export line for an account in a mailbox, if any (`mailbox` empty: no membership).
    pub fn export_row(&self, mailbox: &str, account: &str) -> Option<String> {
        self.export()
            .lines()
            .find(|l| {
                let cols: Vec<&str> = l.split(',').collect();
                cols.get(1) == Some(&mailbox) && cols.get(2) == Some(&account)
            })
            .map(str::to_owned)
    }
}

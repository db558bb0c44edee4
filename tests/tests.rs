//! postroom's integration tests, as one binary (one link instead of one per file, as ripgrep
//! does): a module per feature, and the support code they share.
//!
//! Run one module with `cargo test --test integration -- MODULE::` (e.g. `trust::`); the
//! project's test command, `scripts/test`, runs them all on SQLite, then those that store
//! something again on PostgreSQL.

// Support code.
mod common;
mod daemon_support;
mod support;
mod web_support;

// Tests, by feature.
mod audit_chain;
mod audit_daemon;
mod audit_report;
mod bench_harness;
mod cli_ops;
mod concurrency;
mod continuity;
mod corpus;
mod daemon_db_outage;
mod daemon_faults;
mod daemon_flow;
mod daemon_instances;
mod daemon_lmtp;
mod daemon_load;
mod daemon_loop;
mod directory_at;
mod dkim_trust;
mod eval;
mod hardening;
mod jobs;
mod ldapstack_selftest;
mod mailbox_counts;
mod mailstack_selftest;
mod oauth_signin;
mod ops;
mod outbox_smtp;
mod process;
mod properties;
mod provision_ad;
mod provision_command;
mod provision_ldap;
mod resolve;
mod review;
mod trust;
mod web_a11y;
mod web_browser;
mod web_load;
mod web_pages;
mod web_postgres;
mod web_queue;
mod web_roles;
mod web_signin;
mod web_team;

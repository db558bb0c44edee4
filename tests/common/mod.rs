//! Support code shared by the integration tests: `mod common;` in a test file.
//! Each test binary uses only part of it, hence no dead-code warnings here.
#![allow(dead_code)]

pub mod adstack;
pub mod ldapstack;
pub mod mailstack;
pub mod testdb;

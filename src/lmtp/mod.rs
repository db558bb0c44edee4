//! The LMTP listener (RFC 2033): the MTA delivers the helpdesk address to postroom itself,
//! beside (or instead of) the IMAP watcher reading it from a mailbox.
//!
//! - [`session`]: the protocol, on any byte stream, with its bounds.

pub mod session;

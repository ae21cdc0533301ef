//! What the sessions service and `sessions check` share, defined once so the two
//! cannot disagree on where the sessions are in Redis and how they are laid out:
//!
//! - [`settings`]: a row of the settings table (environment variable, kind, default,
//!   meaning), reading one from the environment, and the error naming it;
//!   [`settings::redis`] has the Redis rows (URL list, mode, credentials, TLS files,
//!   key prefix) and reads them together;
//! - [`connect`]: those settings as the redis crate's connection settings — a URL
//!   with the credentials applied, a node found at an address, a client with the TLS
//!   material — and a URL with its password masked for printing;
//! - [`keys`]: the key layout — the buckets, the bucket of a user and of a session
//!   id, the key names and the rule for the prefix.
//!
//! No I/O besides opening the TLS files the settings name.

pub mod connect;
pub mod keys;
pub mod settings;

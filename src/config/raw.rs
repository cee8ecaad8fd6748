//! The file as typed: serde structures that mirror `supervisor.toml`, with spans for errors.
//! (Owned by the config work; see resolve.rs for meaning.)

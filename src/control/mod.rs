//! The control socket: how users and tools talk to a running holden.
//!
//! - `protocol`: the wire format (newline-delimited JSON requests, responses, events) and its
//!   parser; `docs/control-protocol.md` documents it for users.
//! - `server`: the socket inside the supervisor's loop: accept, authorize by peer uid, read,
//!   parse, buffer replies and events, never block.
//! - `client`: every client command of the CLI (`status`, `start`, ..., `logs`).
//! - `table`: how `status` and `monitor` render programs for people.
//!
//! What each request means (starting, stopping, reloading) is the supervisor's; this module
//! only carries requests in and answers out.

pub mod client;
pub mod protocol;
pub mod server;
pub mod table;

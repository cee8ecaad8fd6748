//! The control socket: how users and tools talk to a running holden.
//!
//! - `protocol`: the wire format (newline-delimited JSON requests, responses, events) and its
//!   parser; `docs/control-protocol.md` documents it for users.
//! - `server`: the socket inside the supervisor's loop: accept, authorize by peer uid, read,
//!   parse, buffer replies and events, never block.
//! - `client`: a typed client connection (connect, send a request, read replies and events);
//!   the commands that use it are `cli`'s.
//!
//! What each request means (starting, stopping, reloading) is the supervisor's; this module
//! only carries requests in and answers out.

pub mod client;
pub mod protocol;
pub mod server;

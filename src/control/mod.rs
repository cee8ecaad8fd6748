//! The control socket: protocol, server side in the supervisor's loop, and the CLI client.

pub mod client;

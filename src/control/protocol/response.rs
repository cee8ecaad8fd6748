//! What holden sends back: a response per request (`ok` and a reply, or an error with its
//! stable code), and events to a connection that watches.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::{LogPaths, MAX_REQUEST_LINE, ProgramStatus, ReloadSummary};

/// The payload of a successful response, by request:
///
/// | request | reply |
/// |---|---|
/// | status, watch | `Status` |
/// | start, stop, restart, signal | `Targets` (the programs acted on) or `Done` |
/// | reload | `Reload` |
/// | log_paths | `LogPaths` |
/// | constrain, add, remove, reopen, shutdown | `Done` |
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Status { programs: Vec<ProgramStatus> },
    Targets { targets: Vec<String> },
    Reload(ReloadSummary),
    LogPaths { logs: LogPaths },
    Done {},
}

/// One response line: `{"ok":true, ...reply}` or `{"ok":false,"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Ok(Reply),
    Err(ErrorBody),
}

impl Response {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response::Err(ErrorBody::new(code, message))
    }

    /// The response as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("a response always serializes");
        v.push(b'\n');
        v
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct OkWire<'a> {
            ok: bool,
            #[serde(flatten)]
            reply: &'a Reply,
        }
        #[derive(Serialize)]
        struct ErrWire<'a> {
            ok: bool,
            error: &'a ErrorBody,
        }
        match self {
            Response::Ok(reply) => OkWire { ok: true, reply }.serialize(s),
            Response::Err(error) => ErrWire { ok: false, error }.serialize(s),
        }
    }
}

/// Read in one pass into typed fields (no `serde_json::Value` tree in between: a status
/// reply with hundreds of programs is the client's main cost after process start). Unknown
/// fields are ignored; the fields present pick the reply, as `Reply`'s table says.
impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            ok: Option<bool>,
            error: Option<ErrorBody>,
            programs: Option<Vec<ProgramStatus>>,
            targets: Option<Vec<String>>,
            added: Option<Vec<String>>,
            removed: Option<Vec<String>>,
            changed: Option<Vec<String>>,
            logs: Option<LogPaths>,
        }
        let w = Wire::deserialize(d)?;
        let ok =
            w.ok.ok_or_else(|| de::Error::custom("a response has \"ok\": true or false"))?;
        if !ok {
            return w
                .error
                .map(Response::Err)
                .ok_or_else(|| de::Error::missing_field("error"));
        }
        let reply = if let Some(programs) = w.programs {
            Reply::Status { programs }
        } else if let Some(targets) = w.targets {
            Reply::Targets { targets }
        } else if let Some(added) = w.added {
            Reply::Reload(ReloadSummary {
                added,
                removed: w.removed.ok_or_else(|| de::Error::missing_field("removed"))?,
                changed: w.changed.ok_or_else(|| de::Error::missing_field("changed"))?,
            })
        } else if let Some(logs) = w.logs {
            Reply::LogPaths { logs }
        } else {
            Reply::Done {}
        };
        Ok(Response::Ok(reply))
    }
}

/// An error response's body: a stable code for programs, a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
        }
    }

    pub fn too_large() -> ErrorBody {
        ErrorBody::new(
            ErrorCode::TooLarge,
            format!("the request is longer than {MAX_REQUEST_LINE} bytes; closing the connection"),
        )
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Stable error codes. New codes may appear in later versions; a client reads one it does
/// not know as `Other` and shows the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not UTF-8, not JSON, not an object, no `cmd`, wrong or unknown fields.
    BadRequest,
    /// A `cmd` this version does not know.
    UnknownCommand,
    /// A `v` other than [`PROTOCOL_VERSION`].
    UnsupportedVersion,
    /// A request line over [`MAX_REQUEST_LINE`] bytes; the connection is closed.
    TooLarge,
    /// The peer's uid is not root, holden's own, or in any of the grant lists; the connection
    /// is closed.
    NotPermitted,
    /// Too many connections at once; the connection is closed.
    Busy,
    /// No complete request within the idle timeout; the connection is closed.
    Timeout,
    /// A value that cannot be right: a bad signal, name, limit or path.
    InvalidArgument,
    /// No program by that name.
    UnknownProgram,
    /// `add` of a name that exists.
    AlreadyExists,
    /// `remove` of a program from the config file.
    NotTransient,
    /// `signal` or `constrain` of a program that has no running process.
    NotRunning,
    /// `reload` of a file that does not parse or validate; nothing was changed.
    InvalidConfig,
    /// Limits were asked for where cgroups cannot be used.
    CgroupsUnavailable,
    /// holden is shutting down and takes no new work.
    ShuttingDown,
    /// The request was valid but carrying it out failed (a cgroup write, a log reopen).
    Failed,
    /// The peer may use the socket but not for this request (an operate or admin request
    /// from a peer that lacks the grant); the connection stays open.
    Forbidden,
    /// A code from a newer holden.
    #[serde(other)]
    Other,
}

/// A state change, pushed to every connection that asked to `watch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `{"event":"transition","name":"web","from":"STARTING","to":"RUNNING","reason":null,
    /// "since":1763884860.12,"pid":4242}`: the same change as holden's log line.
    Transition {
        name: String,
        from: String,
        to: String,
        reason: Option<String>,
        /// Unix time of the transition.
        since: f64,
        /// The main process after the transition, if any.
        pid: Option<i32>,
    },
    /// A program was added (`holden add`, reload).
    Added { name: String },
    /// A program was forgotten (`holden remove`, reload).
    Removed { name: String },
}

impl Event {
    /// The event as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("an event always serializes");
        v.push(b'\n');
        v
    }

    pub fn name(&self) -> &str {
        match self {
            Event::Transition { name, .. } | Event::Added { name } | Event::Removed { name } => name,
        }
    }
}

/// One line read by a client: a response to its request, or an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Response(Response),
    Event(Event),
}

impl Incoming {
    /// An event has an `"event"` key. The probe skips everything else without building it.
    pub fn parse(line: &str) -> Result<Incoming, serde_json::Error> {
        #[derive(Deserialize)]
        struct Probe {
            event: Option<de::IgnoredAny>,
        }
        if serde_json::from_str::<Probe>(line)?.event.is_some() {
            serde_json::from_str(line).map(Incoming::Event)
        } else {
            serde_json::from_str(line).map(Incoming::Response)
        }
    }
}

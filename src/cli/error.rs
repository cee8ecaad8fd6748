//! The one table from what went wrong to what the user sees: the exit code (SPEC "Exit codes":
//! 0 success, 1 a runtime failure, 2 a usage or config error, nothing was started) and the
//! text on stderr. Modules below carry typed errors up to here, each keeping its source.

use std::fmt;

use crate::config::ConfigError;
use crate::control::client::ClientError;
use crate::control::protocol::ErrorCode;
use crate::error::Failure;
use crate::import::ImportError;
use crate::supervisor::RunError;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sentence and its code, built at the edge from user input or by a command.
    #[error("{}", .0.message)]
    Failure(Failure),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Run(#[from] RunError),
    /// stdout was closed by its reader (`holden status | head -1`): stop quietly.
    #[error("stdout closed")]
    StdoutClosed,
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        Error::Failure(f)
    }
}

/// What a command returns: its exit code on success (0, or a program's status for `spawn`).
pub type Result<T = u8> = std::result::Result<T, Error>;

/// A usage error (exit 2) built at the edge.
pub fn usage(message: impl Into<String>) -> Error {
    Error::Failure(Failure::usage(message))
}

/// A runtime failure (exit 1) built at the edge.
pub fn runtime(message: impl Into<String>) -> Error {
    Error::Failure(Failure::runtime(message))
}

impl Error {
    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Failure(f) => f.code,
            Error::Client(e) => client_code(e),
            Error::Config(_) => 2,
            Error::Import(ImportError::NotFound | ImportError::Input(_)) => 2,
            Error::Import(ImportError::Write { .. }) => 1,
            Error::Run(RunError::Config(_) | RunError::Logging(_)) => 2,
            Error::Run(RunError::Supervisor(_)) => 1,
            Error::StdoutClosed => 0,
        }
    }

    /// What goes to stderr: one `holden: sentence`, or the problems of a file one
    /// `file:line: ...` per line as they are, or nothing.
    pub fn report(&self) -> Option<Report<'_>> {
        match self {
            Error::StdoutClosed => None,
            Error::Config(_) | Error::Run(RunError::Config(_)) | Error::Import(ImportError::Input(_)) => Some(Report {
                error: self,
                prefix: false,
            }),
            _ => Some(Report {
                error: self,
                prefix: true,
            }),
        }
    }
}

/// An error as the lines for stderr.
pub struct Report<'a> {
    error: &'a Error,
    prefix: bool,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix {
            write!(f, "holden: ")?;
        }
        write!(f, "{}", self.error)
    }
}

fn client_code(e: &ClientError) -> u8 {
    match e {
        ClientError::Connect { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput => 2,
        ClientError::Refused { body, .. } => match body.code {
            ErrorCode::InvalidConfig
            | ErrorCode::InvalidArgument
            | ErrorCode::BadRequest
            | ErrorCode::UnknownCommand => 2,
            ErrorCode::NotPermitted
            | ErrorCode::Forbidden
            | ErrorCode::UnsupportedVersion
            | ErrorCode::TooLarge
            | ErrorCode::Busy
            | ErrorCode::Timeout
            | ErrorCode::UnknownProgram
            | ErrorCode::AlreadyExists
            | ErrorCode::NotTransient
            | ErrorCode::NotRunning
            | ErrorCode::CgroupsUnavailable
            | ErrorCode::ShuttingDown
            | ErrorCode::Failed
            | ErrorCode::Other => 1,
        },
        ClientError::Connect { .. }
        | ClientError::Send { .. }
        | ClientError::Read { .. }
        | ClientError::LineTooLong { .. }
        | ClientError::Unreadable { .. }
        | ClientError::Timeout { .. }
        | ClientError::Closed { .. } => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::ErrorBody;
    use std::path::PathBuf;

    fn refused(code: ErrorCode) -> Error {
        Error::Client(ClientError::Refused {
            path: PathBuf::from("/run/h.sock"),
            body: ErrorBody::new(code, "why"),
        })
    }

    #[test]
    fn each_error_has_specs_exit_code_and_its_text() {
        assert_eq!(usage("bad flag").exit_code(), 2);
        assert_eq!(runtime("it broke").exit_code(), 1);
        assert_eq!(refused(ErrorCode::InvalidArgument).exit_code(), 2);
        assert_eq!(refused(ErrorCode::UnknownProgram).exit_code(), 1);
        assert_eq!(refused(ErrorCode::UnknownProgram).to_string(), "why");
        assert_eq!(
            refused(ErrorCode::Forbidden).to_string(),
            "permission denied on /run/h.sock: why"
        );
        let long = Error::Client(ClientError::Connect {
            path: PathBuf::from("/x"),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
        assert_eq!(long.exit_code(), 2);
        assert_eq!(Error::StdoutClosed.exit_code(), 0);
        assert!(Error::StdoutClosed.report().is_none());
    }

    #[test]
    fn sentences_get_the_prefix_and_file_problems_do_not() {
        assert_eq!(usage("bad flag").report().unwrap().to_string(), "holden: bad flag");
        let input = Error::Import(ImportError::Input(vec![]));
        assert_eq!(input.exit_code(), 2);
        assert!(!input.report().unwrap().to_string().starts_with("holden: "));
    }
}

//! A sentence with its exit code (`Failure`), for errors that are words from the start, and the
//! one way an OS error becomes words (`os_text`, `errno_text`).
//!
//! Modules return typed errors that keep their source; `cli::error` is the one table from an
//! error to its exit code (SPEC "Exit codes": 0 success, 1 a runtime failure, 2 a usage or
//! config error, nothing was started) and the text on stderr.

use std::io;

/// What a command reports when it did not succeed: the exit code and one sentence for stderr.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Exit 1: a runtime failure.
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    /// Exit 2: a usage or config error; nothing was started.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

/// An OS error as a sentence part, in lower case and without std's " (os error N)":
/// "no such file or directory", "permission denied". Errors that carry no errno keep their text.
pub fn os_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => errno_text(errno),
        None => e.to_string(),
    }
}

/// An errno as words: "no such file or directory" for 2.
pub fn errno_text(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = text.find(" (os error").map_or(text.as_str(), |i| &text[..i]);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {errno}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_words_in_lower_case_without_the_number() {
        assert_eq!(errno_text(2), "no such file or directory");
        assert_eq!(errno_text(13), "permission denied");
        assert_eq!(os_text(&io::Error::from_raw_os_error(21)), "is a directory");
        assert_eq!(os_text(&io::Error::other("Custom text")), "Custom text");
    }
}

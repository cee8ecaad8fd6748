//! What is wrong with a config file, kept structured until it is printed.
//!
//! Each problem knows its file, its place (line and column), the key, and what was found and
//! what was expected (or a sentence where that does not fit). `Display` gives the one line
//! per problem that `holden check` prints: `FILE:LINE:COL: KEY: found ..., expected ...`.

use std::fmt;

/// What is wrong with one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    /// Printed `found FOUND, expected EXPECTED`.
    Found { found: String, expected: String },
    /// A sentence of its own: a TOML syntax error, a file that cannot be read.
    Sentence(String),
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::Found { found, expected } => write!(f, "found {found}, expected {expected}"),
            Detail::Sentence(s) => f.write_str(s),
        }
    }
}

/// A place in a file: 1-based line, and column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// One problem of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file as the user named it.
    pub file: String,
    /// Where in the file; None for a problem with the file as a whole, whose `detail` is then
    /// a sentence that names the file itself.
    pub at: Option<LineCol>,
    /// Dotted key path like `programs.web.stop_timeout`; empty when there is none (a TOML
    /// syntax error, the file as a whole).
    pub key: String,
    pub detail: Detail,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = self.at {
            write!(f, "{}:{}:{}: ", self.file, at.line, at.column)?;
            if !self.key.is_empty() {
                write!(f, "{}: ", self.key)?;
            }
        }
        write!(f, "{}", self.detail)
    }
}

/// Every problem found in one config file, in file order; printed one per line.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// Each problem as the line it prints as.
    #[cfg(test)]
    pub fn lines(&self) -> Vec<String> {
        self.problems.iter().map(ToString::to_string).collect()
    }

    /// A problem with the file as a whole (it cannot be read, say): `sentence` names the file.
    pub fn whole_file(file: &str, sentence: String) -> ConfigError {
        ConfigError {
            problems: vec![ConfigProblem {
                file: file.to_string(),
                at: None,
                key: String::new(),
                detail: Detail::Sentence(sentence),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(at: Option<LineCol>, key: &str, detail: Detail) -> ConfigProblem {
        ConfigProblem {
            file: "sv.toml".into(),
            at,
            key: key.into(),
            detail,
        }
    }

    #[test]
    fn each_problem_prints_as_one_line_of_place_key_and_detail() {
        let at = Some(LineCol { line: 3, column: 14 });
        let found = Detail::Found {
            found: "\"10\"".into(),
            expected: "a duration like \"10s\"".into(),
        };
        let e = ConfigError {
            problems: vec![
                problem(at, "programs.web.stop_timeout", found),
                problem(at, "", Detail::Sentence("invalid TOML: oops".into())),
                problem(None, "", Detail::Sentence("cannot read the config file sv.toml".into())),
            ],
        };
        assert_eq!(
            e.to_string(),
            "sv.toml:3:14: programs.web.stop_timeout: found \"10\", expected a duration like \"10s\"\n\
             sv.toml:3:14: invalid TOML: oops\n\
             cannot read the config file sv.toml"
        );
    }
}

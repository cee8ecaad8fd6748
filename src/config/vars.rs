//! `${VAR}` in config values: holden's own environment, read when the file is loaded
//! (`check`, `run`, `reload`).
//!
//! The syntax, kept to what is unambiguous in a TOML string and in a command line that still
//! has to be split into words:
//!
//! - `${NAME}`: the value of NAME; unset is an error.
//! - `${NAME:-default}`: the value of NAME, or `default` when NAME is unset or empty (the
//!   shell's `:-`). The default is taken literally up to the first `}`: no nesting.
//! - `$$`: a literal `$`.
//! - A `$` followed by anything else (or nothing) is a literal `$`, so `sh -c 'echo $HOME'`
//!   keeps working and the shell, not holden, expands `$HOME`.
//!
//! NAME is a shell variable name: `[A-Za-z_][A-Za-z0-9_]*`. The result is never expanded
//! again: a value with a `$` in it stays as it is. This reads back exactly what
//! `import::expand`'s `template()` writes (it doubles a `$` only where holden would otherwise
//! see `$$` or `${`).

/// Why a value cannot be expanded. Each is one sentence fragment for `found ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarError {
    /// `${NAME}` with NAME unset and no default.
    Unset(String),
    /// `${` without its `}`.
    Unclosed,
    /// `${...}` whose inside is not `NAME` or `NAME:-default`.
    BadName(String),
    /// NAME is set, but not to UTF-8 text.
    NotText(String),
}

impl std::fmt::Display for VarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarError::Unset(name) => write!(f, "${{{name}}}, but {name} is not set in holden's environment"),
            VarError::Unclosed => write!(f, "a ${{ without its closing }}"),
            VarError::BadName(inner) => write!(f, "${{{inner}}}, which is not ${{NAME}} or ${{NAME:-default}}"),
            VarError::NotText(name) => write!(f, "${{{name}}}, but {name} is not UTF-8 text"),
        }
    }
}

/// What a config value with a `$` problem is expected to be, for every expanded key.
pub const EXPECTED: &str = "a set variable, a default like ${NAME:-value}, or $$ for a literal $ (holden expands ${NAME} from its own environment)";

/// What holden's own environment holds for `name`.
pub fn process_env(name: &str) -> Result<Option<String>, VarError> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|_| VarError::NotText(name.to_string())),
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expand `s` with `lookup` as the environment.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Result<Option<String>, VarError>) -> Result<String, VarError> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let close = inner.find('}').ok_or(VarError::Unclosed)?;
            let body = &inner[..close];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            if !is_name(name) {
                return Err(VarError::BadName(body.to_string()));
            }
            match (lookup(name)?, default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(VarError::Unset(name.to_string())),
            }
            rest = &inner[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `s` written so that `expand` gives it back unchanged, for `holden check`'s rendering of
/// resolved values: a run of `$` is doubled whole when it would be read otherwise (two or more,
/// or one before `{`), so `$$` shows as `$$$$` rather than `$$$`; a lone `$` stays.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut run = 1;
        while chars.next_if_eq(&'$').is_some() {
            run += 1;
        }
        let double = run > 1 || chars.peek() == Some(&'{');
        for _ in 0..run * if double { 2 } else { 1 } {
            out.push('$');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Result<Option<String>, VarError> {
        Ok(match name {
            "HOME" => Some("/home/me".into()),
            "EMPTY" => Some(String::new()),
            "ARGS" => Some("-v --port 80".into()),
            "DOLLAR" => Some("a${HOME}$$b".into()),
            _ => None,
        })
    }

    fn x(s: &str) -> Result<String, VarError> {
        expand(s, &env)
    }

    #[test]
    fn variables_defaults_and_literal_dollars() {
        assert_eq!(x("${HOME}/bin").unwrap(), "/home/me/bin");
        assert_eq!(x("a${HOME}b${HOME}").unwrap(), "a/home/meb/home/me");
        assert_eq!(x("${NOPE:-/tmp}").unwrap(), "/tmp");
        assert_eq!(x("${NOPE:-}").unwrap(), "");
        assert_eq!(x("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(x("${EMPTY}").unwrap(), "");
        assert_eq!(x("${HOME:-d}").unwrap(), "/home/me");
        assert_eq!(x("${NOPE:-a b:-c}").unwrap(), "a b:-c");
        assert_eq!(x("$$").unwrap(), "$");
        assert_eq!(x("$${HOME}").unwrap(), "${HOME}");
        assert_eq!(x("$$$${HOME}").unwrap(), "$${HOME}");
        assert_eq!(x("$$${HOME}").unwrap(), "$/home/me");
        assert_eq!(x("echo $HOME $1 $").unwrap(), "echo $HOME $1 $");
        assert_eq!(x("cost: 5$").unwrap(), "cost: 5$");
        assert_eq!(x("plain").unwrap(), "plain");
        // The value is not expanded again.
        assert_eq!(x("${DOLLAR}").unwrap(), "a${HOME}$$b");
        assert_eq!(x("${ARGS}").unwrap(), "-v --port 80");
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(x("${NOPE}"), Err(VarError::Unset("NOPE".into())));
        assert_eq!(x("a ${HOME"), Err(VarError::Unclosed));
        assert_eq!(x("${}"), Err(VarError::BadName(String::new())));
        assert_eq!(x("${1X}"), Err(VarError::BadName("1X".into())));
        assert_eq!(x("${A B}"), Err(VarError::BadName("A B".into())));
        assert_eq!(x("${A-b}"), Err(VarError::BadName("A-b".into())));
        assert_eq!(
            VarError::Unset("NOPE".into()).to_string(),
            "${NOPE}, but NOPE is not set in holden's environment"
        );
    }

    #[test]
    fn escape_reads_back_unchanged() {
        assert_eq!(escape("echo $$ $HOME ${X} $"), "echo $$$$ $HOME $${X} $");
        for s in ["", "$", "$$", "${HOME}", "a$b", "x$", "$${", "$}{$", "${NOPE:-x}$$$"] {
            assert_eq!(x(&escape(s)).unwrap(), s, "{s:?} -> {:?}", escape(s));
        }
    }
}

//! supervisord's expansions: a value is formatted with Python's `value % expansions`, so
//! `%(name)s`, `%(name)d`, `%(name)02d` and `%%` are the syntax. The result is kept as pieces
//! rather than text, because two kinds of value must not be frozen at import time:
//!
//! - `%(process_num)d` of a program with `numprocs > 1` differs per instance and becomes
//!   holden's `{index}` / `{index:02}`;
//! - `%(ENV_X)s` taken from supervisord's own environment becomes holden's `${X}`, read from
//!   holden's environment when it loads the file, as supervisord read it when it loaded its own
//!   (and so no secret from the importer's shell is written into the new file).

use std::fmt::Write as _;

/// A part of an expanded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// The instance index, zero-padded to `width` digits when given.
    Index {
        width: Option<usize>,
    },
    /// An environment variable of the process that will read the config.
    Env(String),
}

/// What a name expands to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Pieces(Vec<Piece>),
    Int(i64),
}

/// An expanded value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expanded(pub Vec<Piece>);

impl Expanded {
    fn push_text(&mut self, s: &str) {
        if let Some(Piece::Text(t)) = self.0.last_mut() {
            t.push_str(s);
        } else if !s.is_empty() {
            self.0.push(Piece::Text(s.to_string()));
        }
    }

    fn push(&mut self, p: Piece) {
        match p {
            Piece::Text(t) => self.push_text(&t),
            p => self.0.push(p),
        }
    }

    /// The text, when nothing in it waits for load time; `Err` names what does.
    pub fn plain(&self) -> Result<String, &'static str> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Index { .. } => return Err("%(process_num) differs per instance"),
                Piece::Env(_) => return Err("env"),
            }
        }
        Ok(out)
    }

    /// The text with environment variables read now (from `env`), for settings holden takes
    /// literally; `Err` when an index is in it or a variable is unset (naming it).
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Index { .. } => {
                    return Err("%(process_num) differs per instance, which holden cannot do for this setting".into());
                }
                Piece::Env(name) => match env(name) {
                    Some(v) => out.push_str(&v),
                    None => return Err(format!("%(ENV_{name})s: the environment variable {name} is not set")),
                },
            }
        }
        Ok(out)
    }

    /// As holden's template syntax for `command`, `environment` values, `directory`, `stdout`
    /// and `stderr`: `{index}`, `{index:0W}`, `${VAR}`, with a literal `{index}` or
    /// `{index:0W}` escaped as `{{index}}` (no other brace means anything to holden) and a
    /// literal `$` doubled where holden would read it as the start of `${` or `$$`.
    ///
    /// One text cannot be written: a literal `{` right before an index and a literal `}` right
    /// after it, which read as the escape `{{index}}`.
    pub fn template(&self) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => {
                    let mut text = String::with_capacity(t.len());
                    let mut chars = t.chars().peekable();
                    while let Some(c) = chars.next() {
                        match c {
                            // What follows a text piece (an `{index}` or `${VAR}`) starts with
                            // `{` or `$` too.
                            '$' if matches!(chars.peek(), Some('$' | '{') | None) => text.push_str("$$"),
                            c => text.push(c),
                        }
                    }
                    out.push_str(&crate::config::placeholder::escape(&text));
                }
                Piece::Index { width: None } => out.push_str("{index}"),
                Piece::Index { width: Some(w) } => {
                    let _ = write!(out, "{{index:0{w}}}");
                }
                Piece::Env(name) => {
                    let _ = write!(out, "${{{name}}}");
                }
            }
        }
        out
    }

    /// Is an index right between a literal `{` and a literal `}`? holden reads `{{index}}` as
    /// its escape, the literal text `{index}`, so `template()` cannot write this.
    pub fn index_in_braces(&self) -> bool {
        self.0.windows(3).any(|w| match w {
            [Piece::Text(a), Piece::Index { .. }, Piece::Text(b)] => a.ends_with('{') && b.starts_with('}'),
            _ => false,
        })
    }

    pub fn has_index(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::Index { .. }))
    }
}

/// Format `s` like Python's `s % mapping`, with `lookup` as the mapping. The error is one
/// sentence about the format.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<Value>) -> Result<Expanded, String> {
    let mut out = Expanded::default();
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_text(&rest[..at]);
        let spec = &rest[at + 1..];
        if let Some(after) = spec.strip_prefix('%') {
            out.push_text("%");
            rest = after;
            continue;
        }
        let Some(inner) = spec.strip_prefix('(') else {
            return Err(format!(
                "{:?} has a '%' that is neither '%%' nor '%(name)s'; write '%%' for a literal '%'",
                s
            ));
        };
        let Some(close) = inner.find(')') else {
            return Err(format!("{s:?} has an unclosed '%(' (write '%%' for a literal '%')"));
        };
        let name = &inner[..close];
        let mut conv = &inner[close + 1..];
        // Flags, width, precision, length modifier, then the conversion character.
        let flags_len = conv.find(|c: char| !"#0- +".contains(c)).unwrap_or(conv.len());
        let flags = &conv[..flags_len];
        conv = &conv[flags_len..];
        let width_len = conv.find(|c: char| !c.is_ascii_digit()).unwrap_or(conv.len());
        let width: Option<usize> = conv[..width_len].parse().ok();
        conv = &conv[width_len..];
        let mut precision = None::<usize>;
        if let Some(p) = conv.strip_prefix('.') {
            let plen = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            precision = Some(p[..plen].parse().unwrap_or(0));
            conv = &p[plen..];
        }
        conv = conv.trim_start_matches(['h', 'l', 'L']);
        let Some(kind) = conv.chars().next() else {
            return Err(format!("{s:?}: '%({name})' lacks a conversion like 's' or 'd'"));
        };
        rest = &conv[kind.len_utf8()..];
        let Some(value) = lookup(name) else {
            return Err(format!("%({name}) is not a name supervisord expands here"));
        };
        let left = flags.contains('-');
        let zero = flags.contains('0') && !left;
        let pad = |text: String, numeric: bool| -> String {
            let Some(w) = width else { return text };
            let n = text.chars().count();
            if n >= w {
                text
            } else if left {
                format!("{text}{}", " ".repeat(w - n))
            } else if zero && numeric {
                let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |d| ("-", d));
                format!("{sign}{}{digits}", "0".repeat(w - n))
            } else {
                format!("{}{text}", " ".repeat(w - n))
            }
        };
        match (kind, value) {
            ('s' | 'r' | 'a', Value::Pieces(pieces)) => {
                if width.is_none() && precision.is_none() {
                    for p in pieces {
                        out.push(p);
                    }
                } else {
                    let text = Expanded(pieces)
                        .plain()
                        .map_err(|_| format!("%({name}) with a width or precision cannot be kept for load time"))?;
                    let text = match precision {
                        Some(p) => text.chars().take(p).collect(),
                        None => text,
                    };
                    out.push_text(&pad(text, false));
                }
            }
            ('s' | 'r' | 'a' | 'd' | 'i' | 'u', Value::Int(n)) => {
                out.push_text(&pad(n.to_string(), kind != 's'));
            }
            ('d' | 'i' | 'u', Value::Pieces(pieces)) if matches!(pieces.as_slice(), [Piece::Index { .. }]) => {
                // The instance index: only zero padding has a holden form.
                match width {
                    None => out.push(Piece::Index { width: None }),
                    Some(w) if zero => out.push(Piece::Index { width: Some(w) }),
                    Some(_) => {
                        return Err(format!(
                            "%({name}) padded with spaces has no holden form; use %({name})d or %({name})0{}d",
                            width.unwrap_or(2)
                        ));
                    }
                }
            }
            ('d' | 'i' | 'u', Value::Pieces(_)) => {
                return Err(format!("%({name})d needs a number, but {name} is text; use %({name})s"));
            }
            (k, _) => {
                return Err(format!(
                    "'%({name}){k}' is a conversion supervisord configs do not use; use 's' or 'd'"
                ));
            }
        }
    }
    out.push_text(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<Value> {
        match name {
            "here" => Some(Value::Pieces(vec![Piece::Text("/etc/sv".into())])),
            "program_name" => Some(Value::Pieces(vec![Piece::Text("worker".into())])),
            "process_num" => Some(Value::Pieces(vec![Piece::Index { width: None }])),
            "numprocs" => Some(Value::Int(4)),
            "num" => Some(Value::Int(7)),
            "ENV_HOME" => Some(Value::Pieces(vec![Piece::Env("HOME".into())])),
            _ => None,
        }
    }

    fn t(s: &str) -> String {
        expand(s, &lookup).unwrap().template()
    }

    #[test]
    fn names_percent_and_widths() {
        assert_eq!(t("%(here)s/run/%(program_name)s.sock"), "/etc/sv/run/worker.sock");
        assert_eq!(t("100%% of %(numprocs)d"), "100% of 4");
        assert_eq!(t("[%(num)03d]"), "[007]");
        assert_eq!(t("%(num)3d|%(num)-3d|"), "  7|7  |");
        assert_eq!(t("%(program_name).3s"), "wor");
    }

    #[test]
    fn process_num_becomes_index() {
        assert_eq!(t("%(program_name)s_%(process_num)02d"), "worker_{index:02}");
        assert_eq!(t("w%(process_num)d w%(process_num)s"), "w{index} w{index}");
        assert!(expand("%(process_num)3d", &lookup).is_err());
    }

    #[test]
    fn env_becomes_a_load_time_variable_and_literals_are_escaped() {
        assert_eq!(t("%(ENV_HOME)s/x"), "${HOME}/x");
        assert_eq!(t("echo {a} $$ ${X} $HOME $"), "echo {a} $$$ $${X} $HOME $$");
        // Only what holden would read as an index is escaped.
        assert_eq!(
            t("{index} {index:02} {{.Name}} %(process_num)d"),
            "{{index}} {{index:02}} {{.Name}} {index}"
        );
        assert_eq!(t("sh -c '{ a; }' ${index}"), "sh -c '{ a; }' $${{index}}");
        let e = expand("{%(process_num)d}", &lookup).unwrap();
        assert!(e.index_in_braces());
        assert!(!expand("{%(process_num)d", &lookup).unwrap().index_in_braces());
        let e = expand("%(ENV_HOME)s/%(process_num)d", &lookup).unwrap();
        assert!(e.has_index());
        assert_eq!(
            e.resolve(&|_| Some("/root".into())).unwrap_err(),
            "%(process_num) differs per instance, which holden cannot do for this setting"
        );
        let e = expand("%(ENV_HOME)s/x", &lookup).unwrap();
        assert_eq!(e.resolve(&|_| Some("/root".into())).unwrap(), "/root/x");
        assert_eq!(
            e.resolve(&|_| None).unwrap_err(),
            "%(ENV_HOME)s: the environment variable HOME is not set"
        );
    }

    #[test]
    fn bad_formats_are_errors_not_panics() {
        for s in [
            "%(nope)s",
            "50%",
            "%(here",
            "%(here)",
            "%(here)q",
            "%(program_name)d",
            "%s",
        ] {
            assert!(expand(s, &lookup).is_err(), "{s}");
        }
    }

    #[test]
    fn templates_read_back_exactly_through_the_config_expander() {
        use crate::config::vars::{VarError, expand as load_expand};
        let env = |name: &str| -> Result<Option<String>, VarError> {
            Ok(match name {
                "HOME" => Some("/home/me".into()),
                "EMPTY" => Some(String::new()),
                "ARGS" => Some("-v --port 80".into()),
                _ => None,
            })
        };
        let cases = [
            // Braces are left out: `{`/`}` doubling belongs to the `{index}` templates.
            (
                vec![Piece::Text("echo $HOME $$ $x end$".into())],
                "echo $HOME $$ $x end$",
            ),
            (
                vec![
                    Piece::Text("--home=$".into()),
                    Piece::Env("HOME".into()),
                    Piece::Text("/x $".into()),
                ],
                "--home=$/home/me/x $",
            ),
            (
                vec![Piece::Env("HOME".into()), Piece::Env("ARGS".into())],
                "/home/me-v --port 80",
            ),
            (vec![Piece::Text("$".into())], "$"),
            (vec![Piece::Text("a$$b$".into()), Piece::Env("EMPTY".into())], "a$$b$"),
        ];
        for (pieces, want) in cases {
            let template = Expanded(pieces).template();
            assert_eq!(
                load_expand(&template, &env).as_deref(),
                Ok(want),
                "template {template:?}"
            );
        }
    }
}

//! `environment_file`: `KEY=value` lines, read when the config is loaded, with systemd's
//! `EnvironmentFile=` and docker's `--env-file` rules where they agree, and the stricter of the
//! two where they do not. No shell runs and nothing is expanded (`$HOME` stays `$HOME`).
//!
//! - Blank lines, and lines whose first non-blank character is `#` or `;`, are skipped.
//! - `KEY=value`; blanks around the key and before the value are dropped, as is trailing blank
//!   space after an unquoted value. KEY is a shell variable name (`[A-Za-z_][A-Za-z0-9_]*`);
//!   anything else (docker's bare `KEY`, taken from the caller's environment) is an error.
//! - `export KEY=value` is accepted, so one file can also be sourced by a shell (neither systemd
//!   nor docker accept it: systemd skips the line, docker refuses it).
//! - A value is made of unquoted text (taken as written, `#` included: there are no comments
//!   after a value), `'single-quoted'` text (taken as written) and `"double-quoted"` text where
//!   `\"`, `\\`, `\$`, `` \` `` stand for the character and `\n`, `\t` for newline and tab
//!   (any other backslash is kept). Parts are joined: `a"b c"'d'` is `ab cd`. A quoted part may
//!   span lines; a line ending in `\` outside quotes continues on the next.
//! - A later line for the same key wins.

/// One bad line of an env file: its 1-based number and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The assignments of `text`, in file order (a key may come more than once: the last wins).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, LineError> {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len();
    let mut i = 0;
    let mut line = 1;
    let mut out = Vec::new();
    while i < len {
        while i < len && matches!(chars[i], ' ' | '\t' | '\r') {
            i += 1;
        }
        if i == len {
            break;
        }
        if chars[i] == '\n' {
            i += 1;
            line += 1;
            continue;
        }
        if matches!(chars[i], '#' | ';') {
            while i < len && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let at = line;
        let err = |line: usize, message: String| LineError { line, message };
        let head_start = i;
        while i < len && !matches!(chars[i], '=' | '\n') {
            i += 1;
        }
        let head: String = chars[head_start..i].iter().collect();
        if i == len || chars[i] == '\n' {
            return Err(err(at, format!("{:?} has no '='", head.trim())));
        }
        i += 1;
        let head = head.trim();
        let key = match head.strip_prefix("export") {
            Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
            _ => head,
        };
        if !is_name(key) {
            return Err(err(
                at,
                format!("{key:?} is not a variable name (letters, digits and '_', not starting with a digit)"),
            ));
        }
        let mut value = String::new();
        // Blanks after unquoted text, kept only if more of the value follows.
        let mut blanks = String::new();
        let mut seen = false;
        while i < len {
            let c = chars[i];
            i += 1;
            match c {
                '\n' => {
                    line += 1;
                    break;
                }
                '\r' if i == len || chars[i] == '\n' => {}
                '\\' if i < len && chars[i] == '\n' => {
                    i += 1;
                    line += 1;
                }
                '\\' if i + 1 < len && chars[i] == '\r' && chars[i + 1] == '\n' => {
                    i += 2;
                    line += 1;
                }
                '\'' | '"' => {
                    value.push_str(&blanks);
                    blanks.clear();
                    seen = true;
                    let opened = line;
                    let unterminated = || err(opened, format!("a {c} without its closing {c}"));
                    loop {
                        let Some(&q) = chars.get(i) else {
                            return Err(unterminated());
                        };
                        i += 1;
                        if q == c {
                            break;
                        }
                        if q == '\n' {
                            line += 1;
                        }
                        if c == '"' && q == '\\' {
                            let Some(&e) = chars.get(i) else {
                                return Err(unterminated());
                            };
                            i += 1;
                            match e {
                                '"' | '\\' | '$' | '`' => value.push(e),
                                'n' => value.push('\n'),
                                't' => value.push('\t'),
                                // A backslash-newline inside double quotes joins the lines.
                                '\n' => line += 1,
                                other => {
                                    value.push('\\');
                                    value.push(other);
                                }
                            }
                        } else {
                            value.push(q);
                        }
                    }
                }
                ' ' | '\t' => {
                    if seen {
                        blanks.push(c);
                    }
                }
                c => {
                    value.push_str(&blanks);
                    blanks.clear();
                    seen = true;
                    value.push(c);
                }
            }
        }
        if value.contains('\0') {
            return Err(err(at, format!("the value of {key} has a NUL byte")));
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn assignments_comments_and_blank_lines() {
        let text = "# a comment\n; another\n\n  \nA=1\n  B = two words  \r\nexport C=3\nexport=4\nD=\nE=a#b $HOME\n";
        assert_eq!(
            ok(text),
            pairs(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "3"),
                ("export", "4"),
                ("D", ""),
                ("E", "a#b $HOME"),
            ])
        );
        assert_eq!(ok(""), vec![]);
        assert_eq!(ok("A=1"), pairs(&[("A", "1")]));
    }

    #[test]
    fn quotes_and_escapes() {
        let text = r#"S='single "quoted" \n $X'
D="double \"q\" \\ \$ \` \n\t \q"
J=a"b c"'d'  e
Q=" padded "
M="two
lines"
C=one\
two
E=''
"#;
        assert_eq!(
            ok(text),
            pairs(&[
                ("S", r#"single "quoted" \n $X"#),
                ("D", "double \"q\" \\ $ ` \n\t \\q"),
                ("J", "ab cd  e"),
                ("Q", " padded "),
                ("M", "two\nlines"),
                ("C", "onetwo"),
                ("E", ""),
            ])
        );
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let e = parse("A=1\n\n# c\nnot an assignment\n").unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.message.contains("has no '='"), "{e:?}");
        let e = parse("A=1\nB=\"open\nstill open\n").unwrap_err();
        assert_eq!(
            e,
            LineError {
                line: 2,
                message: "a \" without its closing \"".into()
            }
        );
        let e = parse("A=1\nB=x\nC='x\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse("M=\"a\nb\"\n1X=2\n").unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
        assert!(e.message.contains("\"1X\""), "{e:?}");
        assert!(parse("A B=1\n").is_err());
        assert!(parse("=1\n").is_err());
        assert!(parse("A=a\0b\n").is_err());
    }
}

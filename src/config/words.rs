//! Splitting a `command` string into argv the way a POSIX shell splits words, without a shell.
//!
//! What is kept from the shell (POSIX "Token Recognition" and "Quoting"): blanks separate
//! words; single quotes keep everything literally; double quotes keep everything except that
//! a backslash escapes `$`, `` ` ``, `"`, `\` and newline; a backslash outside quotes escapes
//! any character (backslash-newline joins lines); `""` is an empty word; `#` at the start of a
//! word begins a comment. What is left out: every expansion (`$HOME`, `*`, `~` stay as typed).
//!
//! SPEC: an unquoted shell operator (`|`, `&`, `;`, `<`, `>`, `(`, `)`) is refused rather than
//! passed on as an argument: a shell would have acted on it and holden runs none, so a command
//! line that needs one must say `["sh", "-c", "..."]`.

/// Why a command line cannot be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// A `'` without its closing `'`.
    UnterminatedSingleQuote,
    /// A `"` without its closing `"`.
    UnterminatedDoubleQuote,
    /// An unquoted `|`, `&`, `;`, `<`, `>`, `(` or `)`.
    ShellOperator(char),
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::UnterminatedSingleQuote => write!(f, "a ' without its closing '"),
            SplitError::UnterminatedDoubleQuote => write!(f, "a \" without its closing \""),
            SplitError::ShellOperator(c) => write!(f, "the unquoted shell operator {c}"),
        }
    }
}

const OPERATORS: &[char] = &['|', '&', ';', '<', '>', '(', ')'];

/// Split `line` into words like `sh` would, with no expansion.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once any of its characters (or an empty quote) was seen.
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(next) => {
                    word.push(next);
                    in_word = true;
                }
                // As `sh -c 'echo a\'` does: a final backslash stays itself.
                None => {
                    word.push('\\');
                    in_word = true;
                }
            },
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(inner) => word.push(inner),
                        None => return Err(SplitError::UnterminatedSingleQuote),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some('$' | '`' | '"' | '\\') => word.push(chars.next().unwrap_or('\\')),
                            Some('\n') => {
                                chars.next();
                            }
                            Some(_) | None => word.push('\\'),
                        },
                        Some(inner) => word.push(inner),
                        None => return Err(SplitError::UnterminatedDoubleQuote),
                    }
                }
            }
            '#' if !in_word => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        break;
                    }
                }
            }
            c if OPERATORS.contains(&c) => return Err(SplitError::ShellOperator(c)),
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Vec<String> {
        split(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn words_split_like_a_posix_shell() {
        let table: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   \t ", &[]),
            ("ls", &["ls"]),
            ("  ls   -l  /tmp ", &["ls", "-l", "/tmp"]),
            ("a\tb\nc", &["a", "b", "c"]),
            ("sh -c 'echo hi; exit 1'", &["sh", "-c", "echo hi; exit 1"]),
            ("'a b'c", &["a bc"]),
            ("a'b'\"c\"d", &["abcd"]),
            ("''", &[""]),
            ("a \"\" b", &["a", "", "b"]),
            (r#""a \" b""#, &["a \" b"]),
            (r#""\\ \$ \` \x""#, &["\\ $ ` \\x"]),
            (r"'\n \'", &["\\n \\"]),
            (r"a\ b", &["a b"]),
            (r"a\\b", &["a\\b"]),
            (r"\'x\'", &["'x'"]),
            ("a\\\nb", &["ab"]),
            ("\"a\\\nb\"", &["ab"]),
            ("echo $HOME ~ *.txt", &["echo", "$HOME", "~", "*.txt"]),
            ("echo 'a|b' \"c;d\" e\\&f", &["echo", "a|b", "c;d", "e&f"]),
            ("run # a comment", &["run"]),
            ("run a#b", &["run", "a#b"]),
            ("run #one\nnext", &["run", "next"]),
            ("tail\\", &["tail\\"]),
            ("python3 -m http.server 8080", &["python3", "-m", "http.server", "8080"]),
            // The examples of docs/config.md.
            (r#"printf "%s\n" x\ y"#, &["printf", "%s\\n", "x y"]),
            (r#"grep "a b" file"#, &["grep", "a b", "file"]),
            ("run ''", &["run", ""]),
        ];
        for (line, want) in table {
            assert_eq!(ok(line), *want, "split of {line:?}");
        }
    }

    /// How `sh` users quote an arbitrary word: in single quotes, each `'` as `'\''`.
    fn sh_quote(w: &str) -> String {
        format!("'{}'", w.replace('\'', r"'\''"))
    }

    proptest::proptest! {
        #[test]
        fn any_words_quoted_for_sh_split_back_to_themselves(words in proptest::collection::vec(".*", 0..6)) {
            let line = words.iter().map(|w| sh_quote(w)).collect::<Vec<_>>().join(" ");
            proptest::prop_assert_eq!(split(&line), Ok(words));
        }

        #[test]
        fn splitting_never_panics(line in ".*") {
            let _ = split(&line);
        }
    }

    #[test]
    fn unterminated_quotes_and_operators_are_refused() {
        assert_eq!(split("echo 'oops"), Err(SplitError::UnterminatedSingleQuote));
        assert_eq!(split("echo \"oops"), Err(SplitError::UnterminatedDoubleQuote));
        assert_eq!(split("echo \"a\\\""), Err(SplitError::UnterminatedDoubleQuote));
        assert_eq!(split("a | b"), Err(SplitError::ShellOperator('|')));
        assert_eq!(split("a;b"), Err(SplitError::ShellOperator(';')));
        assert_eq!(split("a 2>&1"), Err(SplitError::ShellOperator('>')));
        assert_eq!(split("(a)"), Err(SplitError::ShellOperator('(')));
    }
}

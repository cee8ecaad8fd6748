//! A reader for the INI dialect supervisord reads: Python 3's `configparser.RawConfigParser`
//! with the options supervisord's `UnhosedConfigParser` passes (`inline_comment_prefixes =
//! (';', '#')`, `strict = False`). Ported from CPython 3.11 `configparser._read`, rule for rule:
//!
//! - `[name]` opens a section (the name is everything up to the last `]`); a section named again
//!   (in the same file or an included one) continues the first, and a key set again replaces the
//!   earlier value in place.
//! - `key = value` or `key: value`, split at the first `=` or `:`; keys are lowercased, values
//!   trimmed. No interpolation happens here: `%` is left for supervisord's own expansion.
//! - A line indented deeper than its key's line continues the value (joined with `\n`); blank
//!   lines inside a value are kept, trailing ones dropped.
//! - A line whose first non-blank character is `;` or `#` is a comment; so is the rest of a line
//!   from a `;` or `#` that starts it or follows whitespace (`a=b;c` keeps `b;c`).
//!
//! Each value keeps the file and line it came from, for `file:line` errors and for `%(here)s`,
//! which is the folder of the file a value was written in.
//!
//! No crate was used: the Rust INI readers (rust-ini, configparser) differ from Python's rules on
//! inline comments and continuation lines and do not report lines per value.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in the input, at a file and line (line 0: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// One `key = value`, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// Index into [`Ini::files`].
    pub file: usize,
    pub line: usize,
    /// Lines of a continued value, joined into `value` when the file is done.
    lines: Vec<String>,
}

/// A `[section]`: its entries in the order their keys first appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub file: usize,
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// Every section read so far, from one or more files.
#[derive(Debug, Default)]
pub struct Ini {
    pub files: Vec<PathBuf>,
    pub sections: Vec<Section>,
}

impl Ini {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Read `path` into this set, as `RawConfigParser.read` does for each file.
    pub fn read_file(&mut self, path: &Path) -> Result<(), Vec<Diag>> {
        let diag = |line, message: String| {
            vec![Diag {
                file: path.to_path_buf(),
                line,
                message,
            }]
        };
        let bytes =
            std::fs::read(path).map_err(|e| diag(0, format!("cannot read it: {}", crate::error::os_text(&e))))?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                return Err(diag(line, "not UTF-8 text".to_string()));
            }
        };
        self.read_str(&text, path)
    }

    /// Parse `text` as if read from `path`.
    pub fn read_str(&mut self, text: &str, path: &Path) -> Result<(), Vec<Diag>> {
        let file = self.files.len();
        self.files.push(path.to_path_buf());
        let mut errors = Vec::new();
        // The section and the entry that continuation lines extend.
        let mut cur: Option<usize> = None;
        let mut opt: Option<usize> = None;
        let mut indent_level = 0usize;
        for (i, raw_line) in text.split('\n').enumerate() {
            let lineno = i + 1;
            let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
            let comment_start = comment_start(line);
            let value = match comment_start {
                Some(c) => line[..c].trim(),
                None => line.trim(),
            };
            if value.is_empty() {
                // A blank line belongs to the value being continued; a comment line does not.
                if comment_start.is_none()
                    && let (Some(s), Some(o)) = (cur, opt)
                {
                    self.sections[s].entries[o].lines.push(String::new());
                }
                continue;
            }
            let cur_indent = line.len() - line.trim_start().len();
            if let (Some(s), Some(o)) = (cur, opt)
                && cur_indent > indent_level
            {
                self.sections[s].entries[o].lines.push(value.to_string());
                continue;
            }
            indent_level = cur_indent;
            if let Some(name) = section_header(value) {
                cur = Some(match self.sections.iter().position(|s| s.name == name) {
                    Some(s) => s,
                    None => {
                        self.sections.push(Section {
                            name: name.to_string(),
                            file,
                            line: lineno,
                            entries: Vec::new(),
                        });
                        self.sections.len() - 1
                    }
                });
                opt = None;
                continue;
            }
            let Some(s) = cur else {
                errors.push(Diag {
                    file: path.to_path_buf(),
                    line: lineno,
                    message: format!("{value:?} comes before any [section] header"),
                });
                // ConfigParser stops at this one.
                return Err(errors);
            };
            let Some(split) = value.find(['=', ':']) else {
                errors.push(Diag {
                    file: path.to_path_buf(),
                    line: lineno,
                    message: format!("found {value:?}, expected `key = value`, `[section]` or a comment"),
                });
                continue;
            };
            let key = value[..split].trim_end().to_lowercase();
            if key.is_empty() {
                errors.push(Diag {
                    file: path.to_path_buf(),
                    line: lineno,
                    message: format!("found {value:?}, a value without a key"),
                });
                continue;
            }
            let val = value[split + 1..].trim().to_string();
            let section = &mut self.sections[s];
            let entry = Entry {
                key: key.clone(),
                value: String::new(),
                file,
                line: lineno,
                lines: vec![val],
            };
            opt = Some(match section.entries.iter().position(|e| e.key == key) {
                Some(o) => {
                    section.entries[o] = entry;
                    o
                }
                None => {
                    section.entries.push(entry);
                    section.entries.len() - 1
                }
            });
        }
        // Join continued values; entries from earlier files are already joined (no lines).
        for section in &mut self.sections {
            for e in &mut section.entries {
                if !e.lines.is_empty() {
                    e.value = e.lines.join("\n").trim_end().to_string();
                    e.lines.clear();
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

/// `[name]`: Python's `\[(?P<header>.+)\]` matched at the start, so the name runs to the last `]`.
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

/// Where a comment starts in `line`, by `configparser._read`'s rules: a full-line comment when
/// the stripped line starts with `#` or `;`; otherwise the inline comment prefixes are searched
/// occurrence by occurrence, all prefixes in step, and the first round that finds a prefix at the
/// start of the line or after whitespace decides (the smallest such position in that round).
fn comment_start(line: &str) -> Option<usize> {
    let stripped = line.trim();
    if stripped.starts_with('#') || stripped.starts_with(';') {
        return Some(0);
    }
    let bytes = line.as_bytes();
    let mut next: Vec<(u8, Option<usize>)> = vec![(b';', None), (b'#', None)];
    loop {
        let mut found = None::<usize>;
        let mut round = Vec::new();
        for &(prefix, last) in &next {
            let from = last.map_or(0, |i| i + 1);
            let Some(rel) = bytes[from..].iter().position(|&b| b == prefix) else {
                continue;
            };
            let index = from + rel;
            round.push((prefix, Some(index)));
            let after_space = index == 0 || line[..index].chars().next_back().is_some_and(char::is_whitespace);
            if after_space {
                found = Some(found.map_or(index, |f| f.min(index)));
            }
        }
        if found.is_some() || round.is_empty() {
            return found;
        }
        next = round;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Ini {
        let mut ini = Ini::default();
        ini.read_str(text, Path::new("s.conf")).unwrap();
        ini
    }

    fn value<'a>(ini: &'a Ini, section: &str, key: &str) -> &'a str {
        &ini.section(section).unwrap().get(key).unwrap().value
    }

    #[test]
    fn keys_values_and_both_delimiters() {
        let ini = parse("[program:web]\ncommand = /bin/web --port 80\nAutoStart: true\nx=a=b\ny:a=b\n");
        assert_eq!(value(&ini, "program:web", "command"), "/bin/web --port 80");
        assert_eq!(value(&ini, "program:web", "autostart"), "true");
        assert_eq!(value(&ini, "program:web", "x"), "a=b");
        assert_eq!(value(&ini, "program:web", "y"), "a=b");
        assert_eq!(ini.section("program:web").unwrap().get("y").unwrap().line, 5);
    }

    #[test]
    fn comments_full_line_and_inline_after_whitespace_only() {
        let ini =
            parse("; top\n# top\n[s]\n  ; indented comment\na = 1 ; note\nb = 1;2\nc = x # note\nd = x#y\ne = ;\n");
        let s = ini.section("s").unwrap();
        assert_eq!(s.entries.len(), 5);
        assert_eq!(value(&ini, "s", "a"), "1");
        assert_eq!(value(&ini, "s", "b"), "1;2");
        assert_eq!(value(&ini, "s", "c"), "x");
        assert_eq!(value(&ini, "s", "d"), "x#y");
        assert_eq!(value(&ini, "s", "e"), "");
    }

    #[test]
    fn inline_comment_search_goes_round_by_round_like_python() {
        // Round 1 finds ';' at 3 (not after space) and '#' at 10 (after space): '#' wins,
        // although a qualifying ';' comes earlier in round 2.
        assert_eq!(comment_start("a=b;c ;d  #e"), Some(10));
        assert_eq!(comment_start("a=b;c;d"), None);
        assert_eq!(comment_start("  # x"), Some(0));
    }

    #[test]
    fn continuation_lines_join_with_newlines_and_keep_inner_blank_lines() {
        let ini = parse("[s]\nenv = A=1,\n   B=2\n\n   C=3\n\n\nnext = x\n");
        assert_eq!(value(&ini, "s", "env"), "A=1,\nB=2\n\nC=3");
        assert_eq!(value(&ini, "s", "next"), "x");
    }

    #[test]
    fn a_comment_line_inside_a_value_is_dropped_not_kept_blank() {
        let ini = parse("[s]\nenv = A=1,\n; comment\n   B=2\n");
        assert_eq!(value(&ini, "s", "env"), "A=1,\nB=2");
    }

    #[test]
    fn repeated_sections_merge_and_repeated_keys_replace_in_place() {
        let ini = parse("[s]\na = 1\nb = 2\n[t]\n[s]\na = 3\n");
        let s = ini.section("s").unwrap();
        assert_eq!(ini.sections.len(), 2);
        assert_eq!(s.entries[0].key, "a");
        assert_eq!(s.entries[0].value, "3");
        assert_eq!(s.entries[0].line, 6);
        assert_eq!(s.entries[1].value, "2");
    }

    #[test]
    fn section_names_are_case_sensitive_and_run_to_the_last_bracket() {
        let ini = parse("[Program:X]\n[a]b] trailing\n");
        assert!(ini.section("Program:X").is_some());
        assert!(ini.section("a]b").is_some());
    }

    #[test]
    fn crlf_line_ends_are_read() {
        let ini = parse("[s]\r\na = 1\r\n  more\r\n");
        assert_eq!(value(&ini, "s", "a"), "1\nmore");
    }

    #[test]
    fn percent_is_left_alone() {
        let ini = parse("[s]\na = 100%% %(here)s\n");
        assert_eq!(value(&ini, "s", "a"), "100%% %(here)s");
    }

    #[test]
    fn errors_name_file_and_line() {
        let mut ini = Ini::default();
        let e = ini.read_str("a = 1\n", Path::new("x.conf")).unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "x.conf:1: \"a = 1\" comes before any [section] header"
        );
        let mut ini = Ini::default();
        let e = ini
            .read_str("[s]\nok = 1\njunk\n= 2\n  more\n", Path::new("x.conf"))
            .unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].to_string(),
            "x.conf:3: found \"junk\", expected `key = value`, `[section]` or a comment"
        );
        assert_eq!(e[1].line, 4);
    }

    #[test]
    fn values_remember_their_file() {
        let mut ini = Ini::default();
        ini.read_str("[s]\na = 1\n", Path::new("main.conf")).unwrap();
        ini.read_str("[s]\nb = 2\n[t]\nc = 3\n", Path::new("conf.d/x.conf"))
            .unwrap();
        let s = ini.section("s").unwrap();
        assert_eq!(ini.files[s.get("a").unwrap().file], Path::new("main.conf"));
        assert_eq!(ini.files[s.get("b").unwrap().file], Path::new("conf.d/x.conf"));
        assert_eq!(ini.files[ini.section("t").unwrap().file], Path::new("conf.d/x.conf"));
    }
}

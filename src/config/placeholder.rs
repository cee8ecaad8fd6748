//! `{index}` placeholders: the instance index in `command`, `environment` values, `directory`,
//! `stdout` and `stderr`.
//!
//! Exactly two forms are placeholders: `{index}` and `{index:0W}` (W = 1..9, zero-padded to W
//! digits). `{{index}}` and `{{index:0W}}` are their escapes, read as the literal text
//! `{index}` / `{index:0W}`. No other brace means anything: `sh -c '{ echo; }'` and Go
//! templates like `{{.Name}}` pass through unchanged.

/// The placeholder at the very start of `s`: its length in bytes and its width (0 = none).
fn placeholder_at(s: &str) -> Option<(usize, usize)> {
    if s.starts_with("{index}") {
        return Some((7, 0));
    }
    let b = s.as_bytes();
    // `{index:0W}`: 10 bytes.
    if s.starts_with("{index:0") && b.len() >= 10 && (b'1'..=b'9').contains(&b[8]) && b[9] == b'}' {
        return Some((10, usize::from(b[8] - b'0')));
    }
    None
}

/// `s` with each placeholder replaced by `index`, and each escape by the literal placeholder.
pub fn substitute(s: &str, index: u32) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some((len, _)) = rest.strip_prefix('{').and_then(placeholder_at)
            && rest[1 + len..].starts_with('}')
        {
            out.push_str(&rest[1..=len]);
            rest = &rest[len + 2..];
        } else if let Some((len, width)) = placeholder_at(rest) {
            out.push_str(&format!("{index:0width$}"));
            rest = &rest[len..];
        } else {
            out.push('{');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The text that `substitute` reads back as `s` whatever the index: each literal `{index}` or
/// `{index:0W}` of `s` escaped, nothing else changed.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some((len, _)) = placeholder_at(rest) {
            out.push('{');
            out.push_str(&rest[..len]);
            out.push('}');
            rest = &rest[len..];
        } else {
            out.push('{');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Does `s` hold a placeholder (not only escapes)?
pub fn has_index(s: &str) -> bool {
    substitute(s, 0) != substitute(s, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_escapes_kept_literal() {
        assert_eq!(substitute("w-{index}.log", 3), "w-3.log");
        assert_eq!(substitute("w-{index:02}.log", 3), "w-03.log");
        assert_eq!(substitute("{index:09}", 12), "000000012");
        assert_eq!(substitute("{index}{index}", 7), "77");
        assert_eq!(substitute("{{index}}", 3), "{index}");
        assert_eq!(substitute("{{index:03}}", 3), "{index:03}");
        assert_eq!(substitute("{{{index}}}", 3), "{{index}}");
        assert_eq!(substitute("{{index}", 3), "{3");
        assert_eq!(substitute("ü{index}ü", 1), "ü1ü");
    }

    #[test]
    fn other_braces_pass_through() {
        for s in [
            "sh -c '{ echo; }'",
            "{{.Name}}",
            "{{index .X 0}}",
            "{index:0}",
            "{index:10}",
            "{index:2}",
            "{ index }",
            "{",
            "}}",
            "{index",
            "{index:0",
            "{index:05",
            "",
        ] {
            assert_eq!(substitute(s, 4), s, "{s:?}");
            assert_eq!(escape(s), s, "{s:?}");
            assert!(!has_index(s), "{s:?}");
        }
    }

    #[test]
    fn has_index_sees_placeholders_not_escapes() {
        assert!(has_index("logs/w{index}.log"));
        assert!(has_index("logs/w{index:03}.log"));
        assert!(!has_index("logs/w{{index}}.log"));
        assert!(!has_index("logs/w.log"));
    }

    proptest::proptest! {
        #[test]
        fn escape_reads_back_as_itself(s in "([{}]|index|:0[0-9]|[a-z ])*", index in 0u32..2000) {
            proptest::prop_assert_eq!(substitute(&escape(&s), index), s);
        }
    }
}

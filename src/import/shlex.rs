//! supervisord's `environment = KEY="val",KEY2=val2`: `datatypes.dict_of_key_value_pairs` of
//! supervisor 4.3.0 (the release people run), which splits the value with Python's
//! `shlex.shlex(value)` in its non-POSIX mode with `/.+-():` added to the word characters, takes
//! the tokens three at a time (`KEY`, `=`, `VALUE`) with one separator token between, and strips
//! quote characters from both ends of each value. Ported from CPython 3.11 `shlex.read_token`
//! for that mode: `#` starts a comment, a quote opens a token that runs to the same quote (quotes
//! kept, no escapes), a quote inside a word is just a character, and every other punctuation
//! character is a token of its own (so an unquoted `A=x@y` fails here as it fails in
//! supervisord). Characters of Unicode's private use area stand for values kept for load time
//! (see `expand`) and count as word characters. (supervisord's unreleased main branch switched
//! to POSIX mode, where `\` escapes and `'it''s'` is `its`; configs in the wild were written for
//! the release.)

/// shlex's non-POSIX `wordchars` plus supervisord's additions.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || "/.+-():".contains(c) || ('\u{e000}'..='\u{f8ff}').contains(&c)
}

/// shlex's whitespace: space, tab, CR and LF.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The tokens of `s`, as `list(shlex.shlex(s))` with supervisord's word characters.
pub fn tokens(s: &str) -> Result<Vec<String>, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Space,
        Word,
        Quote(char),
    }
    let mut out = Vec::new();
    let mut token = String::new();
    let mut state = State::Space;
    let mut chars = s.chars();
    let emit = |token: &mut String, out: &mut Vec<String>| {
        if !token.is_empty() {
            out.push(std::mem::take(token));
        }
    };
    while let Some(c) = chars.next() {
        match state {
            // A comment runs to the end of the line; in non-POSIX mode a word it interrupts
            // goes on with the next line.
            State::Space | State::Word if c == '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            State::Space if is_space(c) => {}
            State::Space if is_word_char(c) => {
                token.push(c);
                state = State::Word;
            }
            State::Space if c == '\'' || c == '"' => {
                token.push(c);
                state = State::Quote(c);
            }
            State::Space => {
                token.push(c);
                emit(&mut token, &mut out);
            }
            State::Quote(q) => {
                token.push(c);
                if c == q {
                    emit(&mut token, &mut out);
                    state = State::Space;
                }
            }
            State::Word if is_space(c) => {
                emit(&mut token, &mut out);
                state = State::Space;
            }
            State::Word if is_word_char(c) || c == '\'' || c == '"' => token.push(c),
            State::Word => {
                // Punctuation ends the word and is read again as a token of its own.
                emit(&mut token, &mut out);
                token.push(c);
                emit(&mut token, &mut out);
                state = State::Space;
            }
        }
    }
    if let State::Quote(q) = state {
        return Err(format!("the quote {q} is not closed"));
    }
    emit(&mut token, &mut out);
    Ok(out)
}

/// `KEY=val,KEY2="v, 2"` as pairs, in order (a repeated key keeps its last value, in the place
/// of its first).
pub fn key_value_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let tokens = tokens(s)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i..tokens.len().min(i + 3)] {
            [k, eq, v] if eq == "=" => {
                let v = v.trim_matches(['\'', '"']).to_string();
                match pairs.iter_mut().find(|(key, _)| key == k) {
                    Some(pair) => pair.1 = v,
                    None => pairs.push((k.clone(), v)),
                }
                i += 4;
            }
            _ => {
                return Err(format!(
                    "expected KEY=value pairs separated by commas (quote values that hold other characters than letters, digits and /.+-():_), found {:?}",
                    tokens[i..].join(" ")
                ));
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        key_value_pairs(s).unwrap()
    }

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    // The expectations below were produced by supervisor 4.3.0's dict_of_key_value_pairs.
    #[test]
    fn like_supervisord() {
        assert_eq!(pairs("A=1,B=2"), p(&[("A", "1"), ("B", "2")]));
        assert_eq!(pairs("A=\"x, y\", B='it''s'"), p(&[("A", "x, y"), ("B", "it")]));
        assert_eq!(pairs("A='a,b',B=\"c d\""), p(&[("A", "a,b"), ("B", "c d")]));
        assert_eq!(pairs("A=\"it's\""), p(&[("A", "it's")]));
        assert_eq!(
            pairs("PATH=\"/usr/bin:/bin\",DJANGO_SETTINGS_MODULE=app.settings.prod"),
            p(&[
                ("PATH", "/usr/bin:/bin"),
                ("DJANGO_SETTINGS_MODULE", "app.settings.prod")
            ])
        );
        assert_eq!(pairs("A=\"\""), p(&[("A", "")]));
        assert_eq!(pairs("A='x' # c"), p(&[("A", "x")]));
        assert_eq!(pairs("A=1,\nB=2, # comment\n"), p(&[("A", "1"), ("B", "2")]));
        assert_eq!(pairs("A=1,A=2"), p(&[("A", "2")]));
        assert_eq!(pairs("A=x\\"), p(&[("A", "x")]));
        assert_eq!(pairs("A=x#c\ny"), p(&[("A", "xy")]));
        assert_eq!(pairs("A=é"), p(&[("A", "é")]));
        assert_eq!(pairs(""), p(&[]));
        assert_eq!(pairs("A=x\u{e000}y"), p(&[("A", "x\u{e000}y")]));
    }

    #[test]
    fn what_supervisord_refuses_is_refused() {
        for s in ["A=x@y", "A", "A=", "A=\"open", "A=1 B=2", "A=x\"y z\",B=2"] {
            assert!(key_value_pairs(s).is_err(), "{s}");
        }
    }
}

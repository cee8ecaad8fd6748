use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::*;

pub(super) fn path_value(
    v: &Spanned<String>,
    key: &str,
    base: &Path,
    expected: &str,
    p: &mut Vec<Problem>,
) -> Option<PathBuf> {
    let s = v.get_ref();
    if s.is_empty() || s.contains('\0') {
        p.push(Problem::found(v.span(), key, format!("{s:?}"), expected));
        return None;
    }
    Some(absolute_from(base, s))
}

pub(super) fn mode(v: &Spanned<RawMode>, key: &str, expected: &str, p: &mut Vec<Problem>) -> Option<u32> {
    let parsed = match v.get_ref() {
        RawMode::Text(s) => {
            let digits = s.strip_prefix("0o").unwrap_or(s);
            let ok = (1..=4).contains(&digits.len()) && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
            ok.then(|| u32::from_str_radix(digits, 8).ok()).flatten()
        }
        RawMode::Integer { value, radix: 8 } => u32::try_from(*value).ok(),
        // 0 is 0 in any radix.
        RawMode::Integer { value: 0, .. } => Some(0),
        RawMode::Integer { .. } => None,
    };
    match parsed {
        Some(m) if m <= 0o777 => Some(m),
        Some(_) | None => {
            let found = match v.get_ref() {
                RawMode::Text(s) => format!("{s:?}"),
                RawMode::Integer { value, radix: 8 } => format!("0o{value:o}"),
                RawMode::Integer { value, .. } => value.to_string(),
            };
            p.push(Problem::found(v.span(), key, found, expected));
            None
        }
    }
}

/// `v` with `${VAR}` expanded from holden's environment; the problem names the variable.
pub(super) fn expanded(v: &Spanned<String>, key: &str, p: &mut Vec<Problem>) -> Option<Spanned<String>> {
    expand_text(v.get_ref(), v.span(), key, p).map(|s| Spanned::new(v.span(), s))
}

pub(super) fn expand_text(s: &str, span: raw::Span, key: &str, p: &mut Vec<Problem>) -> Option<String> {
    match vars::expand(s, &vars::process_env) {
        Ok(s) => Some(s),
        Err(e) => {
            p.push(Problem::found(span, key, e, vars::EXPECTED));
            None
        }
    }
}

pub(super) fn id_name(v: Option<&Spanned<String>>, key: &str, expected: &str, p: &mut Vec<Problem>) -> Option<String> {
    let v = v?;
    let s = v.get_ref();
    if s.is_empty() || s.contains(['\0', ':', '\n']) {
        p.push(Problem::found(v.span(), key, format!("{s:?}"), expected));
        return None;
    }
    Some(s.clone())
}

/// SPEC: a duration needs its unit; a bare `10` is refused (seconds? milliseconds?).
pub(super) fn duration(v: Option<&Spanned<String>>, key: &str, p: &mut Vec<Problem>) -> Option<Duration> {
    let v = v?;
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) => Some(d),
        Err(_) => {
            p.push(Problem::found(
                v.span(),
                key,
                format!("{:?}", v.get_ref()),
                raw::DURATION,
            ));
            None
        }
    }
}

pub(super) fn size(v: &Spanned<RawSize>, key: &str, p: &mut Vec<Problem>) -> Option<u64> {
    let parsed = match v.get_ref() {
        RawSize::Bytes(n) => u64::try_from(*n).ok(),
        RawSize::Text(s) => {
            let t = s.trim();
            // bytesize accepts an empty number ("MB") as an error already; refuse a sign here.
            if t.starts_with(['-', '+']) {
                None
            } else {
                // bytesize saturates what overflows at u64::MAX: "99999999TiB" is not 16 EiB.
                bytesize::ByteSize::from_str(t)
                    .ok()
                    .map(|b| b.as_u64())
                    .filter(|&n| n != u64::MAX)
            }
        }
    };
    if parsed.is_none() {
        let found = match v.get_ref() {
            RawSize::Bytes(n) => n.to_string(),
            RawSize::Text(s) => format!("{s:?}"),
        };
        p.push(Problem::found(v.span(), key, found, raw::SIZE));
    }
    parsed
}

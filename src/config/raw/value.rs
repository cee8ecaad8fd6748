//! Readers of one TOML value each: the right type, or a problem and nothing.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::*;

pub(super) fn table<'a, 'i>(
    path: &str,
    v: &'a Spanned<DeValue<'i>>,
    expected: &str,
    p: &mut Vec<Problem>,
) -> Option<&'a DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => {
            p.push(wrong(path, v, expected));
            None
        }
    }
}

pub(super) fn string(
    path: &str,
    v: &Spanned<DeValue<'_>>,
    expected: &str,
    p: &mut Vec<Problem>,
) -> Option<Spanned<String>> {
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(v.span(), s.to_string())),
        _ => {
            p.push(wrong(path, v, expected));
            None
        }
    }
}

/// A user or group: a name, or a number taken as an id (kept as its decimal text).
pub(super) fn name_or_id(
    path: &str,
    v: &Spanned<DeValue<'_>>,
    expected: &str,
    p: &mut Vec<Problem>,
) -> Option<Spanned<String>> {
    match v.get_ref() {
        DeValue::Integer(_) => match to_i64(v) {
            Some(n) if (0..i64::from(u32::MAX)).contains(&n) => Some(Spanned::new(v.span(), n.to_string())),
            Some(_) | None => {
                p.push(wrong(path, v, expected));
                None
            }
        },
        _ => string(path, v, expected, p),
    }
}

pub(super) fn boolean(path: &str, v: &Spanned<DeValue<'_>>, p: &mut Vec<Problem>) -> Option<Spanned<bool>> {
    match v.get_ref() {
        DeValue::Boolean(b) => Some(Spanned::new(v.span(), *b)),
        _ => {
            p.push(wrong(path, v, "true or false"));
            None
        }
    }
}

pub(super) fn to_i64(v: &Spanned<DeValue<'_>>) -> Option<i64> {
    match v.get_ref() {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

pub(super) fn integer(
    path: &str,
    v: &Spanned<DeValue<'_>>,
    expected: &str,
    p: &mut Vec<Problem>,
) -> Option<Spanned<i64>> {
    match to_i64(v) {
        Some(n) => Some(Spanned::new(v.span(), n)),
        None => {
            p.push(wrong(path, v, expected));
            None
        }
    }
}

/// An array whose elements `element` reads (`element_expected` names one). Each wrong element
/// is reported; the array is kept only when all are right.
pub(super) fn array_of<T>(
    path: &str,
    v: &Spanned<DeValue<'_>>,
    expected: &str,
    element_expected: &str,
    element: fn(&str, &Spanned<DeValue<'_>>, &str, &mut Vec<Problem>) -> Option<T>,
    p: &mut Vec<Problem>,
) -> Option<Vec<T>> {
    let DeValue::Array(items) = v.get_ref() else {
        p.push(wrong(path, v, expected));
        return None;
    };
    let before = p.len();
    let out: Vec<_> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| element(&format!("{path}[{i}]"), item, element_expected, p))
        .collect();
    (p.len() == before).then_some(out)
}

pub(super) fn integers(
    path: &str,
    v: &Spanned<DeValue<'_>>,
    expected: &str,
    p: &mut Vec<Problem>,
) -> Option<Vec<Spanned<i64>>> {
    array_of(path, v, expected, "an integer", integer, p)
}

pub(super) fn strings(
    path: &str,
    v: &Spanned<DeValue<'_>>,
    expected: &str,
    p: &mut Vec<Problem>,
) -> Option<Vec<Spanned<String>>> {
    array_of(path, v, expected, "a string", string, p)
}

pub(super) fn command(path: &str, v: &Spanned<DeValue<'_>>, p: &mut Vec<Problem>) -> Option<Spanned<RawCommand>> {
    const EXPECTED: &str =
        "a command line like \"python3 -m http.server\" or an array like [\"python3\", \"-m\", \"http.server\"]";
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(v.span(), RawCommand::Line(s.to_string()))),
        DeValue::Array(_) => {
            let argv = strings(path, v, EXPECTED, p)?;
            Some(Spanned::new(v.span(), RawCommand::Argv(argv)))
        }
        _ => {
            p.push(wrong(path, v, EXPECTED));
            None
        }
    }
}

pub(super) fn environment(
    path: &str,
    v: &Spanned<DeValue<'_>>,
    p: &mut Vec<Problem>,
) -> Vec<(Spanned<String>, Spanned<String>)> {
    let Some(t) = table(path, v, "a table of strings like { PORT = \"8080\" }", p) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in t.iter() {
        let var_path = format!("{path}.{}", segment(key.get_ref()));
        let expected = match value.get_ref() {
            DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                format!("a string (write \"{}\")", describe(value.get_ref()))
            }
            _ => "a string".to_string(),
        };
        if let Some(s) = string(&var_path, value, &expected, p) {
            out.push((Spanned::new(key.span(), key.get_ref().to_string()), s));
        }
    }
    out
}

/// One string or an array of strings.
pub(super) fn paths(
    path: &str,
    v: &Spanned<DeValue<'_>>,
    expected: &str,
    p: &mut Vec<Problem>,
) -> Option<Vec<Spanned<String>>> {
    match v.get_ref() {
        DeValue::Array(_) => strings(path, v, expected, p),
        _ => string(path, v, expected, p).map(|s| vec![s]),
    }
}

pub(super) fn limit(path: &str, v: &Spanned<DeValue<'_>>, p: &mut Vec<Problem>) -> Option<Spanned<RawLimit>> {
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(v.span(), RawLimit::Text(s.to_string()))),
        DeValue::Integer(_) => {
            integer(path, v, RLIMIT, p).map(|n| Spanned::new(n.span(), RawLimit::Number(*n.get_ref())))
        }
        _ => {
            p.push(wrong(path, v, RLIMIT));
            None
        }
    }
}

pub(super) fn rlimits(
    path: &str,
    v: &Spanned<DeValue<'_>>,
    p: &mut Vec<Problem>,
) -> Vec<(Spanned<String>, Spanned<RawRlimit>)> {
    let Some(t) = table(
        path,
        v,
        "a table of limits like { nofile = 65536, core = \"unlimited\" }",
        p,
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in t.iter() {
        let limit_path = format!("{path}.{}", segment(key.get_ref()));
        let name = Spanned::new(key.span(), key.get_ref().to_string());
        let parsed = match value.get_ref() {
            DeValue::Table(pair) => {
                let (mut soft, mut hard) = (None, None);
                let before = p.len();
                for (k, lv) in pair.iter() {
                    let k_path = format!("{limit_path}.{}", segment(k.get_ref()));
                    match k.get_ref().as_ref() {
                        "soft" => soft = limit(&k_path, lv, p),
                        "hard" => hard = limit(&k_path, lv, p),
                        _ => p.push(unknown_key(k, &k_path, &["soft", "hard"])),
                    }
                }
                match (soft, hard) {
                    (Some(soft), Some(hard)) if p.len() == before => Some(RawRlimit::Pair { soft, hard }),
                    _ if p.len() == before => {
                        p.push(wrong(
                            &limit_path,
                            value,
                            "both soft and hard, like { soft = 1024, hard = 4096 }",
                        ));
                        None
                    }
                    _ => None,
                }
            }
            _ => limit(&limit_path, value, p).map(|l| RawRlimit::Both(l.into_inner())),
        };
        if let Some(r) = parsed {
            out.push((name, Spanned::new(value.span(), r)));
        }
    }
    out
}

pub(super) fn size(path: &str, v: &Spanned<DeValue<'_>>, p: &mut Vec<Problem>) -> Option<Spanned<RawSize>> {
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(v.span(), RawSize::Text(s.to_string()))),
        DeValue::Integer(_) => integer(path, v, SIZE, p).map(|n| Spanned::new(n.span(), RawSize::Bytes(*n.get_ref()))),
        _ => {
            p.push(wrong(path, v, SIZE));
            None
        }
    }
}

pub(super) fn signal(path: &str, v: &Spanned<DeValue<'_>>, p: &mut Vec<Problem>) -> Option<Spanned<RawSignal>> {
    const EXPECTED: &str = "a signal name like \"TERM\" or a number";
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(v.span(), RawSignal::Name(s.to_string()))),
        DeValue::Integer(_) => {
            integer(path, v, EXPECTED, p).map(|n| Spanned::new(n.span(), RawSignal::Number(*n.get_ref())))
        }
        _ => {
            p.push(wrong(path, v, EXPECTED));
            None
        }
    }
}

pub(super) fn mode(path: &str, v: &Spanned<DeValue<'_>>, p: &mut Vec<Problem>) -> Option<Spanned<RawMode>> {
    const EXPECTED: &str = "an octal mode like \"0600\"";
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(v.span(), RawMode::Text(s.to_string()))),
        DeValue::Integer(i) => {
            let radix = i.radix();
            integer(path, v, EXPECTED, p).map(|n| {
                Spanned::new(
                    n.span(),
                    RawMode::Integer {
                        value: *n.get_ref(),
                        radix,
                    },
                )
            })
        }
        _ => {
            p.push(wrong(path, v, EXPECTED));
            None
        }
    }
}

/// A float, or an integer taken as one (`cpu_limit = 2`).
pub(super) fn number(
    path: &str,
    v: &Spanned<DeValue<'_>>,
    expected: &str,
    p: &mut Vec<Problem>,
) -> Option<Spanned<f64>> {
    let n = match v.get_ref() {
        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
        // Precision loss above 2^53 CPUs does not matter.
        #[allow(clippy::cast_precision_loss)]
        DeValue::Integer(_) => to_i64(v).map(|n| n as f64),
        _ => None,
    };
    match n {
        Some(n) => Some(Spanned::new(v.span(), n)),
        None => {
            p.push(wrong(path, v, expected));
            None
        }
    }
}

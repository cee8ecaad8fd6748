use toml::Spanned;

use super::*;

/// umask, nice, oom_score_adj and rlimits.
pub(super) fn process_settings(
    raw: &RawProgram,
    program: &mut Program,
    key: &dyn Fn(&str) -> String,
    files: &dyn Files,
    p: &mut Vec<Problem>,
) {
    if let Some(v) = &raw.umask {
        program.umask = mode(
            v,
            &key("umask"),
            "an octal umask like \"027\" or 0o027, at most 0777",
            p,
        );
    }
    if let Some(v) = &raw.nice {
        match i32::try_from(*v.get_ref()) {
            Ok(n) if (-20..=19).contains(&n) => program.nice = Some(n),
            Ok(_) | Err(_) => p.push(Problem::found(
                v.span(),
                &key("nice"),
                v.get_ref(),
                "a niceness from -20 to 19",
            )),
        }
    }
    if let Some(v) = &raw.oom_score_adj {
        match i32::try_from(*v.get_ref()) {
            Ok(n) if (-1000..=1000).contains(&n) => program.oom_score_adj = Some(n),
            Ok(_) | Err(_) => p.push(Problem::found(
                v.span(),
                &key("oom_score_adj"),
                v.get_ref(),
                "an OOM score adjustment from -1000 to 1000",
            )),
        }
    }
    for (name, value) in &raw.rlimits {
        let limit_key = format!("{}.{}", key("rlimits"), raw::segment(name.get_ref()));
        let Some(&(known, bytes)) = RLIMITS.iter().find(|(n, _)| *n == name.get_ref()) else {
            let names: Vec<&str> = RLIMITS.iter().map(|(n, _)| *n).collect();
            p.push(Problem::found(
                name.span(),
                &limit_key,
                format!("the unknown limit {:?}", name.get_ref()),
                format!("one of {}", names.join(", ")),
            ));
            continue;
        };
        let (soft, hard) = match value.get_ref() {
            RawRlimit::Both(l) => {
                let v = limit_value(&Spanned::new(value.span(), l.clone()), &limit_key, bytes, p);
                (v, v)
            }
            RawRlimit::Pair { soft, hard } => (
                limit_value(soft, &format!("{limit_key}.soft"), bytes, p),
                limit_value(hard, &format!("{limit_key}.hard"), bytes, p),
            ),
        };
        let (Some(soft), Some(hard)) = (soft, hard) else {
            continue;
        };
        let show = |l: Option<u64>| l.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
        if soft.unwrap_or(u64::MAX) > hard.unwrap_or(u64::MAX) {
            p.push(Problem::found(
                value.span(),
                &limit_key,
                format!("the soft limit {} above the hard limit {}", show(soft), show(hard)),
                "a soft limit at most the hard one",
            ));
            continue;
        }
        // The kernel refuses a nofile limit above fs.nr_open (and "unlimited" is above it).
        if known == "nofile"
            && let Some(max) = files.nr_open()
            && hard.is_none_or(|h| h > max)
        {
            p.push(Problem::found(
                value.span(),
                &limit_key,
                format!("{}, above this kernel's fs.nr_open ({max})", show(hard)),
                format!("a number of files up to {max}"),
            ));
            continue;
        }
        program.rlimits.push(Rlimit {
            name: known,
            soft,
            hard,
        });
    }
    if let Some(agent) = &raw.agent {
        let settings = [
            ("umask", raw.umask.as_ref().map(Spanned::span)),
            ("nice", raw.nice.as_ref().map(Spanned::span)),
            ("oom_score_adj", raw.oom_score_adj.as_ref().map(Spanned::span)),
            ("rlimits", raw.rlimits.first().map(|(n, _)| n.span())),
        ];
        for (setting, span) in settings {
            if let Some(span) = span {
                p.push(Problem::found(
                    span,
                    &key(setting),
                    format!("{setting} on a program spawned through the agent {:?}", agent.get_ref()),
                    "no umask, nice, oom_score_adj or rlimits with agent (the agent protocol does not carry them: set them on the agent itself)",
                ));
            }
        }
    }
}

/// One limit: `Some(None)` for unlimited, `Some(Some(n))` for a number, `None` after a problem.
pub(super) fn limit_value(v: &Spanned<RawLimit>, key: &str, bytes: bool, p: &mut Vec<Problem>) -> Option<Option<u64>> {
    let parsed = match v.get_ref() {
        RawLimit::Number(n) => u64::try_from(*n).ok().map(Some),
        RawLimit::Text(t) => {
            let t = t.trim();
            if t == "unlimited" || t == "infinity" {
                Some(None)
            } else if let Ok(n) = t.parse::<u64>() {
                Some(Some(n))
            } else if bytes && !t.starts_with(['-', '+']) {
                bytesize::ByteSize::from_str(t).ok().map(|b| Some(b.as_u64()))
            } else {
                None
            }
        }
    };
    match parsed {
        // RLIM_INFINITY is all ones: the same as unlimited.
        Some(Some(u64::MAX)) => Some(None),
        Some(l) => Some(l),
        None => {
            let found = match v.get_ref() {
                RawLimit::Number(n) => n.to_string(),
                RawLimit::Text(t) => format!("{t:?}"),
            };
            let expected = if bytes {
                "a number of bytes, a size like \"64MiB\", or \"unlimited\""
            } else {
                "a number or \"unlimited\""
            };
            p.push(Problem::found(v.span(), key, found, expected));
            None
        }
    }
}

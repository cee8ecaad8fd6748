use super::*;

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok((_, p)) => p,
        Err(p) => p,
    }
}

fn at(text: &str, span: &Span) -> String {
    text[span.clone()].to_string()
}

#[test]
fn every_key_is_read_with_its_span() {
    let text = r#"
[supervisor]
socket = "s.sock"
socket_mode = 0o640
allow_uids = [1000, 1001]

[programs.web]
command = ["python3", "-m", "http.server"]
environment = { PORT = "8080" }
user = 33
cpu_limit = 2
memory_limit = "30MB"
log_max_bytes = 0
stop_signal = 1
depends_on = ["db"]
"#;
    let (raw, p) = parse(text).expect("valid TOML");
    assert_eq!(p, vec![]);
    let sock = raw.supervisor.socket.expect("socket");
    assert_eq!(at(text, &sock.span()), "\"s.sock\"");
    assert_eq!(
        raw.supervisor.socket_mode.map(|m| m.into_inner()),
        Some(RawMode::Integer { value: 0o640, radix: 8 })
    );
    let web = &raw.programs[0];
    assert_eq!(web.name.get_ref(), "web");
    assert_eq!(at(text, &web.name.span()), "web");
    assert!(matches!(web.command.as_ref().map(|c| c.get_ref()), Some(RawCommand::Argv(a)) if a.len() == 3));
    assert_eq!(web.environment[0].1.get_ref(), "8080");
    assert_eq!(web.user.as_ref().map(|u| u.get_ref().as_str()), Some("33"));
    assert_eq!(web.cpu_limit.as_ref().map(|c| *c.get_ref()), Some(2.0));
    assert_eq!(
        web.memory_limit.as_ref().map(|m| m.get_ref().clone()),
        Some(RawSize::Text("30MB".into()))
    );
    assert_eq!(
        web.log_max_bytes.as_ref().map(|m| m.get_ref().clone()),
        Some(RawSize::Bytes(0))
    );
    assert_eq!(
        web.stop_signal.as_ref().map(|s| s.get_ref().clone()),
        Some(RawSignal::Number(1))
    );
    assert_eq!(web.depends_on.as_ref().map(|d| d[0].get_ref().as_str()), Some("db"));
}

#[test]
fn unknown_keys_and_wrong_types_are_all_reported() {
    let text = r#"
color = "blue"
[supervisor]
sockett = "x"
[programs.web]
command = 5
autostart = "yes"
stop_timout = "1s"
exit_codes = [0, "1"]
environment = { PORT = 8080 }
"#;
    let p = problems(text);
    let lines: Vec<String> = p
        .iter()
        .map(|p| format!("{}: {} @{}", p.key, p.detail, at(text, &p.span)))
        .collect();
    let want = [
        "color: found unknown key \"color\", expected one of supervisor, programs, groups @color",
        "supervisor.sockett: found unknown key \"sockett\", expected a known key like \"socket\" @sockett",
        "programs.web.autostart: found \"yes\", expected true or false @\"yes\"",
        "programs.web.command: found 5, expected a command line like \"python3 -m http.server\" or an array like [\"python3\", \"-m\", \"http.server\"] @5",
        "programs.web.environment.PORT: found 8080, expected a string (write \"8080\") @8080",
        "programs.web.exit_codes[1]: found \"1\", expected an integer @\"1\"",
        "programs.web.stop_timout: found unknown key \"stop_timout\", expected a known key like \"stop_timeout\" @stop_timout",
    ];
    for w in want {
        assert!(lines.iter().any(|l| l == w), "missing {w:?} in {lines:#?}");
    }
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
}

#[test]
fn syntax_errors_carry_a_span() {
    let text = "[programs.web]\ncommand = \"a\"\nautostart = yes\n";
    let p = problems(text);
    assert!(!p.is_empty());
    assert!(p[0].detail.to_string().starts_with("invalid TOML: "), "{p:?}");
    assert_eq!(text[..p[0].span.start].lines().count(), 3, "{p:?}");
}

#[test]
fn keys_and_strings_are_quoted_as_toml_wants() {
    assert_eq!(segment("web-1_a"), "web-1_a");
    assert_eq!(segment("web.1"), "\"web.1\"");
    assert_eq!(segment(""), "\"\"");
    assert_eq!(basic_string("a\"b\\c\u{1b}\u{7f}"), r#""a\"b\\c\u001b\u007F""#);
}

#[test]
fn misspelt_keys_get_a_suggestion_only_when_close() {
    assert_eq!(closest("stop_timout", PROGRAM_KEYS), Some("stop_timeout"));
    assert_eq!(closest("comand", PROGRAM_KEYS), Some("command"));
    assert_eq!(closest("zzzzzz", PROGRAM_KEYS), None);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

use super::*;
use crate::process::ExitKind;
use proptest::prelude::*;

fn every_request() -> Vec<Request> {
    vec![
        Request::Status { names: vec![] },
        Request::Status {
            names: vec!["web".into(), "db".into()],
        },
        Request::Start {
            names: vec!["web".into()],
            all: false,
        },
        Request::Start {
            names: vec![],
            all: true,
        },
        Request::Stop {
            names: vec!["web".into()],
            all: false,
        },
        Request::Restart {
            names: vec![],
            all: true,
        },
        Request::Signal {
            signal: "HUP".into(),
            names: vec!["web".into()],
        },
        Request::Constrain {
            name: "web".into(),
            memory: Some(Limit::Value(500_000_000)),
            cpu: Some(Limit::Max),
            pids: None,
        },
        Request::Constrain {
            name: "web".into(),
            memory: Some(Limit::Max),
            cpu: Some(Limit::Value(0.5)),
            pids: Some(Limit::Value(64)),
        },
        Request::Add {
            name: "job".into(),
            command: vec!["/bin/sleep".into(), "100".into()],
            restart: RestartPolicy::Never,
            memory: Some(1 << 20),
            cpu: Some(1.5),
            pids: Some(10),
            stdout: Some("/tmp/job.log".into()),
            directory: "/tmp".into(),
        },
        Request::Add {
            name: "job".into(),
            command: vec!["true".into()],
            restart: RestartPolicy::OnFailure,
            memory: None,
            cpu: None,
            pids: None,
            stdout: None,
            directory: "/".into(),
        },
        Request::Remove { name: "job".into() },
        Request::Reopen,
        Request::Reload,
        Request::Shutdown,
        Request::Watch,
        Request::LogPaths { name: "web".into() },
    ]
}

#[test]
fn every_request_round_trips_through_one_line() {
    let mut seen = std::collections::BTreeSet::new();
    for req in every_request() {
        let line = req.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "{line}");
        let back = parse_request(line.trim_end().as_bytes()).unwrap_or_else(|e| panic!("{line}: {e:?}"));
        assert_eq!(back, req, "{line}");
        seen.insert(req.command());
    }
    let all: std::collections::BTreeSet<_> = COMMANDS.iter().copied().collect();
    assert_eq!(
        seen, all,
        "every command is covered by the round trip and listed in COMMANDS"
    );
}

#[test]
fn requests_look_as_documented() {
    assert_eq!(Request::Status { names: vec![] }.to_line(), "{\"cmd\":\"status\"}\n");
    assert_eq!(
        Request::Constrain {
            name: "web".into(),
            memory: Some(Limit::Value(500_000_000)),
            cpu: Some(Limit::Max),
            pids: None
        }
        .to_line(),
        "{\"cmd\":\"constrain\",\"name\":\"web\",\"memory\":500000000,\"cpu\":\"max\"}\n"
    );
    assert_eq!(
        parse_request(br#"{"v":1,"cmd":"log_paths","name":"web"}"#),
        Ok(Request::LogPaths { name: "web".into() })
    );
}

fn code_of(line: &[u8]) -> ErrorCode {
    match parse_request(line) {
        Ok(r) => panic!("{} parsed as {r:?}", String::from_utf8_lossy(line)),
        Err(e) => e.code,
    }
}

#[test]
fn malformed_lines_get_the_right_error_codes() {
    use ErrorCode::*;
    let cases: &[(&[u8], ErrorCode)] = &[
        (b"", BadRequest),
        (b"hello", BadRequest),
        (b"\xff\xfe{}", BadRequest),
        (b"[1,2]", BadRequest),
        (b"{}", BadRequest),
        (b"{\"cmd\":7}", BadRequest),
        (b"{\"cmd\":\"status\"", BadRequest),
        (b"{\"cmd\":\"launch\"}", UnknownCommand),
        (b"{\"cmd\":\"Status\"}", UnknownCommand),
        (b"{\"v\":2,\"cmd\":\"status\"}", UnsupportedVersion),
        (b"{\"v\":\"1\",\"cmd\":\"status\"}", UnsupportedVersion),
        (b"{\"cmd\":\"status\",\"names\":\"web\"}", BadRequest),
        (b"{\"cmd\":\"status\",\"name\":[\"web\"]}", BadRequest),
        (b"{\"cmd\":\"remove\"}", BadRequest),
        (b"{\"cmd\":\"reload\",\"force\":true}", BadRequest),
        (b"{\"cmd\":\"start\"}", InvalidArgument),
        (b"{\"cmd\":\"stop\",\"names\":[\"a\"],\"all\":true}", InvalidArgument),
        (
            b"{\"cmd\":\"signal\",\"signal\":\"NOPE\",\"names\":[\"a\"]}",
            InvalidArgument,
        ),
        (b"{\"cmd\":\"signal\",\"signal\":\"HUP\",\"names\":[]}", InvalidArgument),
        (b"{\"cmd\":\"constrain\",\"name\":\"a\"}", InvalidArgument),
        (
            b"{\"cmd\":\"constrain\",\"name\":\"a\",\"memory\":\"lots\"}",
            BadRequest,
        ),
        (b"{\"cmd\":\"constrain\",\"name\":\"a\",\"cpu\":0}", InvalidArgument),
        (b"{\"cmd\":\"constrain\",\"name\":\"a\",\"cpu\":1e308}", InvalidArgument),
        (
            b"{\"cmd\":\"constrain\",\"name\":\"a\",\"pids\":4194305}",
            InvalidArgument,
        ),
        (b"{\"cmd\":\"status\",\"cmd\":\"shutdown\"}", BadRequest),
        (b"{\"cmd\":\"status\",\"names\":[\"a\"],\"names\":[\"b\"]}", BadRequest),
        (b"{\"cmd\":\"constrain\",\"name\":\"a\",\"cpu\":-1.5}", InvalidArgument),
        (b"{\"cmd\":\"constrain\",\"name\":\"a\",\"memory\":-5}", BadRequest),
        (
            b"{\"cmd\":\"add\",\"name\":\"../x\",\"command\":[\"true\"],\"directory\":\"/\"}",
            InvalidArgument,
        ),
        (
            b"{\"cmd\":\"add\",\"name\":\"x\",\"command\":[],\"directory\":\"/\"}",
            InvalidArgument,
        ),
        (
            b"{\"cmd\":\"add\",\"name\":\"x\",\"command\":[\"true\"],\"directory\":\"tmp\"}",
            InvalidArgument,
        ),
        (
            b"{\"cmd\":\"add\",\"name\":\"x\",\"command\":[\"true\"],\"directory\":\"/\",\"restart\":\"sometimes\"}",
            BadRequest,
        ),
    ];
    for (line, code) in cases {
        assert_eq!(code_of(line), *code, "{}", String::from_utf8_lossy(line));
    }
    let long = vec![b' '; MAX_REQUEST_LINE + 1];
    assert_eq!(code_of(&long), TooLarge);
}

#[test]
fn responses_serialize_flat_with_ok_and_parse_back() {
    let status = Response::Ok(Reply::Status {
        programs: vec![ProgramStatus {
            name: "web".into(),
            state: "RUNNING".into(),
            pid: Some(42),
            since: 1_763_884_860.5,
            restarts: 2,
            last_exit: Some(ExitKind::Oom.into()),
            memory_bytes: Some(1024),
            memory_limit: None,
            cpu_usage_usec: Some(7),
            cpu_limit: Some(0.5),
            pids_limit: None,
            cgroup: Some("/supervisor/web".into()),
            transient: false,
            ready: false,
            health: None,
            status_text: None,
            started: None,
            pids_current: None,
            program: "web".into(),
            instance: Some(1),
            group: Some("stack".into()),
            groups: vec!["stack".into(), "z".into()],
        }],
    });
    let cases = vec![
        (Response::Ok(Reply::Done {}), "{\"ok\":true}"),
        (
            Response::error(ErrorCode::UnknownProgram, "no program named \"x\""),
            "{\"ok\":false,\"error\":{\"code\":\"unknown_program\",\"message\":\"no program named \\\"x\\\"\"}}",
        ),
        (
            Response::Ok(Reply::Targets {
                targets: vec!["a".into()],
            }),
            "{\"ok\":true,\"targets\":[\"a\"]}",
        ),
        (
            Response::Ok(Reply::Reload(ReloadSummary {
                added: vec!["n".into()],
                removed: vec![],
                changed: vec!["c".into()],
            })),
            "{\"ok\":true,\"added\":[\"n\"],\"removed\":[],\"changed\":[\"c\"]}",
        ),
        (
            Response::Ok(Reply::LogPaths {
                logs: LogPaths {
                    stdout: Some("/l/web.log".into()),
                    stderr: None,
                },
            }),
            "{\"ok\":true,\"logs\":{\"stdout\":\"/l/web.log\",\"stderr\":null}}",
        ),
    ];
    for (resp, wire) in cases {
        let line = resp.to_line();
        assert_eq!(std::str::from_utf8(&line).unwrap(), format!("{wire}\n"));
        assert_eq!(Incoming::parse(wire).unwrap(), Incoming::Response(resp));
    }
    let line = String::from_utf8(status.to_line()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let p = &v["programs"][0];
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    // On the wire, besides what `status --json` shows: the two fields of the tables.
    let mut expected = STATUS_JSON_FIELDS.to_vec();
    expected.extend(["started", "pids_current"]);
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    expected.sort();
    assert_eq!(
        keys_sorted, expected,
        "SPEC's status fields, the two for the tables, program and groups"
    );
    assert_eq!(
        p["last_exit"],
        serde_json::json!({"code": null, "signal": "KILL", "oom_killed": true})
    );
    assert_eq!(Incoming::parse(&line).unwrap(), Incoming::Response(status));
}

#[test]
fn unknown_error_codes_from_a_newer_holden_are_read_as_other() {
    let r = Incoming::parse("{\"ok\":false,\"error\":{\"code\":\"quota_exceeded\",\"message\":\"m\"}}").unwrap();
    assert_eq!(r, Incoming::Response(Response::error(ErrorCode::Other, "m")));
}

#[test]
fn responses_from_a_newer_holden_keep_working_and_malformed_ones_are_refused() {
    let r = Incoming::parse("{\"ok\":true,\"targets\":[\"web\"],\"took_ms\":3,\"extra\":{\"a\":[1]}}").unwrap();
    assert_eq!(
        r,
        Incoming::Response(Response::Ok(Reply::Targets {
            targets: vec!["web".into()]
        }))
    );
    let done = Incoming::parse("{\"ok\":true,\"note\":\"x\"}").unwrap();
    assert_eq!(done, Incoming::Response(Response::Ok(Reply::Done {})));
    for bad in [
        "{\"targets\":[]}",
        "{\"ok\":false}",
        "{\"ok\":true,\"added\":[]}",
        "[1]",
        "{\"ok\":true,\"programs\":[{\"name\":1}]}",
    ] {
        assert!(Incoming::parse(bad).is_err(), "{bad} is refused");
    }
    let e = Incoming::parse("{\"targets\":[]}").unwrap_err().to_string();
    assert!(e.contains("\"ok\": true or false"), "{e}");
}

#[test]
fn events_are_told_apart_from_responses() {
    let ev = Event::Transition {
        name: "web".into(),
        from: "STARTING".into(),
        to: "RUNNING".into(),
        reason: None,
        since: 12.25,
        pid: Some(4242),
    };
    let line = String::from_utf8(ev.to_line()).unwrap();
    assert_eq!(
        line,
        "{\"event\":\"transition\",\"name\":\"web\",\"from\":\"STARTING\",\"to\":\"RUNNING\",\"reason\":null,\"since\":12.25,\"pid\":4242}\n"
    );
    assert_eq!(Incoming::parse(&line).unwrap(), Incoming::Event(ev));
    let removed = Event::Removed { name: "job".into() };
    assert_eq!(
        Incoming::parse(std::str::from_utf8(&removed.to_line()).unwrap()).unwrap(),
        Incoming::Event(removed)
    );
}

#[test]
fn last_exit_says_how_a_run_ended() {
    assert_eq!(LastExit::from(ExitKind::Code(3)).short(), "exit 3");
    assert_eq!(LastExit::from(ExitKind::Signal(15)).short(), "signal TERM");
    assert_eq!(LastExit::from(ExitKind::Oom).short(), "oom-killed");
    assert_eq!(LastExit::from(ExitKind::Unknown).short(), "unknown");
}

proptest! {
    #[test]
    fn random_bytes_never_panic_the_parser(line in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_request(&line);
    }

    #[test]
    fn random_json_objects_never_panic_the_parser(
        cmd in prop_oneof![Just("status".to_string()), Just("add".to_string()), Just("constrain".to_string()), "[a-z_]{0,10}"],
        key in "[a-z_]{1,8}",
        val in prop_oneof![Just("null".to_string()), Just("\"max\"".to_string()), Just("-1".to_string()), Just("1e400".to_string()), Just("[\"x\"]".to_string()), "\"[ -~]{0,12}\""],
    ) {
        let line = format!("{{\"cmd\":\"{cmd}\",\"{key}\":{val},\"name\":\"web\"}}");
        let _ = parse_request(line.as_bytes());
    }
}

//! The client commands against a fake supervisor on a real socket, and their pure parts.

use super::args::{ClientArgs, Targets};
use super::commands::{reload_text, simple, status, status_json};
use super::socket_path;
use super::wait::{Action, act};
use crate::control::protocol::{ErrorCode, Event, ProgramStatus, ReloadSummary, Reply, Request, Response};
use crate::control::server::Limits;
use crate::control::server::test_support::TestServer;
use std::cell::RefCell;
use std::path::PathBuf;

thread_local! {
    /// What `out` wrote on this thread: each test runs on a thread of its own.
    pub(super) static OUTPUT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// What `out` wrote on this thread since the last call.
pub(super) fn take_output() -> String {
    OUTPUT.with(|o| std::mem::take(&mut *o.borrow_mut()))
}

fn status_of(name: &str, state: &str, pid: Option<i32>) -> ProgramStatus {
    ProgramStatus {
        pid,
        ..ProgramStatus::bare(name, state)
    }
}

fn moved(name: &str, from: &str, to: &str, reason: Option<&str>, pid: Option<i32>) -> Event {
    Event::Transition {
        name: name.into(),
        from: from.into(),
        to: to.into(),
        reason: reason.map(String::from),
        since: 0.0,
        pid,
    }
}

/// A fake supervisor with `web` (starts fine) and `bad` (goes to BACKOFF): the events of
/// an action go out after its reply, as they may from a real loop.
fn fake_supervisor() -> TestServer {
    TestServer::start(Limits::default(), |server, reactor, conn, req| match req {
        Request::Watch => {
            let programs = vec![status_of("web", "STOPPED", None), status_of("bad", "RUNNING", Some(9))];
            server.reply(reactor, conn, &Response::Ok(Reply::Status { programs }));
            server.watch(conn);
        }
        Request::Start { names, .. } | Request::Restart { names, .. } => {
            server.reply(reactor, conn, &Response::Ok(Reply::Targets { targets: names.clone() }));
            for n in &names {
                if n == "web" {
                    server.broadcast(reactor, &moved(n, "STOPPED", "STARTING", Some("pid 5"), Some(5)));
                    server.broadcast(reactor, &moved(n, "STARTING", "RUNNING", None, Some(5)));
                } else {
                    server.broadcast(reactor, &moved(n, "RUNNING", "STOPPING", None, Some(9)));
                    server.broadcast(reactor, &moved(n, "STOPPING", "STOPPED", None, None));
                    server.broadcast(reactor, &moved(n, "STOPPED", "STARTING", None, Some(10)));
                    let why = Some("exit status 1; restart 1/5 in 1s");
                    server.broadcast(reactor, &moved(n, "STARTING", "BACKOFF", why, None));
                }
            }
        }
        Request::Status { .. } => server.reply(reactor, conn, &Response::Ok(Reply::Status { programs: vec![] })),
        other => server.reply(
            reactor,
            conn,
            &Response::error(ErrorCode::UnknownProgram, format!("no {}", other.command())),
        ),
    })
}

fn targets(server: &TestServer, names: &[&str]) -> Targets {
    Targets {
        names: names.iter().map(|n| n.to_string()).collect(),
        all: false,
        client: ClientArgs {
            socket: Some(server.path.clone()),
            config: None,
        },
    }
}

#[test]
fn start_follows_events_over_a_real_socket_until_running() {
    let server = fake_supervisor();
    assert_eq!(act(Action::Start, targets(&server, &["web"])).unwrap(), 0);
    assert_eq!(take_output(), "web: RUNNING (pid 5)\n");
}

#[test]
fn restart_into_backoff_fails_with_the_reason() {
    let server = fake_supervisor();
    let e = act(Action::Restart, targets(&server, &["bad"])).unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert_eq!(
        e.to_string(),
        "bad did not restart: BACKOFF (exit status 1; restart 1/5 in 1s)"
    );
}

#[test]
fn server_errors_become_the_users_sentence() {
    let server = fake_supervisor();
    let args = ClientArgs {
        socket: Some(server.path.clone()),
        config: None,
    };
    let e = simple(&args, Request::Remove { name: "x".into() }, "removed").unwrap_err();
    assert_eq!((e.exit_code(), e.to_string().as_str()), (1, "no remove"));
    assert_eq!(status(&args, vec![], true).unwrap(), 0);
    let json: serde_json::Value = serde_json::from_str(&take_output()).unwrap();
    assert_eq!(json, serde_json::json!({ "programs": [] }));
}

#[test]
fn status_json_has_exactly_specs_fields() {
    let mut p = status_of("web", "RUNNING", Some(3));
    p.started = Some(5.0);
    p.pids_current = Some(2);
    let v: serde_json::Value = serde_json::from_str(&status_json(&[p])).unwrap();
    let keys: Vec<&str> = v["programs"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let spec = crate::control::protocol::STATUS_JSON_FIELDS;
    assert_eq!(keys.len(), spec.len(), "{keys:?}");
    assert!(spec.iter().all(|k| keys.contains(k)), "{keys:?}");
    // In SPEC's order on the page.
    let text = status_json(&[status_of("web", "RUNNING", Some(3))]);
    assert!(text.find("\"name\"") < text.find("\"transient\""), "{text}");
    assert!(text.find("\"transient\"") < text.find("\"status_text\""), "{text}");
    assert!(text.find("\"status_text\"") < text.find("\"group\""), "{text}");
}

#[test]
fn reload_summary_lists_what_changed() {
    let s = ReloadSummary {
        added: vec!["a".into(), "b".into()],
        removed: vec![],
        changed: vec!["c".into()],
    };
    assert_eq!(reload_text(&s), "added: a, b\nchanged: c\n");
    assert_eq!(reload_text(&ReloadSummary::default()), "reloaded: nothing changed\n");
}

#[test]
fn socket_lookup_prefers_the_flag() {
    let args = ClientArgs {
        socket: Some("/x/y.sock".into()),
        config: Some("/nonexistent.toml".into()),
    };
    assert_eq!(socket_path(&args), PathBuf::from("/x/y.sock"));
}

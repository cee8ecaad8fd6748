use std::os::unix::net::{UnixListener, UnixStream};

use super::*;
use crate::reactor::Owner;

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn binds_with_the_mode_creates_folders_and_removes_its_file_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/s.sock");
    for mode in [0o600, 0o660, 0o666] {
        let l = Listener::bind(&path, mode, "").unwrap();
        assert_eq!(mode_of(&path), mode);
        assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_socket());
        drop(l);
        assert!(!path.exists(), "mode {mode:o}: the file is removed with the listener");
    }
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    // A socket file whose listener is gone: what a killed server leaves behind.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let l = Listener::bind(&path, 0o600, "").expect("the stale socket is replaced");
    UnixStream::connect(&path).expect("the new listener answers");
    drop(l);
}

#[test]
fn a_live_socket_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let first = Listener::bind(&path, 0o600, "").unwrap();
    match Listener::bind(&path, 0o600, "") {
        Err(BindError::Live { path: p }) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
    // The refused bind neither removed nor changed the live one's file.
    UnixStream::connect(&path).expect("the first listener still answers");
    drop(first);
    assert!(!path.exists());
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    std::fs::write(&path, "mine").unwrap();
    assert!(matches!(
        Listener::bind(&path, 0o600, ""),
        Err(BindError::NotSocket { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
}

#[test]
fn a_successors_socket_is_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let old = Listener::bind(&path, 0o600, "").unwrap();
    std::fs::remove_file(&path).unwrap();
    let new = Listener::bind(&path, 0o600, "").unwrap();
    drop(old);
    assert!(path.exists(), "the old listener left the new one's file");
    drop(new);
    assert!(!path.exists());
}

#[test]
fn a_path_too_long_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x".repeat(120));
    assert!(matches!(
        Listener::bind(&path, 0o600, ""),
        Err(BindError::PathTooLong { .. })
    ));
}

#[test]
fn accepted_connections_carry_their_peers_uid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let reactor = Reactor::new().unwrap();
    let mut l = Listener::bind(&path, 0o666, "").unwrap();
    l.register(&reactor, Token::new(Owner::Agent, 0)).unwrap();
    let ours = UnixStream::connect(&path).unwrap();
    // Another uid, from a thread that takes it (credentials are per thread for the kernel)
    // and ends; SO_PEERCRED keeps the uid of the connect.
    let p = path.clone();
    let theirs = std::thread::spawn(move || {
        rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534)).unwrap();
        UnixStream::connect(&p).unwrap()
    })
    .join()
    .unwrap();
    let got = l.accept(&reactor, Instant::now());
    let uids: Vec<u32> = got.iter().map(|a| a.cred.as_ref().unwrap().uid).collect();
    assert_eq!(uids, [rustix::process::getuid().as_raw(), 65534]);
    assert!(l.accept(&reactor, Instant::now()).is_empty(), "nothing more waits");
    drop((ours, theirs));
}

#[test]
fn the_budget_keeps_a_reserve_per_program() {
    assert_eq!(connection_budget(1024, 0), 992);
    assert_eq!(connection_budget(1024, 10), 912);
    assert_eq!(connection_budget(64, 1), 24);
    assert_eq!(connection_budget(30, 1), 4);
    assert_eq!(connection_budget(64, 100), 4);
    assert!(connection_budget(u64::MAX, 5) > 1_000_000);
}

#[test]
fn idle_connections_and_the_next_deadline() {
    let t0 = Instant::now();
    let timeout = Duration::from_secs(10);
    let conns = [
        (1, t0),
        (2, t0 + Duration::from_secs(3)),
        (3, t0 + Duration::from_secs(5)),
    ];
    let (gone, next) = idle(conns.into_iter(), timeout, t0 + Duration::from_secs(13));
    assert_eq!(gone, [1, 2]);
    assert_eq!(next, Some(t0 + Duration::from_secs(15)));
    let (gone, next) = idle(conns.into_iter(), timeout, t0);
    assert!(gone.is_empty());
    assert_eq!(next, Some(t0 + timeout));
    assert_eq!(idle(std::iter::empty::<(u8, Instant)>(), timeout, t0), (vec![], None));
}

#[test]
fn warnings_are_limited_per_interval_with_a_count() {
    let t0 = Instant::now();
    let mut w = WarnLimit::new(Duration::from_secs(10));
    assert_eq!(w.check(t0).as_deref(), Some(""));
    assert_eq!(w.check(t0 + Duration::from_secs(1)), None);
    assert_eq!(w.check(t0 + Duration::from_secs(2)), None);
    let note = w.check(t0 + Duration::from_secs(10)).unwrap();
    assert_eq!(
        note,
        " (2 more like it since the last such line, within 10s, not logged)"
    );
}

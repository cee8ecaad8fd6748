//! Table tests of the machine on a fake clock: each row is (seconds since start, event,
//! state after, effects).

use super::*;

// The machine of the tables: its process is a bare pid.
type Machine = super::Machine<i32>;
type Event = super::Event<i32>;
type State = super::State<i32>;

fn policy(autorestart: RestartPolicy) -> Policy {
    Policy {
        autorestart,
        exit_codes: vec![0],
        min_uptime: Duration::from_secs(1),
        restart_delay: Duration::from_secs(1),
        max_restart_delay: Duration::from_secs(5),
        max_restarts: 3,
        start_limit_burst: 0,
        start_limit_interval: Duration::from_secs(60),
        stop_signal: Signal(15),
        stop_timeout: Duration::from_secs(10),
        ready_on_uptime: true,
        start_timeout: Duration::from_secs(90),
    }
}

fn secs(base: Instant, s: f64) -> Instant {
    base + Duration::from_secs_f64(s)
}

/// Drive a machine through (time, event) rows, checking the state name and effects after each.
fn table(p: &Policy, rows: &[(f64, Event, &str, &[Effect])]) -> Machine {
    let t0 = Instant::now();
    let mut m = Machine::new(t0);
    for (i, (t, ev, want_state, want_effects)) in rows.iter().enumerate() {
        let effects = m.handle(p, ev.clone(), secs(t0, *t)).effects;
        assert_eq!(m.state.name(), *want_state, "row {i}: {ev:?}");
        assert_eq!(&effects, want_effects, "row {i}: {ev:?}");
    }
    m
}

use super::Event::*;
use Effect::{KillAll, KillLeftovers, Spawn};

#[test]
fn never_policy_goes_to_exited_on_any_end() {
    let p = policy(RestartPolicy::Never);
    let m = table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (0.0, Spawned(10), "STARTING", &[]),
            (0.1, Exited(ExitKind::Code(3)), "EXITED", &[KillLeftovers]),
        ],
    );
    assert_eq!(m.last_exit, Some(ExitKind::Code(3)));
}

#[test]
fn on_failure_exits_on_success_and_restarts_on_failure() {
    let p = policy(RestartPolicy::OnFailure);
    table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (0.0, Spawned(10), "STARTING", &[]),
            (0.1, Exited(ExitKind::Code(0)), "EXITED", &[KillLeftovers]),
            (1.0, Start, "EXITED", &[Spawn]),
            (1.0, Spawned(11), "STARTING", &[]),
            (1.1, Exited(ExitKind::Signal(11)), "BACKOFF", &[KillLeftovers]),
        ],
    );
}

#[test]
fn exit_codes_decide_success() {
    let mut p = policy(RestartPolicy::OnFailure);
    p.exit_codes = vec![0, 3];
    table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (0.0, Spawned(10), "STARTING", &[]),
            (0.1, Exited(ExitKind::Code(3)), "EXITED", &[KillLeftovers]),
        ],
    );
}

#[test]
fn always_restarts_success_too_and_oom_is_a_failure() {
    let p = policy(RestartPolicy::Always);
    table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (0.0, Spawned(10), "STARTING", &[]),
            (0.1, Exited(ExitKind::Code(0)), "BACKOFF", &[KillLeftovers]),
            (1.1, Deadline, "BACKOFF", &[Spawn]),
            (1.1, Spawned(11), "STARTING", &[]),
            (1.2, Exited(ExitKind::Oom), "BACKOFF", &[KillLeftovers]),
        ],
    );
}

#[test]
fn quick_exits_double_the_delay_then_go_fatal_after_max_restarts() {
    let p = policy(RestartPolicy::OnFailure);
    let t0 = Instant::now();
    let mut m = Machine::new(t0);
    let mut now = t0;
    m.handle(&p, Start, now);
    let mut delays = Vec::new();
    let mut reasons = Vec::new();
    for pid in 0..10 {
        m.handle(&p, Spawned(pid), now);
        now += Duration::from_millis(100);
        let tr = m.handle(&p, Exited(ExitKind::Code(1)), now).transition;
        reasons.push(tr.unwrap().reason.unwrap());
        match m.state {
            State::Backoff { until } => {
                delays.push((until - now).as_secs());
                now = until;
                assert_eq!(m.handle(&p, Deadline, now).effects, vec![Spawn]);
            }
            State::Fatal => break,
            ref s => panic!("unexpected {s:?}"),
        }
    }
    assert_eq!(delays, vec![1, 2, 4]);
    assert_eq!(m.state, State::Fatal);
    assert_eq!(reasons[0], "exit status 1; restart 1/3 in 1s");
    assert_eq!(reasons[1], "exit status 1; restart 2/3 in 2s");
    assert_eq!(reasons[3], "exit status 1; gave up after 3 restarts");
    assert_eq!(m.restarts, 3);
}

/// One run that reaches RUNNING and then ends with `exit` at `t + 2`: rows from BACKOFF
/// (or STOPPED for the first) to the end.
fn long_run(t: f64, exit: ExitKind, end_state: &'static str) -> Vec<(f64, Event, &'static str, &'static [Effect])> {
    vec![
        (t, Spawned(10), "STARTING", &[]),
        (t + 1.0, Deadline, "RUNNING", &[]),
        (t + 2.0, Exited(exit), end_state, &[KillLeftovers]),
    ]
}

#[test]
fn failed_runs_past_start_limit_burst_within_the_interval_go_fatal() {
    let mut p = policy(RestartPolicy::Always);
    p.start_limit_burst = 2;
    p.start_limit_interval = Duration::from_secs(20);
    // Every run outlives min_uptime, so max_restarts never counts: the start limit does.
    let mut rows = vec![(0.0, Start, "STOPPED", &[Spawn][..])];
    rows.extend(long_run(0.0, ExitKind::Oom, "BACKOFF"));
    rows.push((3.0, Deadline, "BACKOFF", &[Spawn]));
    // A success is not a failure, whatever the policy restarts.
    rows.extend(long_run(3.0, ExitKind::Code(0), "BACKOFF"));
    rows.push((6.0, Deadline, "BACKOFF", &[Spawn]));
    rows.extend(long_run(6.0, ExitKind::Signal(11), "BACKOFF"));
    rows.push((9.0, Deadline, "BACKOFF", &[Spawn]));
    rows.extend(long_run(9.0, ExitKind::Code(1), "FATAL"));
    // A start by hand begins afresh.
    let mut m = table(&p, &rows);
    let effects = m.handle(&p, Start, Instant::now()).effects;
    assert_eq!(effects, vec![Spawn]);
    assert!(m.failures.is_empty());
}

#[test]
fn failures_older_than_the_interval_do_not_count() {
    let mut p = policy(RestartPolicy::OnFailure);
    p.start_limit_burst = 1;
    p.start_limit_interval = Duration::from_secs(4);
    let mut rows = vec![(0.0, Start, "STOPPED", &[Spawn][..])];
    for k in 0..5 {
        let t = k as f64 * 5.0;
        rows.extend(long_run(t, ExitKind::Code(1), "BACKOFF"));
        rows.push((t + 3.0, Deadline, "BACKOFF", &[Spawn]));
    }
    table(&p, &rows);
    // and with burst 0 there is no limit at all
    p.start_limit_burst = 0;
    p.start_limit_interval = Duration::from_secs(1000);
    table(&p, &rows);
}

#[test]
fn delay_is_capped_at_max_restart_delay() {
    let mut p = policy(RestartPolicy::Always);
    p.max_restart_delay = Duration::from_secs(3);
    assert_eq!(p.delay(1), Duration::from_secs(1));
    assert_eq!(p.delay(2), Duration::from_secs(2));
    assert_eq!(p.delay(3), Duration::from_secs(3));
    assert_eq!(p.delay(40), Duration::from_secs(3));
}

#[test]
fn a_run_that_reached_running_resets_count_and_delay() {
    let p = policy(RestartPolicy::Always);
    let t0 = Instant::now();
    let mut m = Machine::new(t0);
    m.handle(&p, Start, t0);
    m.handle(&p, Spawned(1), t0);
    m.handle(&p, Exited(ExitKind::Code(1)), secs(t0, 0.1));
    m.handle(&p, Deadline, secs(t0, 1.1));
    m.handle(&p, Spawned(2), secs(t0, 1.1));
    m.handle(&p, Exited(ExitKind::Code(1)), secs(t0, 1.2));
    assert_eq!(m.consecutive, 2);
    m.handle(&p, Deadline, secs(t0, 3.2));
    m.handle(&p, Spawned(3), secs(t0, 3.2));
    // min_uptime passes: RUNNING, count reset.
    m.handle(&p, Deadline, secs(t0, 4.2));
    assert_eq!(m.state.name(), "RUNNING");
    assert_eq!(m.consecutive, 0);
    let tr = m.handle(&p, Exited(ExitKind::Code(1)), secs(t0, 100.0)).transition;
    assert_eq!(tr.unwrap().reason.unwrap(), "exit status 1; restart 1/3 in 1s");
    assert_eq!(m.state, State::Backoff { until: secs(t0, 101.0) });
    assert_eq!(m.restarts, 3);
}

#[test]
fn a_command_that_cannot_be_spawned_is_fatal_at_once() {
    let p = policy(RestartPolicy::Always);
    let t0 = Instant::now();
    let mut m = Machine::new(t0);
    m.handle(&p, Start, t0);
    let reason = "cannot spawn /usr/bin/nope: no such file or directory".to_string();
    let Handled {
        effects,
        transition: tr,
        ..
    } = m.handle(
        &p,
        SpawnFailed {
            reason: reason.clone(),
            retry: false,
        },
        t0,
    );
    assert!(effects.is_empty());
    assert_eq!(m.state, State::Fatal);
    assert_eq!(
        tr,
        Some(Transition {
            from: "STOPPED",
            to: "FATAL",
            reason: Some(reason)
        })
    );
}

#[test]
fn a_spawn_short_of_fds_backs_off_forever_and_is_never_fatal() {
    let p = policy(RestartPolicy::Always);
    let t0 = Instant::now();
    let mut m = Machine::new(t0);
    m.handle(&p, Start, t0);
    for i in 0..(p.max_restarts * 3) {
        let now = secs(t0, f64::from(i) * 10.0);
        let Handled {
            effects,
            transition: tr,
            ..
        } = m.handle(
            &p,
            SpawnShort {
                reason: "cannot create an output pipe for web: too many open files".into(),
            },
            now,
        );
        assert!(effects.is_empty());
        assert_eq!(m.state.name(), "BACKOFF", "try {i}");
        let delay = p.delay(i + 1);
        let want = format!(
            "out of a resource, trying again in {}",
            humantime::format_duration(delay)
        );
        assert!(tr.unwrap().reason.unwrap().ends_with(&want), "try {i}");
        let effects = m.handle(&p, Deadline, now + delay).effects;
        assert_eq!(effects, vec![Spawn], "try {i}");
    }
    m.handle(&p, Spawned(7), secs(t0, 100.0));
    assert_eq!(m.state.name(), "STARTING");
    assert_eq!(m.restarts, 0);
}

#[test]
fn a_retryable_spawn_failure_backs_off() {
    let p = policy(RestartPolicy::Always);
    table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (
                0.0,
                SpawnFailed {
                    reason: "agent down".into(),
                    retry: true,
                },
                "BACKOFF",
                &[],
            ),
            (1.0, Deadline, "BACKOFF", &[Spawn]),
        ],
    );
}

#[test]
fn stop_signals_then_escalates_to_kill_and_waits_for_the_tree() {
    let p = policy(RestartPolicy::Always);
    table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (0.0, Spawned(10), "STARTING", &[]),
            (2.0, Deadline, "RUNNING", &[]),
            (3.0, Stop, "STOPPING", &[Effect::Signal(Signal(15))]),
            (3.5, Stop, "STOPPING", &[]),
            (13.0, Deadline, "STOPPING", &[KillAll]),
            (13.1, Exited(ExitKind::Signal(9)), "STOPPING", &[]),
            (13.2, Emptied, "STOPPED", &[]),
            // A stopped program stays stopped.
            (14.0, Deadline, "STOPPED", &[]),
            (14.0, Exited(ExitKind::Code(0)), "STOPPED", &[]),
        ],
    );
}

#[test]
fn kill_skips_the_stop_signal_and_the_timeout() {
    let p = policy(RestartPolicy::Always);
    table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (0.0, Spawned(10), "STARTING", &[]),
            (0.5, Kill, "STOPPING", &[KillAll]),
            (0.6, Exited(ExitKind::Signal(9)), "STOPPING", &[]),
            (0.6, Emptied, "STOPPED", &[]),
            (0.7, Kill, "STOPPED", &[]),
        ],
    );
    table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (0.0, Spawned(10), "STARTING", &[]),
            (0.5, Stop, "STOPPING", &[Effect::Signal(Signal(15))]),
            (0.6, Kill, "STOPPING", &[KillAll]),
        ],
    );
}

#[test]
fn stop_during_backoff_cancels_the_restart() {
    let p = policy(RestartPolicy::Always);
    table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (0.0, Spawned(10), "STARTING", &[]),
            (0.1, Exited(ExitKind::Code(1)), "BACKOFF", &[KillLeftovers]),
            (0.2, Stop, "STOPPED", &[]),
            (5.0, Deadline, "STOPPED", &[]),
        ],
    );
}

#[test]
fn a_stop_is_not_a_failure_and_does_not_restart() {
    let p = policy(RestartPolicy::Always);
    let m = table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (0.0, Spawned(10), "STARTING", &[]),
            (0.5, Stop, "STOPPING", &[Effect::Signal(Signal(15))]),
            (0.6, Exited(ExitKind::Signal(15)), "STOPPING", &[]),
            (0.6, Emptied, "STOPPED", &[]),
        ],
    );
    assert_eq!(m.restarts, 0);
}

#[test]
fn min_uptime_zero_reaches_running_at_the_first_deadline() {
    let mut p = policy(RestartPolicy::Always);
    p.min_uptime = Duration::ZERO;
    let t0 = Instant::now();
    let mut m = Machine::new(t0);
    m.handle(&p, Start, t0);
    m.handle(&p, Spawned(1), t0);
    assert_eq!(m.state.deadline(), Some(t0));
    m.handle(&p, Deadline, t0);
    assert_eq!(m.state.name(), "RUNNING");
}

mod readiness {
    use super::*;

    fn policy() -> Policy {
        Policy {
            autorestart: RestartPolicy::OnFailure,
            exit_codes: vec![0],
            min_uptime: Duration::from_secs(1),
            restart_delay: Duration::from_secs(1),
            max_restart_delay: Duration::from_secs(5),
            max_restarts: 1,
            start_limit_burst: 0,
            start_limit_interval: Duration::from_secs(60),
            stop_signal: Signal(15),
            stop_timeout: Duration::from_secs(10),
            ready_on_uptime: false,
            start_timeout: Duration::from_secs(5),
        }
    }

    fn at(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    /// Rows of (time, event, state after, reason of the transition if any).
    fn run(p: &Policy, rows: &[(f64, Event, &str, Option<&str>)]) -> Machine {
        let t0 = Instant::now();
        let mut m = Machine::new(t0);
        for (i, (t, ev, want, why)) in rows.iter().enumerate() {
            let tr = m.handle(p, ev.clone(), at(t0, *t)).transition;
            assert_eq!(m.state.name(), *want, "row {i}: {ev:?}");
            if let Some(why) = why {
                let got = tr.and_then(|t| t.reason).unwrap_or_default();
                assert_eq!(got, *why, "row {i}: {ev:?}");
            }
        }
        m
    }

    fn ready() -> Event {
        Event::Ready { how: "READY=1".into() }
    }

    #[test]
    fn min_uptime_does_not_make_a_notify_program_ready() {
        let p = policy();
        let t0 = Instant::now();
        let mut m = Machine::new(t0);
        m.handle(&p, Event::Start, t0);
        m.handle(&p, Event::Spawned(7), t0);
        assert_eq!(m.state.deadline(), Some(at(t0, 5.0)), "the deadline is start_timeout");
        let tr = m.handle(&p, ready(), at(t0, 2.0)).transition;
        assert_eq!(m.state.name(), "RUNNING");
        assert_eq!(tr.unwrap().reason.as_deref(), Some("ready: READY=1"));
        assert_eq!(m.state.deadline(), None);
    }

    #[test]
    fn not_ready_within_start_timeout_stops_it_then_restarts_as_a_quick_exit() {
        let p = policy();
        let m = run(
            &p,
            &[
                (0.0, Event::Start, "STOPPED", None),
                (0.0, Event::Spawned(7), "STARTING", None),
                (
                    5.0,
                    Event::Deadline,
                    "STOPPING",
                    Some("not ready after 5s; sent SIGTERM"),
                ),
                (5.1, Event::Exited(ExitKind::Signal(15)), "STOPPING", None),
                (
                    5.1,
                    Event::Emptied,
                    "BACKOFF",
                    Some("not ready after 5s; restart 1/1 in 1s"),
                ),
                (6.1, Event::Deadline, "BACKOFF", None),
                (6.1, Event::Spawned(8), "STARTING", None),
                // Never ready again: counted as a quick exit, so max_restarts = 1 gives up.
                (11.1, Event::Deadline, "STOPPING", None),
                (11.2, Event::Exited(ExitKind::Signal(15)), "STOPPING", None),
                (
                    11.2,
                    Event::Emptied,
                    "FATAL",
                    Some("not ready after 5s; gave up after 1 restarts"),
                ),
            ],
        );
        assert_eq!(m.restarts, 1);
    }

    #[test]
    fn a_failure_with_autorestart_never_ends_exited_with_the_reason() {
        let mut p = policy();
        p.autorestart = RestartPolicy::Never;
        run(
            &p,
            &[
                (0.0, Event::Start, "STOPPED", None),
                (0.0, Event::Spawned(7), "STARTING", None),
                (1.0, ready(), "RUNNING", None),
                (
                    9.0,
                    Event::Fail {
                        reason: "liveness: http 503 3/3".into(),
                    },
                    "STOPPING",
                    Some("liveness: http 503 3/3; sent SIGTERM"),
                ),
                (9.1, Event::Exited(ExitKind::Signal(15)), "STOPPING", None),
                (9.1, Event::Emptied, "EXITED", Some("liveness: http 503 3/3")),
            ],
        );
    }

    #[test]
    fn a_liveness_failure_after_ready_restarts_with_a_fresh_count() {
        let p = policy();
        run(
            &p,
            &[
                (0.0, Event::Start, "STOPPED", None),
                (0.0, Event::Spawned(7), "STARTING", None),
                (1.0, ready(), "RUNNING", None),
                (
                    9.0,
                    Event::Fail {
                        reason: "watchdog".into(),
                    },
                    "STOPPING",
                    None,
                ),
                (9.1, Event::Exited(ExitKind::Signal(15)), "STOPPING", None),
                (9.1, Event::Emptied, "BACKOFF", Some("watchdog; restart 1/1 in 1s")),
            ],
        );
    }

    #[test]
    fn a_stop_during_a_failure_stop_means_no_restart() {
        let p = policy();
        run(
            &p,
            &[
                (0.0, Event::Start, "STOPPED", None),
                (0.0, Event::Spawned(7), "STARTING", None),
                (5.0, Event::Deadline, "STOPPING", None),
                (5.0, Event::Stop, "STOPPING", None),
                (5.1, Event::Exited(ExitKind::Signal(15)), "STOPPING", None),
                (5.1, Event::Emptied, "STOPPED", None),
            ],
        );
    }

    #[test]
    fn extend_timeout_moves_the_start_deadline_and_the_stop_deadline() {
        let p = policy();
        let t0 = Instant::now();
        let mut m = Machine::new(t0);
        m.handle(&p, Event::Start, t0);
        m.handle(&p, Event::Spawned(7), t0);
        m.handle(&p, Event::Extend(Duration::from_secs(20)), at(t0, 4.0));
        assert_eq!(m.state.deadline(), Some(at(t0, 24.0)));
        // Never shortens.
        m.handle(&p, Event::Extend(Duration::from_secs(1)), at(t0, 5.0));
        assert_eq!(m.state.deadline(), Some(at(t0, 24.0)));
        m.handle(&p, Event::Stop, at(t0, 6.0));
        m.handle(&p, Event::Extend(Duration::from_secs(30)), at(t0, 7.0));
        assert_eq!(m.state.deadline(), Some(at(t0, 37.0)));
    }

    #[test]
    fn ready_and_fail_are_ignored_where_they_mean_nothing() {
        let p = policy();
        let mut uptime = p.clone();
        uptime.ready_on_uptime = true;
        run(
            &uptime,
            &[
                (0.0, ready(), "STOPPED", None),
                (0.0, Event::Fail { reason: "x".into() }, "STOPPED", None),
                (0.0, Event::Start, "STOPPED", None),
                (0.0, Event::Spawned(7), "STARTING", None),
                // uptime readiness: EXTEND does not move min_uptime.
                (0.5, Event::Extend(Duration::from_secs(60)), "STARTING", None),
                (1.0, Event::Deadline, "RUNNING", None),
                (2.0, ready(), "RUNNING", None),
            ],
        );
    }
}

/// An exec that failed once the child existed (issue 13): the spawn's policy, from STARTING.
#[test]
fn an_exec_failure_in_starting_is_fatal_or_backs_off_and_lets_the_process_go() {
    let p = policy(RestartPolicy::Always);
    let t0 = Instant::now();
    let mut m = Machine::new(t0);
    m.handle(&p, Start, t0);
    let h = m.handle(&p, Spawned(7), t0);
    assert_eq!(h.transition.and_then(|t| t.reason).as_deref(), Some("pid 7"));
    assert_eq!(h.released, None);
    let reason = "cannot spawn /usr/bin/nope: no such file or directory".to_string();
    let h = m.handle(
        &p,
        SpawnFailed {
            reason: reason.clone(),
            retry: false,
        },
        t0,
    );
    assert_eq!(m.state, State::Fatal);
    assert_eq!((h.released, h.effects), (Some(7), vec![]));
    assert_eq!(
        h.transition,
        Some(Transition {
            from: "STARTING",
            to: "FATAL",
            reason: Some(reason)
        })
    );

    // Short of a resource in the child: backed off, the delay doubling from spawn to spawn
    // although each one was STARTING in between.
    let mut m = Machine::new(t0);
    m.handle(&p, Start, t0);
    let mut delays = Vec::new();
    let mut now = t0;
    for pid in 1..=4 {
        m.handle(&p, Spawned(pid), now);
        let short = SpawnShort {
            reason: "cannot spawn x: cannot allocate memory".into(),
        };
        let h = m.handle(&p, short, now);
        assert_eq!((m.state.name(), h.released), ("BACKOFF", Some(pid)));
        let State::Backoff { until } = m.state else {
            unreachable!()
        };
        delays.push((until - now).as_secs());
        now = until;
        assert_eq!(m.handle(&p, Deadline, now).effects, vec![Spawn]);
    }
    assert_eq!(delays, vec![1, 2, 4, 5], "never FATAL, capped at max_restart_delay");
    // A run that ran ends the row of shortages.
    m.handle(&p, Spawned(9), now);
    m.handle(&p, Exited(ExitKind::Code(1)), now + Duration::from_secs(2));
    assert_eq!(m.short_tries, 0);
}

#[test]
fn a_stop_while_the_exec_is_pending_drops_its_failure_quietly() {
    let p = policy(RestartPolicy::Always);
    table(
        &p,
        &[
            (0.0, Start, "STOPPED", &[Spawn]),
            (0.0, Spawned(10), "STARTING", &[]),
            (0.0, Stop, "STOPPING", &[Effect::Signal(Signal(15))]),
        ],
    );
    let t0 = Instant::now();
    let mut m = Machine::new(t0);
    m.handle(&p, Start, t0);
    m.handle(&p, Spawned(10), t0);
    m.handle(&p, Stop, t0);
    let h = m.handle(
        &p,
        SpawnFailed {
            reason: "cannot spawn x: no such file or directory".into(),
            retry: false,
        },
        t0,
    );
    assert_eq!((h.transition, h.released, m.state.pid()), (None, Some(10), None));
    assert_eq!(m.state.name(), "STOPPING");
    let h = m.handle(&p, Emptied, t0);
    assert_eq!(m.state, State::Stopped);
    assert_eq!(
        h.transition.and_then(|t| t.reason),
        None,
        "no exit status to tell: it never ran"
    );
    assert_eq!(m.last_exit, None);
}

#[test]
fn the_process_leaves_with_the_state_that_held_it() {
    let p = policy(RestartPolicy::Always);
    let t0 = Instant::now();
    let mut m = Machine::new(t0);
    m.handle(&p, Start, t0);
    assert_eq!(m.handle(&p, Spawned(3), t0).released, None);
    assert_eq!(
        m.handle(&p, Deadline, secs(t0, 1.0)).released,
        None,
        "STARTING -> RUNNING keeps it"
    );
    assert_eq!(m.state.pid(), Some(3));
    assert_eq!(m.handle(&p, Stop, secs(t0, 2.0)).released, None, "STOPPING keeps it");
    assert_eq!(
        m.handle(&p, Exited(ExitKind::Signal(15)), secs(t0, 2.1)).released,
        Some(3)
    );
    assert_eq!(m.state.pid(), None);
    m.handle(&p, Emptied, secs(t0, 2.1));
    m.handle(&p, Start, secs(t0, 3.0));
    m.handle(&p, Spawned(4), secs(t0, 3.0));
    let h = m.handle(&p, Exited(ExitKind::Code(1)), secs(t0, 3.5));
    assert_eq!((h.released, m.state.name()), (Some(4), "BACKOFF"));
}

#[test]
fn backoff_doubles_from_first_to_max() {
    let (first, max) = (Duration::from_secs(1), Duration::from_secs(30));
    let got: Vec<u64> = (1..=7).map(|n| backoff(first, max, n).as_secs()).collect();
    assert_eq!(got, vec![1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(backoff(first, max, 200), max, "no overflow");
    assert_eq!(
        backoff(Duration::from_secs(5), Duration::from_secs(1), 3),
        Duration::from_secs(5)
    );
}

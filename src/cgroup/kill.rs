//! Ending every process of a cgroup where the kernel has no `cgroup.kill` (before Linux 5.14,
//! or a pure v1 host): a `KillJob`, a small step machine that never waits.
//!
//! A forking program defeats "read the pids, SIGKILL each": a child forked after the read is
//! not in the list. Frozen, nothing forks, so each round freezes the cgroup, waits for the frozen
//! state, SIGKILLs every pid, and thaws (the SIGKILL is delivered on the way out of the freezer),
//! until a round finds no process or the budget is spent.
//!
//! The wait for the frozen state is the only wait, and the job does not block on it: `step`
//! returns when to look again. On cgroup2 (`cgroup.freeze`, also the controller-less tree of a
//! hybrid host) the kernel notifies `cgroup.events` ("frozen 1") with EPOLLPRI, so a caller that
//! watches that file steps the job at once; the instant `step` returns is only a backstop. The v1
//! freezer's `freezer.state` has no notification: the job is re-checked at a short deadline.
//!
//! A job dropped while the cgroup is frozen thaws it: a process must never be left frozen.

use super::*;

/// How long a job may take in all: after this it thaws and ends, whatever is left. The caller
/// notices what is left (the cgroup stays populated) and decides (kill again, or give up).
const BUDGET: Duration = Duration::from_millis(500);
/// How long one round waits for the frozen state before it kills anyway (a task in
/// uninterruptible sleep can hold freezing up; it dies once it wakes and is thawed).
const FREEZE_WAIT: Duration = Duration::from_millis(100);
/// How soon to look at `freezer.state` again (v1: no notification).
const V1_RECHECK: Duration = Duration::from_millis(1);
/// How soon to look at `cgroup.events` again should no EPOLLPRI come (the caller may not watch
/// the file).
const V2_RECHECK: Duration = Duration::from_millis(5);
/// Between rounds: time for the killed processes to leave `cgroup.procs`.
const ROUND_PAUSE: Duration = Duration::from_millis(1);

/// What the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The job is over: a round found no process (or the budget is spent). Drop it.
    Done,
    /// Step again at this instant, or earlier when `cgroup.events` is ready.
    Again(Instant),
}

/// Which freezer the job uses: cgroup2's `cgroup.freeze` where there is a cgroup2 directory,
/// else the v1 freezer hierarchy's `freezer.state`.
#[derive(Debug)]
enum Freezer {
    V2 { dir: PathBuf },
    V1 { state: PathBuf },
}

impl Freezer {
    fn write(&self, on: bool) -> bool {
        let done = match self {
            Freezer::V2 { dir } => write_file(&dir.join(v2::CGROUP_FREEZE), if on { "1" } else { "0" }),
            Freezer::V1 { state } => write_file(state, if on { "FROZEN" } else { "THAWED" }),
        };
        done.is_ok()
    }

    /// Has the freeze taken hold of every task?
    fn frozen(&self) -> bool {
        match self {
            Freezer::V2 { dir } => {
                let events = fs::read_to_string(dir.join(v2::CGROUP_EVENTS)).unwrap_or_default();
                v2::keyed(&events, "frozen") == Some(1)
            }
            Freezer::V1 { state } => fs::read_to_string(state).is_ok_and(|s| s.trim() == "FROZEN"),
        }
    }

    fn recheck(&self) -> Duration {
        match self {
            Freezer::V2 { .. } => V2_RECHECK,
            Freezer::V1 { .. } => V1_RECHECK,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between rounds: the next one starts at the next step.
    Round,
    /// The freeze is written; the round kills once frozen, or at `until`.
    Freezing { until: Instant },
}

/// SIGKILL to every process of a cgroup without `cgroup.kill`, in rounds of freeze, kill, thaw.
/// Made by `ProgramCgroup::kill_all`; the caller calls `step` at the instant it returns (or
/// sooner, when the cgroup's `cgroup.events` is ready) until it says `Done`.
#[derive(Debug)]
pub struct KillJob {
    cg: ProgramCgroup,
    freezer: Option<Freezer>,
    phase: Phase,
    give_up: Instant,
    rounds: u32,
    /// The instant the last step asked for (at first: at once).
    next: Instant,
}

impl KillJob {
    /// A job for `cg`; its first `step` begins the first round.
    pub(super) fn start(cg: ProgramCgroup, now: Instant) -> KillJob {
        let freezer = match (&cg.dirs.unified, cg.dirs.v1_dir(detect::V1_FREEZER)) {
            (Some(dir), _) if dir.join(v2::CGROUP_FREEZE).exists() => Some(Freezer::V2 { dir: dir.clone() }),
            (_, Some(f)) => Some(Freezer::V1 {
                state: f.join(v1::FREEZER_STATE),
            }),
            _ => None,
        };
        KillJob {
            cg,
            freezer,
            phase: Phase::Round,
            give_up: now + BUDGET,
            rounds: 0,
            next: now,
        }
    }

    /// Do what is due at `now`; never waits.
    pub fn step(&mut self, now: Instant) -> Step {
        let step = self.step_at(now);
        if let Step::Again(at) = step {
            self.next = at;
        }
        step
    }

    /// When to step it next: what the last step asked for.
    pub fn next(&self) -> Instant {
        self.next
    }

    fn step_at(&mut self, now: Instant) -> Step {
        let until = match self.phase {
            Phase::Freezing { until } => until,
            Phase::Round => {
                if self.cg.pids().is_empty() {
                    return Step::Done;
                }
                self.rounds += 1;
                match &self.freezer {
                    Some(f) if f.write(true) => {
                        let until = (now + FREEZE_WAIT).min(self.give_up);
                        self.phase = Phase::Freezing { until };
                        until
                    }
                    // No freezer (none mounted, or it refuses): kill what is listed, round
                    // after round; a fork may slip through each, the budget bounds them.
                    _ => return self.after_kill(now),
                }
            }
        };
        let frozen = self.freezer.as_ref().is_some_and(Freezer::frozen);
        if !frozen && now < until {
            let recheck = self.freezer.as_ref().map_or(V1_RECHECK, Freezer::recheck);
            return Step::Again((now + recheck).min(until));
        }
        self.after_kill(now)
    }

    /// Kill every listed process, thaw, and say whether another round is needed.
    fn after_kill(&mut self, now: Instant) -> Step {
        let killed = self.cg.signal_all(rustix::process::Signal::KILL.as_raw());
        self.thaw();
        if killed == 0 || now >= self.give_up {
            return Step::Done;
        }
        Step::Again(now + ROUND_PAUSE)
    }

    fn thaw(&mut self) {
        if let Phase::Freezing { .. } = self.phase
            && let Some(f) = &self.freezer
        {
            f.write(false);
        }
        self.phase = Phase::Round;
    }

    /// How many rounds it has begun (each a freeze, where there is a freezer).
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Step until `Done`, sleeping until each step's instant: for tests, where nothing else is
    /// served.
    #[cfg(test)]
    pub fn finish(mut self) {
        while let Step::Again(at) = self.step(Instant::now()) {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
    }
}

impl Drop for KillJob {
    fn drop(&mut self) {
        // Never leave a process frozen: a job dropped halfway (a spawn ends the last run's,
        // holden exits) thaws.
        self.thaw();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No process has this pid (above any pid_max): a fake cgroup.procs can list it, and the
    /// SIGKILL for it reaches nobody.
    const NOBODY: &str = "99999999\n";

    /// A fake program cgroup: the cgroup2 dir `u` (with `cgroup.freeze` when `v2_freeze`) and
    /// a v1 freezer dir `f`, each with `procs` listed.
    fn fake_cg(root: &Path, v2_freeze: bool, procs: &str) -> ProgramCgroup {
        let (u, f) = (root.join("u"), root.join("f"));
        fs::create_dir_all(&u).unwrap();
        fs::create_dir_all(&f).unwrap();
        fs::write(u.join(v1::CGROUP_PROCS), procs).unwrap();
        fs::write(u.join(v2::CGROUP_EVENTS), "populated 1\nfrozen 0\n").unwrap();
        if v2_freeze {
            fs::write(u.join(v2::CGROUP_FREEZE), "0\n").unwrap();
        }
        fs::write(f.join(v1::CGROUP_PROCS), procs).unwrap();
        fs::write(f.join(v1::FREEZER_STATE), "THAWED\n").unwrap();
        let dirs = Dirs {
            unified: Some(u),
            v1: vec![(f, vec![detect::V1_FREEZER.to_string()])],
        };
        ProgramCgroup {
            layout: Layout::Hybrid,
            usage: Rc::new(UsageFiles::open(Layout::Hybrid, &Dirs::default(), 0)),
            dirs,
            cgroup_kill: false,
        }
    }

    fn read(root: &Path, file: &str) -> String {
        fs::read_to_string(root.join(file)).unwrap().trim().to_string()
    }

    #[test]
    fn an_empty_cgroup_is_done_at_the_first_step_without_a_freeze() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = fake_cg(tmp.path(), true, "");
        let now = Instant::now();
        let mut job = cg.kill_all(now).unwrap().expect("no cgroup.kill: a job");
        assert_eq!(job.step(now), Step::Done);
        assert_eq!(job.rounds(), 0);
        assert_eq!(read(tmp.path(), "u/cgroup.freeze"), "0");
    }

    #[test]
    fn a_v2_round_waits_for_frozen_with_a_backstop_then_kills_and_thaws() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = fake_cg(tmp.path(), true, NOBODY);
        let t0 = Instant::now();
        let mut job = cg.kill_all(t0).unwrap().unwrap();
        // Not frozen yet: look again at the backstop (EPOLLPRI on cgroup.events comes first).
        assert_eq!(job.step(t0), Step::Again(t0 + V2_RECHECK));
        assert_eq!(read(tmp.path(), "u/cgroup.freeze"), "1");
        assert_eq!(read(tmp.path(), "f/freezer.state"), "THAWED", "one freezer only: v2's");
        let t1 = t0 + Duration::from_millis(2);
        assert_eq!(job.step(t1), Step::Again(t1 + V2_RECHECK));
        // Frozen: the round kills (nobody is reached) and thaws; nothing was killed, so done.
        fs::write(tmp.path().join("u/cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        assert_eq!(job.step(t1), Step::Done);
        assert_eq!(read(tmp.path(), "u/cgroup.freeze"), "0");
        assert_eq!(job.rounds(), 1);
    }

    #[test]
    fn a_v1_round_freezes_with_freezer_state_kills_and_thaws() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = fake_cg(tmp.path(), false, NOBODY);
        let now = Instant::now();
        let mut job = cg.kill_all(now).unwrap().unwrap();
        // A plain file reads back FROZEN at once: the round kills (nobody) and thaws.
        assert_eq!(job.step(now), Step::Done);
        assert_eq!(job.rounds(), 1);
        assert_eq!(read(tmp.path(), "f/freezer.state"), "THAWED");
    }

    #[test]
    fn a_round_kills_anyway_once_the_freeze_takes_too_long() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = fake_cg(tmp.path(), true, NOBODY);
        let t0 = Instant::now();
        let mut job = cg.kill_all(t0).unwrap().unwrap();
        assert_eq!(job.step(t0), Step::Again(t0 + V2_RECHECK));
        // Never frozen (a task in uninterruptible sleep): at FREEZE_WAIT the round kills.
        let late = t0 + FREEZE_WAIT - Duration::from_millis(1);
        assert_eq!(job.step(late), Step::Again(t0 + FREEZE_WAIT));
        assert_eq!(job.step(t0 + FREEZE_WAIT), Step::Done);
        assert_eq!(read(tmp.path(), "u/cgroup.freeze"), "0");
    }

    #[test]
    fn a_job_dropped_while_frozen_thaws_the_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = fake_cg(tmp.path(), true, NOBODY);
        let now = Instant::now();
        let mut job = cg.kill_all(now).unwrap().unwrap();
        assert!(matches!(job.step(now), Step::Again(_)));
        assert_eq!(read(tmp.path(), "u/cgroup.freeze"), "1");
        drop(job);
        assert_eq!(read(tmp.path(), "u/cgroup.freeze"), "0");
    }

    #[test]
    fn without_a_freezer_each_round_kills_what_is_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cg = fake_cg(tmp.path(), false, NOBODY);
        cg.dirs.v1.clear();
        let now = Instant::now();
        let mut job = cg.kill_all(now).unwrap().unwrap();
        // Nobody was reached: done after one round, and no freezer file was written.
        assert_eq!(job.step(now), Step::Done);
        assert_eq!(job.rounds(), 1);
        assert!(!tmp.path().join("u/cgroup.freeze").exists());
    }

    #[test]
    fn cgroup_kill_ends_it_at_once_without_a_job() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cg = fake_cg(tmp.path(), true, NOBODY);
        fs::write(tmp.path().join("u/cgroup.kill"), "").unwrap();
        assert!(
            cg.kill_all(Instant::now()).unwrap().is_some(),
            "cgroup_kill off: the fallback"
        );
        cg.cgroup_kill = true;
        assert!(cg.kill_all(Instant::now()).unwrap().is_none());
        assert_eq!(read(tmp.path(), "u/cgroup.kill"), "1");
    }
}

//! `holden reload` and SIGHUP: the difference between the programs running and the file is a
//! pure function (`diff`, tested as a table below), and the supervisor then applies the plan:
//! removed programs are stopped and forgotten, changed ones stopped and started again with
//! their new settings, added ones started. Transient programs (`holden add`) are left alone.

use crate::config::{self, Config, Program, SupervisorSettings};
use crate::control::protocol::{Event, ReloadSummary};
use crate::control::server::Grants;

use super::Supervisor;
use super::ops::OpError;
use super::slot::After;

/// What a reload does, decided before anything is done.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Plan {
    /// Programs of the file that are no longer in it, in slot order.
    pub(super) removed: Vec<String>,
    /// Programs of the file whose settings changed: their new settings, in slot order.
    pub(super) changed: Vec<Program>,
    /// Programs new in the file (and not the name of a transient one), in the file's order.
    pub(super) added: Vec<Program>,
    /// The control socket's new grants, when they changed (they apply at once).
    pub(super) grants: Option<Grants>,
    /// Other `[supervisor]` settings changed: they apply at the next start of holden.
    pub(super) settings_changed: bool,
}

impl Plan {
    pub(super) fn summary(&self) -> ReloadSummary {
        ReloadSummary {
            added: self.added.iter().map(|p| p.name.clone()).collect(),
            removed: self.removed.clone(),
            changed: self.changed.iter().map(|p| p.name.clone()).collect(),
        }
    }
}

/// The plan that takes the supervisor from `running` (each program with whether it is
/// transient, in slot order), `settings` and `grants` to the file `new`.
pub(super) fn diff<'a>(
    running: impl IntoIterator<Item = (&'a Program, bool)> + Clone,
    settings: &SupervisorSettings,
    grants: &Grants,
    new: &Config,
) -> Plan {
    let mut plan = Plan::default();
    for (program, transient) in running.clone() {
        if transient {
            continue;
        }
        match new.program(&program.name) {
            None => plan.removed.push(program.name.clone()),
            Some(p) if p != program => plan.changed.push(p.clone()),
            Some(_) => {}
        }
    }
    plan.added = new
        .programs
        .iter()
        .filter(|p| !running.clone().into_iter().any(|(r, _)| r.name == p.name))
        .cloned()
        .collect();
    let new_grants = Grants::from_settings(&new.supervisor);
    plan.grants = (new_grants != *grants).then_some(new_grants);
    let without_grants = |s: &SupervisorSettings| {
        let mut s = s.clone();
        s.read_uids.clear();
        s.allow_uids.clear();
        s.admin_uids.clear();
        s
    };
    plan.settings_changed = without_grants(&new.supervisor) != without_grants(settings);
    plan
}

impl Supervisor {
    /// Re-read the config file and apply the difference. An invalid file changes nothing.
    pub(super) fn op_reload(&mut self) -> Result<ReloadSummary, OpError> {
        if self.shutting_down {
            return Err(OpError::ShuttingDown);
        }
        let new = config::load(&self.config.path).map_err(|e| OpError::InvalidConfig(e.to_string()))?;
        let running = self.slots.iter().flatten().map(|s| (&s.program, s.transient));
        let plan = diff(running, &self.config.supervisor, self.control.grants(), &new);
        let summary = plan.summary();
        self.apply_plan(plan);
        log::info!(
            "reloaded {}: added [{}], removed [{}], changed [{}]",
            new.path.display(),
            summary.added.join(", "),
            summary.removed.join(", "),
            summary.changed.join(", ")
        );
        self.config.groups = new.groups;
        self.config.instanced = new.instanced;
        self.settle();
        // The new file's parsed trees are free: give their pages back, as after start-up.
        crate::sys::mem::trim_heap();
        Ok(summary)
    }

    fn apply_plan(&mut self, plan: Plan) {
        if let Some(grants) = plan.grants {
            log::info!(
                "reload: control socket grants now read_uids {:?}, allow_uids {:?}, admin_uids {:?}",
                grants.read_uids,
                grants.allow_uids,
                grants.admin_uids
            );
            self.control.set_grants(&self.reactor, grants);
        }
        if plan.settings_changed {
            log::warn!(
                "reload: [supervisor] settings changed; except the uid grants, they take effect at the next start of holden"
            );
        }
        for name in &plan.removed {
            if let Some(i) = self.index_of(name) {
                self.stop_then(i, After::Remove);
            }
        }
        for program in plan.changed {
            if let Some(i) = self.index_of(&program.name) {
                self.stop_then(i, After::Replace(Box::new(program)));
            }
        }
        for program in plan.added {
            self.events.push(Event::Added {
                name: program.name.clone(),
            });
            let i = self.insert_slot(program, false);
            if self.live(i).is_some_and(|s| s.program.autostart) {
                self.request_start(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        config::load::load_str(std::path::Path::new("/etc/holden/supervisor.toml"), text)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn names(programs: &[Program]) -> Vec<&str> {
        programs.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn diff_sorts_programs_into_added_removed_changed_and_kept() {
        const OLD: &str = r#"
            [programs.kept]
            command = ["sleep", "1"]
            [programs.gone]
            command = ["sleep", "2"]
            [programs.edited]
            command = ["sleep", "3"]
        "#;
        // (new file, transient programs running besides, added, removed, changed)
        type Row<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str], &'a [&'a str]);
        let rows: &[Row] = &[
            (OLD, &[], &[], &[], &[]),
            (
                r#"
                [programs.kept]
                command = ["sleep", "1"]
                [programs.edited]
                command = ["sleep", "30"]
                [programs.fresh]
                command = ["sleep", "4"]
                "#,
                &[],
                &["fresh"],
                &["gone"],
                &["edited"],
            ),
            // A transient program is neither removed nor changed; a file program of its name
            // is not added.
            (
                r#"
                [programs.kept]
                command = ["sleep", "1"]
                [programs.gone]
                command = ["sleep", "2"]
                [programs.edited]
                command = ["sleep", "3"]
                [programs.extra]
                command = ["true"]
                "#,
                &["extra"],
                &[],
                &[],
                &[],
            ),
            ("", &["extra"], &[], &["edited", "gone", "kept"], &[]),
        ];
        let old = config(OLD);
        for (text, transient, added, removed, changed) in rows {
            let extra = config(
                r#"[programs.extra]
                command = ["sleep", "9"]"#,
            );
            let running = old.programs.iter().map(|p| (p, false)).chain(
                extra
                    .programs
                    .iter()
                    .filter(|_| !transient.is_empty())
                    .map(|p| (p, true)),
            );
            let new = config(text);
            let plan = diff(running, &old.supervisor, &Grants::from_settings(&old.supervisor), &new);
            assert_eq!(names(&plan.added), *added, "added, for {text}");
            assert_eq!(plan.removed, *removed, "removed, for {text}");
            assert_eq!(names(&plan.changed), *changed, "changed, for {text}");
            assert_eq!(plan.grants, None);
            assert!(!plan.settings_changed);
            // The changed programs carry the new settings.
            for p in &plan.changed {
                assert_eq!(Some(p), new.program(&p.name));
            }
        }
    }

    #[test]
    fn diff_applies_grants_at_once_and_tells_other_settings_apart() {
        let old = config("[programs.a]\ncommand = [\"true\"]\n");
        let grants = Grants::from_settings(&old.supervisor);
        let running = old.programs.iter().map(|p| (p, false));
        let granted = config("[supervisor]\nread_uids = [1000]\n[programs.a]\ncommand = [\"true\"]\n");
        let plan = diff(running.clone(), &old.supervisor, &grants, &granted);
        assert_eq!(plan.grants.map(|g| g.read_uids), Some(vec![1000]));
        assert!(!plan.settings_changed, "grants alone are not a restart-only change");
        let socket = config("[supervisor]\nsocket = \"/run/other.sock\"\n[programs.a]\ncommand = [\"true\"]\n");
        let plan = diff(running, &old.supervisor, &grants, &socket);
        assert_eq!(plan.grants, None);
        assert!(plan.settings_changed);
        assert_eq!(plan.summary(), ReloadSummary::default());
    }
}

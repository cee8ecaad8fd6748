//! Variables, environment files, and what resolving asks of the file system.

use super::*;

const UNSET: &str = "HOLDEN_TEST_SURELY_UNSET_VARIABLE";

#[test]
fn variables_expand_in_commands_environment_and_paths() {
    let path = std::env::var("PATH").expect("PATH is set");
    let text = r#"[programs.web]
command = "echo ${PATH} '${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-a b}' $$HOME $1 ${PATH}$${X}"
directory = "${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-/srv}/app"
environment = { P = "${PATH}:/x", L = "$${PATH}", S = "cost: 5$" }
stdout = "${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-logs}/web.log"
stderr = "${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-null}"
[programs.argv]
command = ["sh", "-c", "echo $HOME ${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-}x"]
"#;
    let c = ok(text);
    let web = c.program("web").expect("web");
    assert_eq!(
        web.command,
        vec![
            "echo".to_string(),
            path.clone(),
            "a b".into(),
            "$HOME".into(),
            "$1".into(),
            format!("{path}${{X}}"),
        ]
    );
    assert_eq!(web.directory, PathBuf::from("/srv/app"));
    assert_eq!(web.environment["P"], format!("{path}:/x"));
    assert_eq!(web.environment["L"], "${PATH}");
    assert_eq!(web.environment["S"], "cost: 5$");
    assert_eq!(web.stdout, Output::File(PathBuf::from("/etc/holden/logs/web.log")));
    assert_eq!(web.stderr, Output::Null);
    let argv = c.program("argv").expect("argv");
    assert_eq!(argv.command, vec!["sh", "-c", "echo $HOME x"]);
    // What check prints reads back the same, `$` and all.
    let r = render(&c);
    assert!(r.contains("L = \"$${PATH}\""), "{r}");
    let again = load_str(Path::new("/etc/holden/supervisor.toml"), &r).unwrap_or_else(|e| panic!("{e}\n{r}"));
    assert_eq!(again.programs, c.programs);
}

#[test]
fn an_unset_variable_is_an_error_naming_it() {
    let e = errors(&format!(
        "[programs.web]\ncommand = [\"echo\", \"${{{UNSET}}}\"]\nenvironment = {{ A = \"x${{{UNSET}}}\" }}\ndirectory = \"${{A\"\n"
    ));
    assert_eq!(
        e,
        vec![
            format!(
                "sv.toml:2:20: programs.web.command[1]: found ${{{UNSET}}}, but {UNSET} is not set in holden's environment, expected {}",
                vars::EXPECTED
            ),
            format!(
                "sv.toml:3:21: programs.web.environment.A: found ${{{UNSET}}}, but {UNSET} is not set in holden's environment, expected {}",
                vars::EXPECTED
            ),
            format!(
                "sv.toml:4:13: programs.web.directory: found a ${{ without its closing }}, expected {}",
                vars::EXPECTED
            ),
        ]
    );
    let e = one_error(&program_with(&format!("stdout = \"${{{UNSET}}}/x.log\"")));
    assert!(
        e.starts_with("sv.toml:3:10: programs.web.stdout: found ${HOLDEN_TEST"),
        "{e}"
    );
    let e = one_error(&format!("[programs.web]\ncommand = \"run ${{{UNSET}}}\"\n"));
    assert!(
        e.starts_with("sv.toml:2:11: programs.web.command: found ${HOLDEN_TEST"),
        "{e}"
    );
}

fn in_dir(dir: &Path, text: &str) -> Result<Config, Vec<String>> {
    load_str(&dir.join("sv.toml"), text).map_err(|e| e.lines())
}

#[test]
fn environment_files_in_order_then_the_environment_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), "# base\nA=1\nB='two words'\nC=\"x\\ny\"\n").expect("write");
    std::fs::create_dir(dir.path().join("more")).expect("mkdir");
    std::fs::write(dir.path().join("more/over.env"), "export B=2\nD=$A\n").expect("write");
    let text = format!(
        "[programs.web]\ncommand = \"sleep 1\"\nenvironment_file = [\".env\", \"-missing.env\", \"${{{UNSET}:-more}}/over.env\"]\nenvironment = {{ D = \"table\" }}\n"
    );
    let c = in_dir(dir.path(), &text).unwrap_or_else(|e| panic!("{e:#?}"));
    let env = &c.programs[0].environment;
    assert_eq!(env["A"], "1");
    assert_eq!(env["B"], "2");
    assert_eq!(env["C"], "x\ny");
    assert_eq!(env["D"], "table");
    assert_eq!(env.len(), 4);
    // One path alone is fine too.
    let c = in_dir(
        dir.path(),
        "[programs.web]\ncommand = \"x\"\nenvironment_file = \".env\"\n",
    )
    .expect("valid");
    assert_eq!(c.programs[0].environment["A"], "1");
}

#[test]
fn environment_file_problems_name_the_file_its_line_and_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.env"), "A=1\n# fine\nB C\n").expect("write");
    let file = dir.path().join("sv.toml").display().to_string();
    let bad = dir.path().join("bad.env").display().to_string();
    let missing = dir.path().join("missing.env").display().to_string();
    let e = in_dir(
        dir.path(),
        "[programs.web]\ncommand = \"x\"\nenvironment_file = [\"bad.env\", \"missing.env\", \"\"]\n",
    )
    .expect_err("refused");
    assert_eq!(e.len(), 3, "{e:#?}");
    assert_eq!(
        e[0],
        format!(
            "{file}:3:21: programs.web.environment_file[0]: found {bad}:3: \"B C\" has no '=', expected KEY=value lines, # comments and blank lines (quotes as in systemd's EnvironmentFile)"
        )
    );
    assert!(
        e[1].starts_with(&format!(
            "{file}:3:32: programs.web.environment_file[1]: found {missing}, which cannot be read: no such file"
        )),
        "{e:#?}"
    );
    assert!(e[2].contains("programs.web.environment_file[2]: found \"\""), "{e:#?}");
    // Not a regular file: refused at once, never read (a FIFO would block the loop).
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let e = in_dir(
        dir.path(),
        "[programs.web]\ncommand = \"x\"\nenvironment_file = [\"/dev/zero\", \"-.\", \"fifo\"]\n",
    )
    .expect_err("refused");
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[2].contains("fifo, which cannot be read: it is not a regular file"),
        "{e:#?}"
    );
    assert!(
        e[0].contains("found /dev/zero, which cannot be read: it is not a regular file"),
        "{e:#?}"
    );
    assert!(
        e[1].contains("which cannot be read: it is not a regular file"),
        "{e:#?}"
    );
    std::fs::write(dir.path().join("big.env"), vec![b'#'; (ENV_FILE_MAX + 1) as usize]).expect("write");
    let e = in_dir(
        dir.path(),
        "[programs.web]\ncommand = \"x\"\nenvironment_file = \"big.env\"\n",
    )
    .expect_err("refused");
    assert!(e[0].contains("it is larger than 1048576 bytes"), "{e:#?}");
}

/// Answers what `resolve` asks of the file system without touching it.
struct FakeFiles;

impl Files for FakeFiles {
    fn env_file(&self, path: &Path) -> std::io::Result<String> {
        match path.to_str() {
            Some("/etc/app/app.env") => Ok("A=from-the-fake\n".into()),
            _ => Err(std::io::Error::from_raw_os_error(
                rustix::io::Errno::NOENT.raw_os_error(),
            )),
        }
    }

    fn is_stream(&self, path: &Path) -> bool {
        path == Path::new("/var/log/shared")
    }

    fn nr_open(&self) -> Option<u64> {
        Some(100)
    }

    fn absolute(&self, path: &Path) -> std::io::Result<PathBuf> {
        Ok(Path::new("/cwd").join(path))
    }
}

#[test]
fn resolving_asks_files_for_environment_files_streams_and_nr_open() {
    let text = "[programs.a]\ncommand = \"x\"\nenvironment_file = \"app.env\"\nstdout = \"/var/log/shared\"\n\
                [programs.b]\ncommand = \"x\"\nstdout = \"/var/log/shared\"\n";
    let c = resolve(Path::new("/etc/app/sv.toml"), text, &FakeFiles).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.programs[0].environment["A"], "from-the-fake");
    assert_eq!(c.programs[0].directory, Path::new("/etc/app"));
    let e = resolve(
        Path::new("sv.toml"),
        "[programs.a]\ncommand = \"x\"\nrlimits = { nofile = 200 }\nenvironment_file = \"app.env\"\n",
        &FakeFiles,
    )
    .unwrap_err();
    assert_eq!(
        e.lines(),
        [
            "sv.toml:3:22: programs.a.rlimits.nofile: found 200, above this kernel's fs.nr_open (100), expected a number of files up to 100",
            "sv.toml:4:20: programs.a.environment_file: found /cwd/app.env, which cannot be read: no such file or directory, expected a readable file of KEY=value lines (a leading '-' makes a missing file fine)",
        ]
    );
    assert_eq!(e.problems[0].key, "programs.a.rlimits.nofile");
    assert_eq!(e.problems[0].at, Some(LineCol { line: 3, column: 22 }));
}

//! `holden completions` and `holden man`: generated from the clap definitions of `args`.

use std::io::Write;

use clap::CommandFactory;

use super::args::{Cli, Shell};
use super::error::Result;

/// `holden completions SHELL`: the script clap_complete writes from these definitions.
pub fn completions(shell: Shell) -> Result {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "holden", &mut buf),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "holden", &mut buf),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "holden", &mut buf),
    }
    super::out_bytes(&buf)?;
    Ok(0)
}

/// `holden man`: holden(1) in roff, from these definitions: clap_mangen's page for the top
/// level, and a COMMANDS section with each command's usage, description and arguments.
pub fn man() -> Result {
    super::out_bytes(&man_page())?;
    Ok(0)
}

fn man_page() -> Vec<u8> {
    let mut cmd = Cli::command();
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone()).date(MAN_DATE);
    let mut buf = Vec::new();
    type Part = fn(&clap_mangen::Man, &mut dyn Write) -> std::io::Result<()>;
    let parts: [Part; 5] = [
        clap_mangen::Man::render_title,
        clap_mangen::Man::render_name_section,
        clap_mangen::Man::render_synopsis_section,
        clap_mangen::Man::render_description_section,
        clap_mangen::Man::render_options_section,
    ];
    for part in parts {
        part(&page, &mut buf).expect("writing to a Vec cannot fail");
    }
    buf.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let usage = sub.clone().render_usage().to_string();
        let usage = usage.trim_start_matches("Usage:").trim();
        buf.extend_from_slice(format!(".SS \"{}\"\n", roff_text(usage)).as_bytes());
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            buf.extend_from_slice(format!("{}\n", roff_line(&about.to_string())).as_bytes());
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let value = arg
                .get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| id.to_uppercase(), ToString::to_string);
            let head = match (arg.get_short(), arg.get_long()) {
                (Some(s), Some(l)) if arg.get_action().takes_values() => format!(
                    "\\fB\\-{s}\\fR, \\fB\\-\\-{}\\fR \\fI{}\\fR",
                    roff_text(l),
                    roff_text(&value)
                ),
                (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR, \\fB\\-\\-{}\\fR", roff_text(l)),
                (None, Some(l)) if arg.get_action().takes_values() => {
                    format!("\\fB\\-\\-{}\\fR \\fI{}\\fR", roff_text(l), roff_text(&value))
                }
                (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", roff_text(l)),
                (Some(s), None) => format!("\\fB\\-{s}\\fR"),
                (None, None) => format!("\\fI{}\\fR", roff_text(&value)),
            };
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            buf.extend_from_slice(format!(".TP\n{head}\n{}\n", roff_line(&help)).as_bytes());
        }
    }
    clap_mangen::Man::new(cmd)
        .render_version_section(&mut buf)
        .expect("writing to a Vec cannot fail");
    buf
}

/// The date on the man page: fixed, so the page is the same at every build.
const MAN_DATE: &str = "2026";

/// Text for roff: backslashes and hyphens escaped.
fn roff_text(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// A line of roff text that cannot be taken for a request (`.` or `'` first).
fn roff_line(s: &str) -> String {
    let t = roff_text(s.trim());
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_escapes_what_roff_would_read_as_requests() {
        assert_eq!(roff_text("a-b\\c"), "a\\-b\\ec");
        assert_eq!(roff_line(".hidden"), "\\&.hidden");
        assert_eq!(roff_line("'quote"), "\\&'quote");
    }
}

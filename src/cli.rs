//! The command line. `sessions` or `sessions serve` runs the service; `sessions check`
//! runs the consistency check, which reads its own arguments (`sessions_check::main`).
//! Settings are environment variables, and `--help` lists them from the settings
//! table ([`crate::config::settings`]). Anything else on the command line is a usage
//! error, reported before a setting is read or a port bound, with exit code
//! [`EX_USAGE`].

use std::ffi::OsString;

use clap::builder::styling::Styles;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::settings::{self, Setting};

/// Exit code of a command line that cannot be understood (sysexits.h `EX_USAGE`).
pub const EX_USAGE: u8 = 64;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Run the service.
    Serve,
    /// Run `sessions check` with these arguments (those after `check`).
    Check(Vec<String>),
    /// Help or the version was printed, or a usage error reported: exit with this code.
    Exit(u8),
}

#[derive(Parser)]
#[command(
    name = "sessions",
    version,
    about = "Seneca TCP sessions service, keeping sessions in Redis or in an embedded store"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default)
    Serve,
    /// Check the sessions kept in Redis for consistency (read-only)
    #[command(disable_help_flag = true)]
    Check {
        /// The check's own arguments: `sessions check --help` describes them
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The command line's grammar, with the settings table as the help's last section.
pub fn command() -> clap::Command {
    Cli::command().after_help(settings_help(&Styles::styled()))
}

/// What `args` (the program name first) ask for; help, the version and usage errors
/// are printed here, as clap prints them.
pub fn parse<I, T>(args: I) -> Action
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match action(args) {
        Ok(action) => action,
        Err(e) => {
            // Help and version exit 0; every other clap error is a usage error.
            let code = if e.exit_code() == 0 { 0 } else { EX_USAGE };
            let _ = e.print();
            Action::Exit(code)
        }
    }
}

/// [`parse`] without printing: a clap error for help, the version and usage errors.
pub fn action<I, T>(args: I) -> Result<Action, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(match cli.command {
        None | Some(Command::Serve) => Action::Serve,
        Some(Command::Check { args }) => Action::Check(args),
    })
}

/// The help's section on settings: every row of the table, its value's shape, what
/// it means and its default.
fn settings_help(styles: &Styles) -> String {
    let (header, literal) = (styles.get_header(), styles.get_literal());
    let mut out = format!("{header}Settings{header:#} (environment variables):\n");
    let syntax = "Durations take ms, s, m, h or d (a bare number is seconds); sizes take \
                  bytes, KiB, MiB or GiB. An invalid value stops the start with a message \
                  naming the variable.";
    for line in wrap(syntax, 86) {
        out.push_str(&format!("  {line}\n"));
    }
    for s in settings::ALL {
        out.push_str(&format!(
            "  {literal}{}{literal:#}={}\n",
            s.name,
            s.kind.placeholder()
        ));
        let text = format!("{} [default: {}]", plain(s.meaning), s.default_text());
        for line in wrap(&text, 78) {
            out.push_str(&format!("          {line}\n"));
        }
    }
    out
}

/// Markdown from the table as plain text: the code spans lose their backticks.
fn plain(markdown: &str) -> String {
    markdown.replace('`', "")
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A setting as the help lists it, for tests that look for it.
pub fn help_entry(s: &Setting) -> String {
    format!("  {}={}\n", s.name, s.kind.placeholder())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn act(args: &[&str]) -> Result<Action, ErrorKind> {
        action(std::iter::once("sessions").chain(args.iter().copied())).map_err(|e| e.kind())
    }

    #[test]
    fn no_command_and_serve_run_the_service() {
        assert_eq!(act(&[]), Ok(Action::Serve));
        assert_eq!(act(&["serve"]), Ok(Action::Serve));
    }

    #[test]
    fn check_gets_every_argument_after_it() {
        assert_eq!(act(&["check"]), Ok(Action::Check(vec![])));
        assert_eq!(
            act(&["check", "--help"]),
            Ok(Action::Check(vec!["--help".into()]))
        );
        assert_eq!(
            act(&["check", "extra", "-x"]),
            Ok(Action::Check(vec!["extra".into(), "-x".into()]))
        );
    }

    #[test]
    fn anything_else_is_a_usage_error() {
        assert_eq!(act(&["--bogus"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(act(&["serve", "--bogus"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(act(&["serv"]), Err(ErrorKind::InvalidSubcommand));
        assert_eq!(act(&["serve", "extra"]), Err(ErrorKind::UnknownArgument));
        assert_ne!(act(&["--bogus"]).unwrap_err(), ErrorKind::DisplayHelp);
    }

    #[test]
    fn help_and_version_are_not_errors() {
        assert_eq!(act(&["--help"]), Err(ErrorKind::DisplayHelp));
        assert_eq!(act(&["-h"]), Err(ErrorKind::DisplayHelp));
        assert_eq!(act(&["--version"]), Err(ErrorKind::DisplayVersion));
        assert_eq!(act(&["-V"]), Err(ErrorKind::DisplayVersion));
    }

    #[test]
    fn help_lists_every_setting_with_its_default() {
        let help = settings_help(&Styles::plain());
        for s in settings::ALL {
            assert!(help.contains(&help_entry(s)), "{} missing:\n{help}", s.name);
        }
        let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains("Seneca TCP listen address [default: 0.0.0.0:8807]"));
        assert!(words.contains("[default: 1 (4 with SESSIONS_REDIS_WAIT_REPLICAS)]"));
        assert!(!help.contains('`'), "Markdown left in the help:\n{help}");
        assert!(help.lines().all(|l| l.chars().count() <= 100), "{help}");
    }

    #[test]
    fn wraps_between_words() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("a-very-long-word x", 4), ["a-very-long-word", "x"]);
    }
}

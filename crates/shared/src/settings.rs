//! The settings table's building blocks: a row ([`Setting`]: the environment
//! variable, the [`Kind`] of value with its bounds, the [`DefaultValue`] and the
//! meaning), the [`settings_table!`](crate::settings_table) macro that declares rows
//! and the list of them, where values come from ([`Source`]), reading one row
//! ([`reader::Reader`]) and the error naming the variable ([`ConfigError`]).
//!
//! The service's table (its `config::settings`) is made of these rows, and lists the
//! Redis rows of [`redis`] among its own; `sessions check` reads only those.

use std::cell::RefCell;
use std::collections::HashMap;

use self::DefaultValue::{Computed, Literal, Unset};
use self::Kind::{
    Address, Bool, Choice, Duration, File, LogFilter, Number, Secret, Size, Text, Urls,
};

pub mod reader;
pub mod redis;

/// What a setting's value looks like, with the bounds it must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `host:port`.
    Address,
    /// Redis URLs, separated by commas.
    Urls,
    /// Free text.
    Text,
    /// Free text that is never printed or logged (passwords); taken as is, untrimmed.
    Secret,
    /// The path of a file that must be readable at start.
    File,
    /// A whole number in `min..=max`.
    Number { min: usize, max: usize },
    /// Bytes, or a number with `B`, `KiB`, `MiB` or `GiB`; at least `min` bytes.
    Size { min: usize },
    /// A number with `ms`, `s`, `m`, `h` or `d` (a bare number is seconds); zero only
    /// where `zero` says it has a meaning.
    Duration { zero: bool },
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// One of the words, in any case.
    Choice(&'static [&'static str]),
    /// `tracing` filter directives.
    LogFilter,
}

impl Kind {
    /// The value's shape, as `--help` shows it after the name.
    pub fn placeholder(&self) -> String {
        match self {
            Address => "<host:port>".into(),
            Urls => "<url>[,<url>...]".into(),
            Text => "<text>".into(),
            Secret => "<secret>".into(),
            File => "<path>".into(),
            Number { min, max } => format!("<{min}..{max}>"),
            Size { .. } => "<size>".into(),
            Duration { .. } => "<duration>".into(),
            Bool => "<true|false>".into(),
            Choice(words) => format!("<{}>", words.join("|")),
            LogFilter => "<filter>".into(),
        }
    }

    /// What a value must be, for the error naming a value that is not it.
    pub fn expected(&self) -> String {
        match self {
            Address => "an address like 0.0.0.0:8807".into(),
            Urls => "a Redis URL, or several separated by commas".into(),
            Text | Secret => "text".into(),
            File => "a readable file".into(),
            Number { min, max } => format!("a whole number from {min} to {max}"),
            Size { min } => {
                format!("a size in bytes of at least {min} (e.g. 65536, 64KiB, 1MiB)")
            }
            Duration { .. } => {
                "a duration (e.g. 500ms, 30s, 15m, 24h, 30d; a bare number is seconds)".into()
            }
            Bool => "true or false".into(),
            Choice(words) => match words.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => "nothing".into(),
            },
            LogFilter => "a tracing filter (e.g. info,sessions=debug)".into(),
        }
    }
}

/// What a setting is when its variable is unset or empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// This value, written as the variable would be and read by the same parser.
    Literal(&'static str),
    /// Nothing: the feature the setting turns on is off, or another setting decides
    /// (the meaning says which).
    Unset,
    /// Worked out at start, as the text (Markdown) says; the reader has the rule.
    Computed(&'static str),
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable.
    pub name: &'static str,
    pub kind: Kind,
    pub default: DefaultValue,
    /// What it does, in Markdown, word for word as README's table has it.
    pub meaning: &'static str,
}

impl Setting {
    /// The default as README's table shows it (Markdown).
    pub fn default_markdown(&self) -> String {
        match self.default {
            Literal(v) => format!("`{v}`"),
            Unset => "unset".into(),
            Computed(text) => text.into(),
        }
    }

    /// The default as plain text, for help texts.
    pub fn default_text(&self) -> String {
        self.default_markdown().replace('`', "")
    }

    /// This setting's row of README's configuration tables.
    pub fn readme_row(&self) -> String {
        format!(
            "| `{}` | {} | {} |",
            self.name,
            self.default_markdown(),
            self.meaning
        )
    }
}

/// Declares each row as a constant, and a list of them all (named first, with its
/// doc, as in `settings_table! { /// ... ALL: ... }`) in the order given, from one
/// list. A row is declared in place (`NAME = "VARIABLE" { kind, default, meaning }`)
/// or is one declared elsewhere and listed here (`use NAME;`, with `NAME` in scope).
#[macro_export]
macro_rules! settings_table {
    (@rows [$($list_doc:tt)*] $list:ident [$($done:ident)*]) => {
        $($list_doc)*
        pub const $list: &[$crate::settings::Setting] = &[$($done),*];
    };
    (@rows $list_doc:tt $list:ident [$($done:ident)*] use $id:ident; $($rest:tt)*) => {
        $crate::settings_table!(@rows $list_doc $list [$($done)* $id] $($rest)*);
    };
    (@rows $list_doc:tt $list:ident [$($done:ident)*]
        $(#[$doc:meta])*
        $id:ident = $name:literal {
            kind: $kind:expr,
            default: $default:expr,
            meaning: $meaning:expr $(,)?
        }
        $($rest:tt)*
    ) => {
        $(#[$doc])*
        pub const $id: $crate::settings::Setting = $crate::settings::Setting {
            name: $name,
            kind: $kind,
            default: $default,
            meaning: $meaning,
        };
        $crate::settings_table!(@rows $list_doc $list [$($done)* $id] $($rest)*);
    };
    ($(#[$list_doc:meta])* $list:ident: $($rows:tt)*) => {
        $crate::settings_table!(@rows [$(#[$list_doc])*] $list [] $($rows)*);
    };
}

/// Where settings come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Source for HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|s| s.to_string())
    }
}

/// A [`Source`] that remembers which variables were asked for, so a test can show a
/// reader reads every row of its table and nothing else.
pub struct Recording<S> {
    source: S,
    asked: RefCell<Vec<String>>,
}

impl<S: Source> Recording<S> {
    pub fn new(source: S) -> Self {
        Recording {
            source,
            asked: RefCell::default(),
        }
    }

    /// The variables asked for, each once, in the order first asked.
    pub fn asked(self) -> Vec<String> {
        let mut asked = self.asked.into_inner();
        let mut seen = std::collections::HashSet::new();
        asked.retain(|name| seen.insert(name.clone()));
        asked
    }
}

impl<S: Source> Source for Recording<S> {
    fn get(&self, name: &str) -> Option<String> {
        self.asked.borrow_mut().push(name.to_owned());
        self.source.get(name)
    }
}

/// A setting that could not be used, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_read_as_a_list() {
        let mode = Choice(&["standalone", "cluster", "sentinel"]);
        assert_eq!(mode.expected(), "standalone, cluster or sentinel");
        let format = Choice(&["text", "json"]);
        assert_eq!(format.expected(), "text or json");
        assert_eq!(format.placeholder(), "<text|json>");
    }

    mod table {
        use crate::settings::DefaultValue::{Literal, Unset};
        use crate::settings::Kind::Text;

        const ELSEWHERE: crate::settings::Setting = crate::settings::Setting {
            name: "ELSEWHERE",
            kind: Text,
            default: Unset,
            meaning: "declared outside the table",
        };

        crate::settings_table! {
            /// The rows, in order.
            LIST:
            /// A row declared in place.
            FIRST = "FIRST" {
                kind: Text,
                default: Literal("a"),
                meaning: "first",
            }
            use ELSEWHERE;
            LAST = "LAST" {
                kind: Text,
                default: Unset,
                meaning: "last",
            }
        }

        #[test]
        fn rows_declared_here_and_elsewhere_are_listed_in_order() {
            let names: Vec<&str> = LIST.iter().map(|s| s.name).collect();
            assert_eq!(names, ["FIRST", "ELSEWHERE", "LAST"]);
            assert_eq!(FIRST.readme_row(), "| `FIRST` | `a` | first |");
            assert_eq!(LAST.default_text(), "unset");
        }
    }
}

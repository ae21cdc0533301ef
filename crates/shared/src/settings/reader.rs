//! Reading one setting of the table: its variable's value (trimmed; empty counts as
//! unset), else its literal default, parsed as its [`Kind`] says and held to the
//! kind's bounds. Every error names the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, DefaultValue, Kind, Setting, Source};
use crate::connect::Secret;

/// Reads settings from one [`Source`].
pub struct Reader<'a> {
    src: &'a dyn Source,
}

/// `setting`'s error with `message`.
pub fn invalid(setting: &Setting, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: setting.name,
        message: message.into(),
    }
}

impl<'a> Reader<'a> {
    pub fn new(src: &'a dyn Source) -> Self {
        Reader { src }
    }

    /// Whether the variable is set (to something other than blanks).
    pub fn is_set(&self, s: &Setting) -> bool {
        self.given(s).is_some()
    }

    /// The variable's own value, trimmed, when not blank.
    fn given(&self, s: &Setting) -> Option<String> {
        self.src
            .get(s.name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value to parse: the variable's, else the literal default.
    fn value(&self, s: &Setting) -> Option<String> {
        self.given(s).or_else(|| match s.default {
            DefaultValue::Literal(v) => Some(v.to_owned()),
            DefaultValue::Unset | DefaultValue::Computed(_) => None,
        })
    }

    /// The value, or the error for a setting that has neither value nor default.
    fn required(&self, s: &Setting) -> Result<String, ConfigError> {
        self.value(s).ok_or_else(|| invalid(s, "is required"))
    }

    /// The error for a value that is not what the kind expects.
    fn not_a(s: &Setting, v: &str) -> ConfigError {
        invalid(s, format!("{v:?} is not {}", s.kind.expected()))
    }

    /// The error for a setting read as another kind than the table declares.
    fn misread(s: &Setting, as_what: &str) -> ConfigError {
        invalid(s, format!("is a {:?} setting, read as {as_what}", s.kind))
    }

    /// A [`Kind::Text`] or [`Kind::LogFilter`] setting, if set or defaulted.
    pub fn text(&self, s: &Setting) -> Option<String> {
        self.value(s)
    }

    /// A [`Kind::Secret`]: the value exactly as given (a password may start or end with
    /// a space), unset when empty.
    pub fn secret(&self, s: &Setting) -> Option<Secret> {
        self.src
            .get(s.name)
            .filter(|p| !p.is_empty())
            .map(Secret::new)
    }

    /// A [`Kind::Urls`] setting exactly as given, unset when blank.
    pub fn urls(&self, s: &Setting) -> Option<String> {
        self.src.get(s.name).filter(|v| !v.trim().is_empty())
    }

    /// A [`Kind::Address`].
    pub fn addr(&self, s: &Setting) -> Result<SocketAddr, ConfigError> {
        let v = self.required(s)?;
        v.parse().map_err(|_| Self::not_a(s, &v))
    }

    /// A [`Kind::Number`], within its bounds.
    pub fn number(&self, s: &Setting) -> Result<usize, ConfigError> {
        let Kind::Number { min, max } = s.kind else {
            return Err(Self::misread(s, "a number"));
        };
        let v = self.required(s)?;
        match v.parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(Self::not_a(s, &v)),
        }
    }

    /// A [`Kind::Size`] in bytes, at least its minimum.
    pub fn size(&self, s: &Setting) -> Result<usize, ConfigError> {
        let Kind::Size { min } = s.kind else {
            return Err(Self::misread(s, "a size"));
        };
        let v = self.required(s)?;
        match parse_size(&v) {
            Some(n) if n >= min => Ok(n),
            _ => Err(Self::not_a(s, &v)),
        }
    }

    /// A [`Kind::Duration`]; zero only where the kind allows it.
    pub fn duration(&self, s: &Setting) -> Result<Duration, ConfigError> {
        let Kind::Duration { zero } = s.kind else {
            return Err(Self::misread(s, "a duration"));
        };
        let v = self.required(s)?;
        let d = parse_duration(&v).ok_or_else(|| Self::not_a(s, &v))?;
        if d.is_zero() && !zero {
            return Err(invalid(s, "must be greater than zero"));
        }
        Ok(d)
    }

    /// A [`Kind::Bool`].
    pub fn boolean(&self, s: &Setting) -> Result<bool, ConfigError> {
        let v = self.required(s)?;
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(Self::not_a(s, &v)),
        }
    }

    /// A [`Kind::Choice`]: the word chosen, as the table spells it.
    pub fn choice(&self, s: &Setting) -> Result<&'static str, ConfigError> {
        let Kind::Choice(words) = s.kind else {
            return Err(Self::misread(s, "a choice"));
        };
        let v = self.required(s)?;
        words
            .iter()
            .find(|w| w.eq_ignore_ascii_case(&v))
            .copied()
            .ok_or_else(|| Self::not_a(s, &v))
    }

    /// A [`Kind::File`], if set: the path, once the file has been opened.
    pub fn file(&self, s: &Setting) -> Result<Option<PathBuf>, ConfigError> {
        let Some(path) = self.value(s).map(PathBuf::from) else {
            return Ok(None);
        };
        match std::fs::File::open(&path) {
            Ok(_) => Ok(Some(path)),
            Err(e) => Err(invalid(s, format!("cannot read {}: {e}", path.display()))),
        }
    }
}

/// Parses bytes, or a number with `B`, `KiB`, `MiB` or `GiB`.
fn parse_size(v: &str) -> Option<usize> {
    let (digits, mult) = [
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("B", 1),
    ]
    .iter()
    .find_map(|(unit, mult)| Some((v.strip_suffix(unit)?.trim(), *mult)))
    .unwrap_or((v, 1));
    digits.parse::<usize>().ok()?.checked_mul(mult)
}

/// Parses `500ms`, `30s`, `15m`, `24h`, `30d`, or a bare number of seconds.
fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (digits, unit_ms): (&str, u64) = if let Some(d) = v.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = v.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = v.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = v.strip_suffix('h') {
        (d, 3_600_000)
    } else if let Some(d) = v.strip_suffix('d') {
        (d, 86_400_000)
    } else {
        (v, 1000)
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(unit_ms).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("64KiB"), Some(64 << 10));
        assert_eq!(parse_size("2 MiB"), Some(2 << 20));
        assert_eq!(parse_size("10B"), Some(10));
        assert_eq!(parse_size("1kb"), None);
        assert_eq!(parse_size("99999999999999GiB"), None);
    }
}

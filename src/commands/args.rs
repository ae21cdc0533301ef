//! Argument validation shared by the commands: required and optional strings, JSON
//! payloads with their size limit, and the lenient scalar forms Node callers send
//! (`"true"`, `"10"`). Every error names the field.

use serde_json::{Map, Value};

use super::CommandError;
use crate::model::{parse_iso, JsonText, Millis};

/// Size limits on arguments.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `data` or `user`, in compact JSON bytes.
    pub max_data_bytes: usize,
    /// Longest string argument (ids, names, addresses).
    pub max_field_bytes: usize,
    /// Largest page.
    pub max_take: u64,
}

pub(crate) struct Args<'a> {
    act: &'a Map<String, Value>,
    pub limits: &'a Limits,
}

type R<T> = Result<T, CommandError>;

impl<'a> Args<'a> {
    pub fn new(act: &'a Map<String, Value>, limits: &'a Limits) -> Self {
        Args { act, limits }
    }

    /// The value of a top-level argument; JSON null counts as absent.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.act.get(field).filter(|v| !v.is_null())
    }

    pub fn required_str(&self, field: &str) -> R<String> {
        match self.optional_str(field)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(CommandError::invalid(
                field,
                format!("{field} must not be empty"),
            )),
            None => Err(CommandError::invalid(field, format!("{field} is required"))),
        }
    }

    pub fn optional_str(&self, field: &str) -> R<Option<String>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => string_value(field, v, self.limits.max_field_bytes).map(Some),
        }
    }

    /// A JSON payload (`data`, `user`) as text, within the size limit.
    pub fn json(&self, field: &'static str) -> R<Option<JsonText>> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        let raw = serde_json::value::to_raw_value(v)
            .map_err(|_| CommandError::invalid(field, format!("{field} is not valid JSON")))?;
        let size = raw.get().len();
        if size > self.limits.max_data_bytes {
            return Err(CommandError::DataTooLarge {
                field,
                size,
                limit: self.limits.max_data_bytes,
            });
        }
        Ok(Some(raw))
    }

    /// An object argument such as `filter` or `paging`; null or absent is empty.
    pub fn object(&self, field: &str) -> R<Option<&'a Map<String, Value>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(CommandError::invalid(
                field,
                format!("{field} must be an object"),
            )),
        }
    }
}

/// A string argument within the length limit.
pub(crate) fn string_value(field: &str, v: &Value, max: usize) -> R<String> {
    match v {
        Value::String(s) if s.len() <= max => Ok(s.clone()),
        Value::String(_) => Err(CommandError::invalid(
            field,
            format!("{field} is longer than {max} bytes"),
        )),
        _ => Err(CommandError::invalid(
            field,
            format!("{field} must be a string"),
        )),
    }
}

/// A boolean, also from the strings true/false/1/0/yes/no and the numbers 1/0.
pub(crate) fn bool_value(field: &str, v: &Value) -> R<bool> {
    let bad = || CommandError::invalid(field, format!("{field} must be a boolean"));
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Ok(true),
            Some(0.0) => Ok(false),
            _ => Err(bad()),
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// An integer, also from a numeric string.
pub(crate) fn int_value(field: &str, v: &Value) -> R<i64> {
    let bad = || CommandError::invalid(field, format!("{field} must be an integer"));
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.as_u64().is_some() {
                Ok(i64::MAX)
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.is_finite() => Ok(f as i64),
                    _ => Err(bad()),
                }
            }
        }
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A date: an ISO 8601 string (what a JS Date becomes) or epoch milliseconds.
pub(crate) fn date_value(field: &str, v: &Value) -> R<Millis> {
    let bad = || CommandError::invalid(field, format!("{field} must be an ISO 8601 date"));
    match v {
        Value::String(s) => parse_iso(s.trim()).ok_or_else(bad),
        Value::Number(n) => n.as_i64().ok_or_else(bad),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_scalars() {
        assert_eq!(bool_value("a", &json!("yes")), Ok(true));
        assert_eq!(bool_value("a", &json!(0)), Ok(false));
        assert!(bool_value("a", &json!("maybe")).is_err());
        assert_eq!(int_value("skip", &json!("10")), Ok(10));
        assert_eq!(int_value("skip", &json!(-3)), Ok(-3));
        assert!(int_value("skip", &json!(1.5)).is_err());
        assert_eq!(
            date_value("from_time", &json!("1970-01-01T00:00:01.000Z")),
            Ok(1000)
        );
        let err = date_value("from_time", &json!("soon")).unwrap_err();
        assert!(err.to_string().contains("from_time"));
    }

    #[test]
    fn json_size_limit_is_exact() {
        let limits = Limits {
            max_data_bytes: 10,
            max_field_bytes: 10,
            max_take: 100,
        };
        // "\"12345678\"" is exactly 10 bytes of JSON.
        let at = json!({"data": "12345678"});
        let over = json!({"data": "123456789"});
        let a = at.as_object().unwrap();
        let o = over.as_object().unwrap();
        assert!(Args::new(a, &limits).json("data").is_ok());
        assert!(matches!(
            Args::new(o, &limits).json("data"),
            Err(CommandError::DataTooLarge {
                size: 11,
                limit: 10,
                ..
            })
        ));
    }
}

//! Decoding Redis replies: a session hash (HGETALL, flat array or RESP3 map) into a
//! [`Session`], and ZRANGE ... WITHSCORES into index entries. No I/O.
//!
//! Hash encoding: every field is a string; times are integer milliseconds, `active` is
//! "1" or "0", `user` and `data` are JSON text; a null value is an absent field (so an
//! empty string stays an empty string). `rk`, the reuse key, is not part of the session.

use redis::Value;
use serde_json::value::RawValue;

use crate::lifecycle::CloseReason;
use crate::model::{JsonText, Millis, Session};
use crate::store::{StoreError, StoreResult};

/// The fields of a session in the order open's reuse answers them (`lua/open.lua`
/// asks HMGET for exactly these): every stored field but `rk`.
pub(crate) const SESSION_FIELDS: [&str; 11] = [
    "id",
    "user_id",
    "user_name",
    "active",
    "open_time",
    "request_time",
    "close_time",
    "address",
    "client",
    "user",
    "data",
];

/// A session from an HMGET of [`SESSION_FIELDS`]: one value per field, in that order,
/// nil where the field is absent; `None` when none is there (no such hash). Spares a
/// script the loop that finds fields in an HGETALL.
pub(crate) fn session_fields(v: Value) -> StoreResult<Option<Session>> {
    let Value::Array(items) = v else {
        return Err(unexpected("a session's fields", &v));
    };
    if items.len() != SESSION_FIELDS.len() {
        return Err(corrupt("a session's fields, not one per field"));
    }
    let mut b = Builder::default();
    let mut any = false;
    for (field, v) in SESSION_FIELDS.iter().zip(items) {
        if v != Value::Nil {
            any = true;
            b.set(field.as_bytes(), bytes(v)?)?;
        }
    }
    if !any {
        return Ok(None);
    }
    b.build().map(Some)
}

/// A session from an HGETALL-shaped reply; `None` when the hash does not exist.
pub(crate) fn session(v: Value) -> StoreResult<Option<Session>> {
    let mut b = Builder::default();
    match v {
        Value::Nil => return Ok(None),
        Value::Array(items) => {
            if items.is_empty() {
                return Ok(None);
            }
            if items.len() % 2 != 0 {
                return Err(corrupt("odd number of hash items"));
            }
            let mut it = items.into_iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                b.set(&bytes(f)?, bytes(v)?)?;
            }
        }
        Value::Map(pairs) => {
            if pairs.is_empty() {
                return Ok(None);
            }
            for (f, v) in pairs {
                b.set(&bytes(f)?, bytes(v)?)?;
            }
        }
        other => return Err(unexpected("a session hash", &other)),
    }
    b.build().map(Some)
}

/// `(score, member)` pairs of a ZRANGE ... WITHSCORES reply (RESP2 flat or RESP3 pairs).
pub(crate) fn scored_ids(v: Value) -> StoreResult<Vec<(Millis, String)>> {
    let Value::Array(items) = v else {
        return Err(unexpected("a scored range", &v));
    };
    let mut out = Vec::with_capacity(items.len() / 2 + 1);
    if matches!(items.first(), Some(Value::Array(_))) {
        for pair in items {
            let Value::Array(pair) = pair else {
                return Err(corrupt("mixed scored range"));
            };
            let mut it = pair.into_iter();
            let (Some(m), Some(s)) = (it.next(), it.next()) else {
                return Err(corrupt("short scored pair"));
            };
            out.push((score(s)?, text(bytes(m)?)?));
        }
    } else {
        if items.len() % 2 != 0 {
            return Err(corrupt("odd scored range"));
        }
        let mut it = items.into_iter();
        while let (Some(m), Some(s)) = (it.next(), it.next()) {
            out.push((score(s)?, text(bytes(m)?)?));
        }
    }
    Ok(out)
}

/// An integer reply (counts).
pub(crate) fn int(v: &Value) -> StoreResult<i64> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("not an integer")),
        other => Err(unexpected("an integer", other)),
    }
}

/// A count reply as u64 (counts are never negative).
pub(crate) fn count(v: &Value) -> StoreResult<u64> {
    int(v).map(|n| u64::try_from(n).unwrap_or(0))
}

/// An array of counts (the per-reason counts a closing script answers).
pub(crate) fn counts(v: Value) -> StoreResult<Vec<u64>> {
    match v {
        Value::Array(items) => items.iter().map(count).collect(),
        other => Err(unexpected("an array of counts", &other)),
    }
}

/// Why a script closed a session: `logout`, `idle` or `absolute`, or `none` when it
/// found the session closed already.
pub(crate) fn close_reason(v: &Value) -> StoreResult<Option<CloseReason>> {
    let name = match v {
        Value::BulkString(b) => b.as_slice(),
        Value::SimpleString(s) => s.as_bytes(),
        other => return Err(unexpected("a close reason", other)),
    };
    match name {
        b"none" => Ok(None),
        b"logout" => Ok(Some(CloseReason::Logout)),
        b"idle" => Ok(Some(CloseReason::Idle)),
        b"absolute" => Ok(Some(CloseReason::Absolute)),
        _ => Err(corrupt("an unknown close reason")),
    }
}

pub(crate) fn unexpected(what: &str, got: &Value) -> StoreError {
    StoreError::Internal(format!("Redis reply is not {what}: {got:?}"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable Redis data: {what}"))
}

fn bytes(v: Value) -> StoreResult<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        other => Err(unexpected("a string", &other)),
    }
}

fn text(b: Vec<u8>) -> StoreResult<String> {
    String::from_utf8(b).map_err(|_| corrupt("text that is not UTF-8"))
}

fn millis(b: &[u8]) -> StoreResult<Millis> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt("a time that is not an integer"))
}

/// A sorted-set score: scores here are integer milliseconds, which a double holds
/// exactly, and Redis prints them without exponent or fraction.
fn score(v: Value) -> StoreResult<Millis> {
    match v {
        Value::Double(d) => Ok(d as Millis),
        Value::Int(n) => Ok(n),
        other => {
            let b = bytes(other)?;
            millis(&b).or_else(|_| {
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(|d| d as Millis)
                    .ok_or_else(|| corrupt("a score that is not a number"))
            })
        }
    }
}

fn json(b: Vec<u8>) -> StoreResult<JsonText> {
    RawValue::from_string(text(b)?).map_err(|_| corrupt("stored JSON that does not parse"))
}

#[derive(Default)]
struct Builder {
    id: Option<String>,
    user_id: Option<String>,
    user_name: Option<String>,
    active: Option<bool>,
    open_time: Option<Millis>,
    request_time: Option<Millis>,
    close_time: Option<Millis>,
    address: Option<String>,
    client: Option<String>,
    user: Option<JsonText>,
    data: Option<JsonText>,
}

impl Builder {
    fn set(&mut self, field: &[u8], value: Vec<u8>) -> StoreResult<()> {
        match field {
            b"id" => self.id = Some(text(value)?),
            b"user_id" => self.user_id = Some(text(value)?),
            b"user_name" => self.user_name = Some(text(value)?),
            b"active" => self.active = Some(value == b"1"),
            b"open_time" => self.open_time = Some(millis(&value)?),
            b"request_time" => self.request_time = Some(millis(&value)?),
            b"close_time" => self.close_time = Some(millis(&value)?),
            b"address" => self.address = Some(text(value)?),
            b"client" => self.client = Some(text(value)?),
            b"user" => self.user = Some(json(value)?),
            b"data" => self.data = Some(json(value)?),
            // rk (the reuse key) and fields a later version may add.
            _ => {}
        }
        Ok(())
    }

    fn build(self) -> StoreResult<Session> {
        let (Some(id), Some(user_id), Some(active), Some(open_time), Some(request_time)) = (
            self.id,
            self.user_id,
            self.active,
            self.open_time,
            self.request_time,
        ) else {
            return Err(corrupt("session hash without id, user_id, active or times"));
        };
        Ok(Session {
            id,
            user_id,
            user_name: self.user_name,
            active,
            open_time,
            request_time,
            close_time: self.close_time,
            address: self.address,
            client: self.client,
            user: self.user,
            data: self.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn flat(pairs: &[(&str, &str)]) -> Value {
        Value::Array(pairs.iter().flat_map(|(f, v)| [bulk(f), bulk(v)]).collect())
    }

    #[test]
    fn absent_fields_are_null_and_empty_strings_stay() {
        let s = session(flat(&[
            ("id", "00ab"),
            ("user_id", "u"),
            ("user_name", ""),
            ("active", "1"),
            ("open_time", "5"),
            ("request_time", "6"),
            ("data", r#"{"a":[1,"é"]}"#),
            ("rk", "[\"u\",null,null]"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.user_name.as_deref(), Some(""));
        assert_eq!(s.address, None);
        assert_eq!(s.close_time, None);
        assert!(s.user.is_none());
        assert_eq!(s.data.unwrap().get(), r#"{"a":[1,"é"]}"#);
        assert!(s.active);
        assert_eq!((s.open_time, s.request_time), (5, 6));
    }

    #[test]
    fn empty_hash_is_none_and_broken_hash_is_an_error() {
        assert!(session(Value::Array(vec![])).unwrap().is_none());
        assert!(session(Value::Nil).unwrap().is_none());
        assert!(session(flat(&[("id", "x")])).is_err());
        assert!(session(flat(&[
            ("id", "x"),
            ("user_id", "u"),
            ("active", "1"),
            ("open_time", "soon"),
            ("request_time", "1"),
        ]))
        .is_err());
    }

    #[test]
    fn positional_fields_read_like_a_hash() {
        let mut values: Vec<Value> = SESSION_FIELDS
            .iter()
            .map(|f| match *f {
                "id" => bulk("00ab"),
                "user_id" => bulk("u"),
                "active" => bulk("1"),
                "open_time" => bulk("5"),
                "request_time" => bulk("6"),
                "user_name" => bulk(""),
                _ => Value::Nil,
            })
            .collect();
        let s = session_fields(Value::Array(values.clone()))
            .unwrap()
            .unwrap();
        assert_eq!((s.id.as_str(), s.user_id.as_str()), ("00ab", "u"));
        assert_eq!(s.user_name.as_deref(), Some(""), "empty is not null");
        assert_eq!((s.open_time, s.request_time), (5, 6));
        assert!(s.active && s.address.is_none() && s.data.is_none());
        let none = Value::Array(vec![Value::Nil; SESSION_FIELDS.len()]);
        assert!(session_fields(none).unwrap().is_none());
        values.pop();
        assert!(session_fields(Value::Array(values)).is_err());
    }

    #[test]
    fn scores_read_in_both_protocols() {
        let resp2 = Value::Array(vec![bulk("b"), bulk("1795771380098"), bulk("a"), bulk("7")]);
        assert_eq!(
            scored_ids(resp2).unwrap(),
            vec![(1_795_771_380_098, "b".into()), (7, "a".into())]
        );
        let resp3 = Value::Array(vec![Value::Array(vec![bulk("a"), Value::Double(3.0)])]);
        assert_eq!(scored_ids(resp3).unwrap(), vec![(3, "a".into())]);
    }
}

//! Reading RESP2 replies out of a byte buffer, without I/O: owns the reply grammar of
//! the store's own connections ([`super::pipe`]). Produces the redis crate's
//! [`Value`]s, so the rest of the store reads replies the same whichever client
//! fetched them.
//!
//! Only what a RESP2 connection receives: simple strings, errors, integers, bulk
//! strings and arrays (nested). An error reply is handed to the redis crate's own
//! parser, so its kind and code are exactly what that crate would report (NOSCRIPT,
//! READONLY, ...); errors are rare, the other types are the hot path.

use redis::Value;

/// Nesting deeper than this is not a reply the store asked for: a broken stream.
const MAX_DEPTH: usize = 16;

/// The stream is not RESP2 (a bug or a stray byte): the connection cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed reply from Redis: {}", self.0)
    }
}

/// The first complete reply at the start of `buf` and the bytes it took, or `None`
/// when `buf` holds only part of one (read more and call again from the same start).
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, Malformed> {
    let mut at = 0;
    match value(buf, &mut at, 0)? {
        Some(v) => Ok(Some((v, at))),
        None => Ok(None),
    }
}

/// The line starting at `*at`, without its `\r\n`; advances past it.
fn line<'a>(buf: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let rest = buf.get(*at..)?;
    let end = memchr_crlf(rest)?;
    *at += end + 2;
    Some(&rest[..end])
}

fn memchr_crlf(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = b[from..].iter().position(|&c| c == b'\r') {
        let i = from + i;
        match b.get(i + 1) {
            Some(b'\n') => return Some(i),
            Some(_) => from = i + 1,
            None => return None,
        }
    }
    None
}

fn integer(digits: &[u8]) -> Result<i64, Malformed> {
    let (neg, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(Malformed("bad integer"));
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(Malformed("bad integer"));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(i64::from(d - b'0')))
            .ok_or(Malformed("integer out of range"))?;
    }
    Ok(if neg { -n } else { n })
}

fn value(buf: &[u8], at: &mut usize, depth: usize) -> Result<Option<Value>, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed("nested too deep"));
    }
    let start = *at;
    let Some(&kind) = buf.get(start) else {
        return Ok(None);
    };
    *at += 1;
    let Some(head) = line(buf, at) else {
        *at = start;
        return Ok(None);
    };
    let v = match kind {
        b'+' if head == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(String::from_utf8_lossy(head).into_owned()),
        b':' => Value::Int(integer(head)?),
        b'-' => error(&buf[start..*at])?,
        b'$' => {
            let len = integer(head)?;
            if len < 0 {
                Value::Nil
            } else {
                let len = usize::try_from(len).map_err(|_| Malformed("bad length"))?;
                let body = *at;
                let Some(end) = body.checked_add(len) else {
                    return Err(Malformed("bad length"));
                };
                if buf.len() < end + 2 {
                    *at = start;
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err(Malformed("bulk string without its end"));
                }
                *at = end + 2;
                Value::BulkString(buf[body..end].to_vec())
            }
        }
        b'*' => {
            let n = integer(head)?;
            if n < 0 {
                Value::Nil
            } else {
                // Capacity from the data, but never more than the bytes present could
                // hold (each item takes at least 3 bytes): a bogus count cannot make
                // this allocate.
                let n = usize::try_from(n).map_err(|_| Malformed("bad length"))?;
                let mut items = Vec::with_capacity(n.min((buf.len() - *at) / 3));
                for _ in 0..n {
                    match value(buf, at, depth + 1)? {
                        Some(v) => items.push(v),
                        None => {
                            *at = start;
                            return Ok(None);
                        }
                    }
                }
                Value::Array(items)
            }
        }
        _ => return Err(Malformed("unknown reply type")),
    };
    Ok(Some(v))
}

/// An error reply (`-CODE message\r\n`), as the redis crate reads it.
fn error(whole: &[u8]) -> Result<Value, Malformed> {
    match redis::parse_redis_value(whole) {
        Ok(v @ Value::ServerError(_)) => Ok(v),
        _ => Err(Malformed("unreadable error reply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    fn one(s: &str) -> Value {
        let (v, used) = parse(s.as_bytes()).unwrap().unwrap();
        assert_eq!(used, s.len(), "{s:?}");
        v
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn reads_every_resp2_type() {
        assert_eq!(one("+OK\r\n"), Value::Okay);
        assert_eq!(one("+QUEUED\r\n"), Value::SimpleString("QUEUED".into()));
        assert_eq!(one(":-42\r\n"), Value::Int(-42));
        assert_eq!(one("$5\r\nab\r\nc\r\n"), bulk("ab\r\nc"));
        assert_eq!(one("$0\r\n\r\n"), bulk(""));
        assert_eq!(one("$-1\r\n"), Value::Nil);
        assert_eq!(one("*-1\r\n"), Value::Nil);
        assert_eq!(one("*0\r\n"), Value::Array(vec![]));
        assert_eq!(
            one("*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n+x\r\n"),
            Value::Array(vec![
                bulk("a"),
                Value::Array(vec![Value::Int(1), Value::Nil]),
                Value::SimpleString("x".into())
            ])
        );
    }

    #[test]
    fn errors_keep_the_kind_the_store_acts_on() {
        let Value::ServerError(e) = one("-NOSCRIPT No matching script.\r\n") else {
            panic!("not an error");
        };
        let e: RedisError = e.into();
        assert_eq!(e.kind(), ErrorKind::Server(ServerErrorKind::NoScript));
        let Value::ServerError(e) = one("-READONLY You can't write against a replica.\r\n") else {
            panic!("not an error");
        };
        assert_eq!(RedisError::from(e).code(), Some("READONLY"));
        // An error inside an array (a failed command of a transaction) is read too.
        let v = one("*2\r\n-ERR bad\r\n:1\r\n");
        assert!(matches!(v, Value::Array(ref items) if matches!(items[0], Value::ServerError(_))));
    }

    #[test]
    fn a_partial_reply_asks_for_more_at_every_cut() {
        let full = b"*2\r\n$3\r\nabc\r\n*1\r\n:7\r\n:9\r\n";
        let first = full.len() - 4;
        for cut in 0..first {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        let (v, used) = parse(full).unwrap().unwrap();
        assert_eq!(used, first);
        assert_eq!(
            v,
            Value::Array(vec![bulk("abc"), Value::Array(vec![Value::Int(7)])])
        );
        assert_eq!(parse(&full[used..]).unwrap().unwrap().0, Value::Int(9));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in [
            "?\r\n",
            ":12a\r\n",
            ":\r\n",
            "$3\r\nabcd\r\n",
            "$x\r\n",
            ":99999999999999999999\r\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        // A huge announced array with no items is just incomplete, and allocates
        // nothing for the count.
        assert_eq!(parse(b"*2147483647\r\n"), Ok(None));
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2) + ":1\r\n";
        assert!(parse(deep.as_bytes()).is_err());
    }
}

//! The Seneca TCP wire as a real v8 Node client speaks it (PROTOCOL.md §2–§4), for the
//! load generator: message ids, request lines written by hand into a reused buffer,
//! and reply lines parsed without building a JSON tree.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Length of each half of a message id (`<mid>/<cid>`), as Seneca's `Nid` makes them.
pub const ID_LEN: usize = 12;

/// Number of distinct 12-character base36 values (36^12).
pub const ID_SPACE: u64 = 4_738_381_338_321_616_896;

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Appends `v % 36^12` as exactly 12 base36 digits.
pub fn push_base36(buf: &mut Vec<u8>, v: u64) {
    let mut v = v % ID_SPACE;
    let mut digits = [b'0'; ID_LEN];
    for d in digits.iter_mut().rev() {
        *d = BASE36[(v % 36) as usize];
        v /= 36;
    }
    buf.extend_from_slice(&digits);
}

/// Reads exactly 12 base36 digits (lower case, as we write them).
pub fn parse_base36(s: &[u8]) -> Option<u64> {
    if s.len() != ID_LEN {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            _ => return None,
        };
        Some(acc * 36 + u64::from(d))
    })
}

/// Appends a decimal number without going through `fmt`.
pub fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `s` as a JSON string literal (with the quotes), escaping what JSON requires.
pub fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        } else {
            buf.extend_from_slice(esc);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// Writes request lines for one client instance (one `origin`), shaped byte for byte
/// like seneca 3.38 + seneca-transport 8.3 writes them:
///
/// `{"id":"<mid>/<cid>","kind":"act","origin":O,"track":[O],"time":{"client_sent":ms},
/// "act":{"role":"sessions","version":1,"cmd":C,<args>,"custom$":{}},"sync":true,
/// "msg$":{"vin":1,"sid":O,"out":true,"mid":"<mid>","cid":"<cid>","snc":true,"pat":""}}`
///
/// The constant parts around the id, the time and the arguments are built once.
#[derive(Debug, Clone)]
pub struct RequestWriter {
    origin: String,
    after_id: Vec<u8>,
    after_args: Vec<u8>,
}

impl RequestWriter {
    pub fn new(origin: &str) -> Self {
        let mut o = Vec::new();
        push_json_str(&mut o, origin);
        let mut after_id = b"\",\"kind\":\"act\",\"origin\":".to_vec();
        after_id.extend_from_slice(&o);
        after_id.extend_from_slice(b",\"track\":[");
        after_id.extend_from_slice(&o);
        after_id.extend_from_slice(b"],\"time\":{\"client_sent\":");
        let mut after_args =
            b",\"custom$\":{}},\"sync\":true,\"msg$\":{\"vin\":1,\"sid\":".to_vec();
        after_args.extend_from_slice(&o);
        after_args.extend_from_slice(b",\"out\":true,\"mid\":\"");
        RequestWriter {
            origin: origin.to_owned(),
            after_id,
            after_args,
        }
    }

    /// The client instance id every reply must echo.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Writes the line up to and including `"cmd":"<cmd>"`; the caller appends the
    /// arguments (each starting with a comma) and then calls [`RequestWriter::end`].
    /// `cmd` must be a plain identifier (it is written without escaping).
    pub fn begin(&self, buf: &mut Vec<u8>, mid: u64, cid: u64, client_sent_ms: u64, cmd: &str) {
        buf.extend_from_slice(b"{\"id\":\"");
        push_base36(buf, mid);
        buf.push(b'/');
        push_base36(buf, cid);
        buf.extend_from_slice(&self.after_id);
        push_u64(buf, client_sent_ms);
        buf.extend_from_slice(b"},\"act\":{\"role\":\"sessions\",\"version\":1,\"cmd\":\"");
        buf.extend_from_slice(cmd.as_bytes());
        buf.push(b'"');
    }

    /// Closes the `act` object and writes the rest of the envelope and the newline.
    pub fn end(&self, buf: &mut Vec<u8>, mid: u64, cid: u64) {
        buf.extend_from_slice(&self.after_args);
        push_base36(buf, mid);
        buf.extend_from_slice(b"\",\"cid\":\"");
        push_base36(buf, cid);
        buf.extend_from_slice(b"\",\"snc\":true,\"pat\":\"\"}}\n");
    }
}

/// What a reply said about the request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// A result; `null_result` when `res` was null or missing (e.g. unknown session).
    Ok { null_result: bool },
    /// A truthy `error`: the application code (`error.orig.code`) when there is one,
    /// else the Seneca code (`error.code`), else `"error"`.
    Error(Cow<'a, str>),
    /// Shaped wrong for a v8 client (`kind` not `res`, or another `origin`): a real
    /// client would drop it and time out; we count it as `bad_reply`.
    Bad(&'static str),
}

/// A reply line with its id split out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The `<mid>` part decoded, when the id has our shape.
    pub mid: Option<u64>,
    pub outcome: Outcome<'a>,
}

/// A line that cannot be tied to any request (not a JSON object, or no usable id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable;

#[derive(Deserialize)]
struct RawReply<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    origin: Option<Cow<'a, str>>,
    #[serde(default)]
    res: Option<IgnoredAny>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// Parses one reply line (without its `\n`; a trailing `\r` and spaces are fine).
pub fn parse_reply<'a>(line: &'a [u8], expected_origin: &str) -> Result<Reply<'a>, Unreadable> {
    let raw: RawReply<'a> = serde_json::from_slice(line).map_err(|_| Unreadable)?;
    let id = raw.id.ok_or(Unreadable)?;
    let mid = id
        .split_once('/')
        .and_then(|(mid, _)| parse_base36(mid.as_bytes()));
    let outcome = if raw.kind.as_deref() != Some("res") {
        Outcome::Bad("kind")
    } else if raw.origin.as_deref() != Some(expected_origin) {
        Outcome::Bad("origin")
    } else {
        match raw.error.and_then(error_code) {
            Some(code) => Outcome::Error(code),
            None => Outcome::Ok {
                null_result: raw.res.is_none(),
            },
        }
    };
    Ok(Reply { mid, outcome })
}

/// The code to tally for an `error` value, or None when the value is falsy (the client
/// treats `null`, `false`, `0` and `""` as no error).
fn error_code(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    match text {
        "null" | "false" | "0" | "\"\"" => return None,
        _ => {}
    }
    #[derive(Deserialize)]
    struct Orig<'a> {
        #[serde(borrow, default)]
        code: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct ErrorObject<'a> {
        #[serde(borrow, default)]
        code: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        orig: Option<Orig<'a>>,
    }
    // Not an object, or codes that are not strings: still an error, just without a name.
    let obj: ErrorObject<'_> = match serde_json::from_str(text) {
        Ok(o) => o,
        Err(_) => return Some(Cow::Borrowed("error")),
    };
    let app = obj.orig.and_then(|o| o.code).filter(|c| !c.is_empty());
    let seneca = obj.code.filter(|c| !c.is_empty());
    Some(app.or(seneca).unwrap_or(Cow::Borrowed("error")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "q4vv8v2egusy/1795771379897/9928/3.38.0/-";

    #[test]
    fn base36_round_trips_and_is_twelve_chars() {
        for v in [0, 1, 35, 36, 123_456_789, ID_SPACE - 1] {
            let mut b = Vec::new();
            push_base36(&mut b, v);
            assert_eq!(b.len(), ID_LEN);
            assert_eq!(parse_base36(&b), Some(v));
        }
        let mut b = Vec::new();
        push_base36(&mut b, 35);
        assert_eq!(b, b"00000000000z");
        assert_eq!(parse_base36(b"00000000000Z"), None);
        assert_eq!(parse_base36(b"0000000000z"), None);
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for v in [0u64, 7, 10, 1_795_771_380_098, u64::MAX] {
            let mut b = Vec::new();
            push_u64(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }

    #[test]
    fn strings_are_escaped_like_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "nl\n\r\t",
            "\u{1}ctl\u{1f}",
            "é€😀",
        ] {
            let mut b = Vec::new();
            push_json_str(&mut b, s);
            let back: String = serde_json::from_slice(&b).unwrap();
            assert_eq!(back, s);
        }
        let mut b = Vec::new();
        push_json_str(&mut b, "\u{1}");
        assert_eq!(b, b"\"\\u0001\"");
    }

    #[test]
    fn request_line_has_the_v8_shape() {
        let w = RequestWriter::new(ORIGIN);
        let mut b = Vec::new();
        w.begin(&mut b, 7, 8, 1_795_771_380_098, "get_session");
        b.extend_from_slice(b",\"id\":\"abc\"");
        w.end(&mut b, 7, 8);
        let expected = concat!(
            r#"{"id":"000000000007/000000000008","kind":"act","origin":"q4vv8v2egusy/1795771379897/9928/3.38.0/-","#,
            r#""track":["q4vv8v2egusy/1795771379897/9928/3.38.0/-"],"time":{"client_sent":1795771380098},"#,
            r#""act":{"role":"sessions","version":1,"cmd":"get_session","id":"abc","custom$":{}},"sync":true,"#,
            r#""msg$":{"vin":1,"sid":"q4vv8v2egusy/1795771379897/9928/3.38.0/-","out":true,"mid":"000000000007","#,
            r#""cid":"000000000008","snc":true,"pat":""}}"#,
            "\n"
        );
        assert_eq!(String::from_utf8(b).unwrap(), expected);
    }

    fn parse(line: &str) -> Result<Reply<'_>, Unreadable> {
        parse_reply(line.as_bytes(), ORIGIN)
    }

    #[test]
    fn success_reply_from_a_node_server() {
        let line = r#"{"id":"7xsaki84amv6/01s4jt5vfv2c","kind":"res","origin":"q4vv8v2egusy/1795771379897/9928/3.38.0/-","accept":"hs8yt3o5g6l1/1795771379033/9876/3.38.0/-","track":["q4vv8v2egusy/1795771379897/9928/3.38.0/-"],"time":{"client_sent":1795771380098,"listen_recv":1795771380107,"listen_sent":1795771380109},"sync":true,"res":{"id":"abc","user_id":"u-42","ip":"10.0.0.1","created_at":"2020-01-02T03:04:05.000Z","active":true}}"#;
        let r = parse(line).unwrap();
        assert_eq!(r.mid, parse_base36(b"7xsaki84amv6"));
        assert_eq!(r.outcome, Outcome::Ok { null_result: false });
    }

    #[test]
    fn null_missing_and_array_results() {
        let base = r#"{"id":"000000000001/x","kind":"res","origin":"q4vv8v2egusy/1795771379897/9928/3.38.0/-""#;
        let l = format!("{base},\"res\":null}}");
        let r = parse(&l).unwrap();
        assert_eq!(r.outcome, Outcome::Ok { null_result: true });
        let l = format!("{base}}}");
        let r = parse(&l).unwrap();
        assert_eq!(r.outcome, Outcome::Ok { null_result: true });
        let l = format!("{base},\"res\":[]}}\r");
        let r = parse(&l).unwrap();
        assert_eq!(r.outcome, Outcome::Ok { null_result: false });
        assert_eq!(r.mid, Some(1));
        let l = format!("{base},\"error\":null,\"res\":{{}}}}");
        let r = parse(&l).unwrap();
        assert_eq!(r.outcome, Outcome::Ok { null_result: false });
    }

    #[test]
    fn node_shaped_error_gives_the_application_code() {
        let line = r#"{"id":"fub89gorw24q/p3cgjl1qhb8j","kind":"res","origin":"q4vv8v2egusy/1795771379897/9928/3.38.0/-","sync":true,"res":null,"error":{"code":"act_execute","details":{"id":"nope","orig$":{"code":"not_found"}},"status":404,"eraro":true,"orig":{"code":"STORE_UNAVAILABLE","status":503},"seneca":true,"message":"seneca: Action cmd:get_session_by_id,role:sessions failed: x.","name":"Error"}}"#;
        let r = parse(line).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Error(Cow::Borrowed("STORE_UNAVAILABLE"))
        );
    }

    #[test]
    fn not_found_error_gives_the_seneca_code() {
        let line = r#"{"id":"mow7i305bwwp/sskwtvdtllt1","kind":"res","origin":"q4vv8v2egusy/1795771379897/9928/3.38.0/-","res":null,"error":{"eraro":true,"orig":null,"code":"act_not_found","seneca":true,"message":"seneca: No matching action pattern found for { role: 'sessions' }"}}"#;
        let r = parse(line).unwrap();
        assert_eq!(r.outcome, Outcome::Error(Cow::Borrowed("act_not_found")));
    }

    #[test]
    fn odd_errors_are_still_errors() {
        let base = r#"{"id":"000000000001/x","kind":"res","origin":"q4vv8v2egusy/1795771379897/9928/3.38.0/-""#;
        for (err, code) in [
            (r#"{"message":"boom"}"#, "error"),
            (r#""a string""#, "error"),
            ("true", "error"),
            (r#"{"code":7,"orig":{"code":"X"}}"#, "error"),
            (r#"{"code":"c","orig":{"code":""}}"#, "c"),
            (r#"{"code":"c\u0041"}"#, "cA"),
        ] {
            let l = format!("{base},\"error\":{err}}}");
            let r = parse(&l).unwrap();
            assert_eq!(
                r.outcome,
                Outcome::Error(Cow::Owned(code.to_owned())),
                "{err}"
            );
        }
        for falsy in ["false", "0", "\"\""] {
            let l = format!("{base},\"error\":{falsy}}}");
            let r = parse(&l).unwrap();
            assert_eq!(r.outcome, Outcome::Ok { null_result: true }, "{falsy}");
        }
    }

    #[test]
    fn wrong_kind_or_origin_is_a_bad_reply() {
        let r = parse(r#"{"id":"000000000002/x","kind":"act","origin":"q4vv8v2egusy/1795771379897/9928/3.38.0/-"}"#).unwrap();
        assert_eq!((r.mid, r.outcome), (Some(2), Outcome::Bad("kind")));
        let r = parse(r#"{"id":"000000000002/x","kind":"res","origin":"other"}"#).unwrap();
        assert_eq!(r.outcome, Outcome::Bad("origin"));
        let r = parse(r#"{"id":"000000000002/x","kind":"res"}"#).unwrap();
        assert_eq!(r.outcome, Outcome::Bad("origin"));
    }

    #[test]
    fn foreign_ids_parse_without_a_mid() {
        let r = parse(
            r#"{"id":"nope","kind":"res","origin":"q4vv8v2egusy/1795771379897/9928/3.38.0/-"}"#,
        )
        .unwrap();
        assert_eq!(r.mid, None);
    }

    #[test]
    fn unreadable_lines() {
        for line in [
            "",
            "garbage",
            "null",
            "42",
            "[1]",
            r#"{"kind":"res"}"#,
            r#"{"id":5}"#,
            "{\"id\":\"a\"",
        ] {
            assert_eq!(parse(line), Err(Unreadable), "{line}");
        }
    }
}

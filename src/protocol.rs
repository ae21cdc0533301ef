//! The Seneca TCP message format, without I/O: parsing a request line into its
//! envelope and act, writing reply lines (success and Node-shaped errors), and
//! recognising the sender of a line that could not be parsed. This is the one place
//! where application errors are mapped to the wire.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::commands::{Cmd, CommandError, Output};

/// What a reply must echo from its request.
#[derive(Debug, Default)]
pub struct Echo {
    pub id: Option<Box<RawValue>>,
    pub origin: Option<Box<RawValue>>,
    pub track: Option<Box<RawValue>>,
    pub client_sent: Option<Box<RawValue>>,
}

/// A parsed request line.
#[derive(Debug)]
pub struct Request {
    pub echo: Echo,
    /// Whether a caller waits for the reply (`sync: true`); Node servers answer only then.
    pub sync: bool,
    pub act: Map<String, Value>,
}

/// Why a line is not a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolErrorKind {
    LineTooLong,
    InvalidJson,
    InvalidUtf8,
    NotAnObject,
    BadEnvelope,
}

impl ProtocolErrorKind {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            ProtocolErrorKind::LineTooLong => "line_too_long",
            ProtocolErrorKind::InvalidJson => "invalid_json",
            ProtocolErrorKind::InvalidUtf8 => "invalid_utf8",
            ProtocolErrorKind::NotAnObject => "not_an_object",
            ProtocolErrorKind::BadEnvelope => "bad_envelope",
        }
    }

    fn message(self) -> &'static str {
        match self {
            ProtocolErrorKind::LineTooLong => "request line is too long",
            ProtocolErrorKind::InvalidJson => "request line is not valid JSON",
            ProtocolErrorKind::InvalidUtf8 => "request line is not valid UTF-8",
            ProtocolErrorKind::NotAnObject => "request line is not a JSON object",
            ProtocolErrorKind::BadEnvelope => "request has no act object",
        }
    }
}

/// A line that is not a usable request; `echo` is set when its sender could still
/// be recognised, so it can be answered.
#[derive(Debug)]
pub struct BadLine {
    pub kind: ProtocolErrorKind,
    pub echo: Option<Echo>,
    /// The command the line was for, when it could be recognised (over-long lines):
    /// the error then names the action as a command's error does.
    pub cmd: Option<Cmd>,
}

/// The envelope as read: only `act` becomes a JSON value; the fields around it are
/// kept as borrowed text or reduced to what the reply needs while parsing (a
/// `serde_json::Value` per field cost a quarter of the service's CPU per request on
/// the embedded store).
#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    id: Option<Box<RawValue>>,
    #[serde(default)]
    kind: Kind,
    origin: Option<Box<RawValue>>,
    track: Option<Box<RawValue>>,
    #[serde(default, borrow)]
    time: Time<'a>,
    act: Option<Value>,
    #[serde(default)]
    sync: IsTrue,
}

/// `kind`: absent, the string `act`, or anything else (null included).
#[derive(Default, PartialEq)]
enum Kind {
    #[default]
    Absent,
    Act,
    Other,
}

/// `sync`: true only for JSON `true`.
#[derive(Default)]
struct IsTrue(bool);

/// `time.client_sent`, as sent; `None` when `time` is not an object or lacks it.
#[derive(Default)]
struct Time<'a>(Option<&'a RawValue>);

/// A key of `time`: whether it is `client_sent` (compared unescaped, without
/// allocating).
struct IsClientSent(bool);

impl<'de> Deserialize<'de> for IsClientSent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IsClientSent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, s: &str) -> Result<IsClientSent, E> {
                Ok(IsClientSent(s == "client_sent"))
            }
        }
        d.deserialize_str(V)
    }
}

/// Skips whatever value a visitor was handed that it has no use for.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the visitor methods that answer `$other` for the JSON values no field
/// cares about: numbers, null and arrays (each field handles booleans, strings and
/// objects itself).
macro_rules! other_values {
    ($t:ty, $other:expr) => {
        fn visit_i64<E>(self, _: i64) -> Result<$t, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$t, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$t, E> {
            Ok($other)
        }
        fn visit_unit<E>(self) -> Result<$t, E> {
            Ok($other)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<$t, A::Error> {
            skip_seq(seq).map(|()| $other)
        }
    };
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Kind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_str<E>(self, s: &str) -> Result<Kind, E> {
                Ok(if s == "act" { Kind::Act } else { Kind::Other })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Kind, A::Error> {
                skip_map(map).map(|()| Kind::Other)
            }
            other_values!(Kind, Kind::Other);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for IsTrue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IsTrue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<IsTrue, E> {
                Ok(IsTrue(b))
            }
            fn visit_str<E>(self, _: &str) -> Result<IsTrue, E> {
                Ok(IsTrue(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IsTrue, A::Error> {
                skip_map(map).map(|()| IsTrue(false))
            }
            other_values!(IsTrue, IsTrue(false));
        }
        d.deserialize_any(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Time<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Time<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Time<'a>, E> {
                Ok(Time(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Time<'a>, E> {
                Ok(Time(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Time<'a>, A::Error> {
                let mut client_sent = None;
                while let Some(key) = map.next_key::<IsClientSent>()? {
                    if key.0 {
                        client_sent = Some(map.next_value::<&'de RawValue>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Time(client_sent))
            }
            other_values!(Time<'a>, Time(None));
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Parses one request line (without its line ending).
pub fn parse_line(line: &[u8]) -> Result<Request, BadLine> {
    let env: EnvelopeIn = match serde_json::from_slice(line) {
        Ok(env) => env,
        Err(_) => {
            let kind = if std::str::from_utf8(line).is_err() {
                ProtocolErrorKind::InvalidUtf8
            } else if line.first() != Some(&b'{') {
                ProtocolErrorKind::NotAnObject
            } else {
                ProtocolErrorKind::InvalidJson
            };
            return Err(BadLine {
                kind,
                echo: identify(line),
                cmd: None,
            });
        }
    };
    let echo = Echo {
        id: env.id,
        origin: env.origin,
        track: env.track,
        client_sent: env.time.0.map(|raw| raw.to_owned()),
    };
    let sync = env.sync.0;
    match env.act {
        Some(Value::Object(act)) if env.kind != Kind::Other => Ok(Request { echo, sync, act }),
        _ => Err(BadLine {
            kind: ProtocolErrorKind::BadEnvelope,
            echo: sync.then_some(echo),
            cmd: None,
        }),
    }
}

/// Recognises the sender of a line that could not be parsed (or only its beginning,
/// for an over-long line): real clients write `id` and `origin` first, so both are
/// looked for as top-level-looking `"key":"string"` pairs. Both must be found.
pub fn identify(prefix: &[u8]) -> Option<Echo> {
    let id = find_string_field(prefix, b"\"id\"")?;
    let origin = find_string_field(prefix, b"\"origin\"")?;
    Some(Echo {
        id: Some(id),
        origin: Some(origin),
        track: None,
        client_sent: None,
    })
}

/// Recognises the command of a line known only by its beginning: a `"role":"sessions"`
/// and a `"cmd"` naming one of ours (Node callers write the pattern first).
pub fn identify_cmd(prefix: &[u8]) -> Option<Cmd> {
    let text = |key: &[u8]| -> Option<String> {
        let raw = find_string_field(prefix, key)?;
        serde_json::from_str(raw.get()).ok()
    };
    if text(b"\"role\"")? != "sessions" {
        return None;
    }
    Cmd::from_name(&text(b"\"cmd\"")?)
}

fn find_string_field(hay: &[u8], key: &[u8]) -> Option<Box<RawValue>> {
    let mut from = 0;
    while let Some(pos) = find(&hay[from..], key) {
        let mut i = from + pos + key.len();
        from = i;
        while hay.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if hay.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while hay.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if hay.get(i) != Some(&b'"') {
            continue;
        }
        let start = i;
        i += 1;
        // Ids and origins are short; give up on anything long.
        let end = start + 512;
        while i < hay.len().min(end) {
            match hay[i] {
                b'\\' => i += 2,
                b'"' => {
                    let quoted = &hay[start..=i];
                    let s: String = serde_json::from_slice(quoted).ok()?;
                    return serde_json::value::to_raw_value(&s).ok();
                }
                _ => i += 1,
            }
        }
        return None;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// This server's identity and clock for the reply envelope.
pub struct ReplyMeta<'a> {
    /// The server instance id (`accept`).
    pub accept: &'a str,
    pub listen_recv: i64,
    pub listen_sent: i64,
}

/// What went wrong, as the reply's `error`.
pub enum Failure<'a> {
    /// A command failed.
    Command {
        cmd: &'static str,
        error: &'a CommandError,
        correlation_id: Option<&'a str>,
    },
    /// No command matches the act.
    NotFound { act: &'a Map<String, Value> },
    /// The line was not a usable request; `cmd` when it could still be recognised.
    Protocol {
        kind: ProtocolErrorKind,
        max_line_bytes: usize,
        cmd: Option<Cmd>,
    },
}

/// Appends a success reply line.
pub fn write_ok(out: &mut Vec<u8>, echo: &Echo, meta: &ReplyMeta<'_>, res: &Output) {
    write_head(out, echo, meta);
    out.extend_from_slice(b",\"res\":");
    if serde_json::to_writer(&mut *out, res).is_err() {
        // Serializing our own types cannot fail; keep the line valid regardless.
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b"}\n");
}

/// Appends an error reply line: `res: null` and a Node-shaped `error`.
pub fn write_error(out: &mut Vec<u8>, echo: &Echo, meta: &ReplyMeta<'_>, failure: &Failure<'_>) {
    write_head(out, echo, meta);
    out.extend_from_slice(b",\"res\":null,\"error\":");
    let err = error_value(failure);
    if serde_json::to_writer(&mut *out, &err).is_err() {
        out.extend_from_slice(b"{\"message\":\"error\"}");
    }
    out.extend_from_slice(b"}\n");
}

fn write_head(out: &mut Vec<u8>, echo: &Echo, meta: &ReplyMeta<'_>) {
    out.push(b'{');
    if let Some(id) = &echo.id {
        out.extend_from_slice(b"\"id\":");
        out.extend_from_slice(id.get().as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"kind\":\"res\"");
    if let Some(origin) = &echo.origin {
        out.extend_from_slice(b",\"origin\":");
        out.extend_from_slice(origin.get().as_bytes());
    }
    out.extend_from_slice(b",\"accept\":");
    // The accept id is generated by us and contains no characters needing escapes,
    // but go through the escaper anyway.
    let _ = serde_json::to_writer(&mut *out, meta.accept);
    if let Some(track) = &echo.track {
        out.extend_from_slice(b",\"track\":");
        out.extend_from_slice(track.get().as_bytes());
    }
    out.extend_from_slice(b",\"time\":{");
    if let Some(cs) = &echo.client_sent {
        out.extend_from_slice(b"\"client_sent\":");
        out.extend_from_slice(cs.get().as_bytes());
        out.push(b',');
    }
    use std::io::Write;
    let _ = write!(
        out,
        "\"listen_recv\":{},\"listen_sent\":{}}},\"sync\":true",
        meta.listen_recv, meta.listen_sent
    );
}

/// The Node-shaped error object for a failure.
pub fn error_value(failure: &Failure<'_>) -> Value {
    match failure {
        Failure::Command {
            cmd,
            error,
            correlation_id,
        } => {
            let message = error.to_string();
            let mut orig = Map::new();
            orig.insert("code".into(), json!(error.code()));
            orig.insert("status".into(), json!(error.status()));
            orig.insert("category".into(), json!(error.category()));
            orig.insert("message".into(), json!(message));
            if let Some(details) = error.details() {
                orig.insert("details".into(), details);
            }
            if let Some(cid) = correlation_id {
                orig.insert("correlation_id".into(), json!(cid));
            }
            let pattern = format!("cmd:{cmd},role:sessions");
            seneca_error(&pattern, &message, error.status(), Value::Object(orig))
        }
        Failure::NotFound { act } => {
            let args = inspect(act);
            let msg = format!(
                "seneca: No matching action pattern found for {args}, and no default result provided (using a default$ property)."
            );
            json!({
                "eraro": true,
                "orig": null,
                "code": "act_not_found",
                "seneca": true,
                "package": "seneca",
                "msg": msg,
                "details": {"args": args, "plugin": {}},
                "message": msg,
                "name": "Error",
            })
        }
        Failure::Protocol {
            kind,
            max_line_bytes,
            cmd,
        } => {
            let (code, status, message) = match kind {
                ProtocolErrorKind::LineTooLong => (
                    "DATA_TOO_LARGE",
                    413,
                    format!("request line is longer than {max_line_bytes} bytes"),
                ),
                other => ("INVALID_DATA", 400, other.message().to_string()),
            };
            let orig = json!({
                "code": code,
                "status": status,
                "category": "BadRequest",
                "message": message,
            });
            let pattern = cmd.map_or(String::new(), |c| format!("cmd:{},role:sessions", c.name()));
            seneca_error(&pattern, &message, status, orig)
        }
    }
}

fn seneca_error(pattern: &str, message: &str, status: u16, orig: Value) -> Value {
    let msg = format!("seneca: Action {pattern} failed: {message}.");
    json!({
        "code": "act_execute",
        "seneca": true,
        "eraro": true,
        "package": "seneca",
        "name": "Error",
        "status": status,
        "msg": msg,
        "message": msg,
        "orig": orig,
        "details": {
            "message": message,
            "pattern": pattern,
            "orig$": orig,
            "message$": message,
            "plugin": {},
        },
    })
}

/// A short rendering of an act in the style of Node's `util.inspect`, for the
/// act_not_found message: scalars shown, nested values abbreviated, length capped.
fn inspect(act: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    for (k, v) in act {
        if k.ends_with('$') {
            continue;
        }
        let shown = match v {
            Value::String(s) => {
                let s: String = s.chars().take(64).collect();
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
            }
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".into(),
            Value::Array(_) => "[Array]".into(),
            Value::Object(_) => "[Object]".into(),
        };
        let key: String = k.chars().take(64).collect();
        parts.push(format!("{key}: {shown}"));
        if parts.len() >= 16 {
            parts.push("...".into());
            break;
        }
    }
    if parts.is_empty() {
        "{}".into()
    } else {
        format!("{{ {} }}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V8: &str = r#"{"id":"7xsaki84amv6/01s4jt5vfv2c","kind":"act","origin":"q4vv8v2egusy/1795771379897/9928/3.38.0/-","track":["q4vv8v2egusy/1795771379897/9928/3.38.0/-"],"time":{"client_sent":1795771380098},"act":{"role":"sessions","version":1,"cmd":"get_session","id":"abc","custom$":{}},"sync":true,"msg$":{"vin":1,"sid":"q4vv8v2egusy/1795771379897/9928/3.38.0/-","out":true,"mid":"7xsaki84amv6","cid":"01s4jt5vfv2c","snc":true,"pat":""}}"#;

    fn meta() -> ReplyMeta<'static> {
        ReplyMeta {
            accept: "srv/1/2/0.1.0/sessions",
            listen_recv: 5,
            listen_sent: 6,
        }
    }

    #[test]
    fn parses_a_real_request_and_echoes_it() {
        let req = parse_line(V8.as_bytes()).unwrap();
        assert!(req.sync);
        assert_eq!(req.act["cmd"], "get_session");
        let mut out = Vec::new();
        write_ok(&mut out, &req.echo, &meta(), &Output::Null);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "7xsaki84amv6/01s4jt5vfv2c");
        assert_eq!(v["origin"], "q4vv8v2egusy/1795771379897/9928/3.38.0/-");
        assert_eq!(v["kind"], "res");
        assert_eq!(v["track"][0], "q4vv8v2egusy/1795771379897/9928/3.38.0/-");
        assert_eq!(v["time"]["client_sent"], 1795771380098u64);
        assert_eq!(v["sync"], true);
        assert!(v["res"].is_null());
        // one line, no interior newline
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
    }

    #[test]
    fn envelope_fields_keep_their_json_meaning() {
        let act = r#""act":{"role":"sessions","cmd":"x"}"#;
        let parse = |rest: &str| parse_line(format!("{{{act},{rest}}}").as_bytes());
        // kind: absent or "act" (however escaped) is a request; null or anything else
        // is not.
        assert!(parse(r#""sync":true"#).is_ok());
        assert!(parse(r#""kind":"act","sync":true"#).is_ok());
        for kind in ["null", "1", r#""res""#, r#"["act"]"#, r#"{"a":1}"#, "true"] {
            let bad = parse(&format!(r#""kind":{kind},"sync":true"#)).unwrap_err();
            assert_eq!(bad.kind, ProtocolErrorKind::BadEnvelope, "kind {kind}");
        }
        // sync: only JSON true.
        for sync in [r#""true""#, "1", "null", "{}", "[true]"] {
            assert!(
                !parse(&format!(r#""sync":{sync}"#)).unwrap().sync,
                "sync {sync}"
            );
        }
        // time.client_sent: echoed as sent (null too); the last one wins; nothing when
        // time is not an object.
        let cs = |time: &str| {
            parse(&format!(r#""time":{time}"#))
                .unwrap()
                .echo
                .client_sent
                .map(|r| r.get().to_owned())
        };
        assert_eq!(
            cs(r#"{"client_sent":12,"x":[1,{"y":2}]}"#).as_deref(),
            Some("12")
        );
        assert_eq!(cs(r#"{"client_sent":null}"#).as_deref(), Some("null"));
        assert_eq!(
            cs(r#"{"client_sent":1,"client_sent":2}"#).as_deref(),
            Some("2")
        );
        assert_eq!(cs(r#"{"client\u005fsent":3}"#).as_deref(), Some("3"));
        assert_eq!(cs(r#"{"other":1}"#), None);
        assert_eq!(cs("[1,2]"), None);
        assert_eq!(cs(r#""now""#), None);
    }

    #[test]
    fn sync_false_and_absent() {
        let line = V8.replace("\"sync\":true", "\"sync\":false");
        assert!(!parse_line(line.as_bytes()).unwrap().sync);
        let line = V8.replace("\"sync\":true,", "");
        assert!(!parse_line(line.as_bytes()).unwrap().sync);
    }

    #[test]
    fn bad_lines_are_classified_and_identified() {
        let garbage = parse_line(b"{\"id\":\"a/b\",\"origin\":\"o\",\"act\":{").unwrap_err();
        assert_eq!(garbage.kind, ProtocolErrorKind::InvalidJson);
        let echo = garbage.echo.unwrap();
        assert_eq!(echo.id.unwrap().get(), "\"a/b\"");
        assert_eq!(
            parse_line(b"[1]").unwrap_err().kind,
            ProtocolErrorKind::NotAnObject
        );
        assert_eq!(
            parse_line(b"null").unwrap_err().kind,
            ProtocolErrorKind::NotAnObject
        );
        assert!(parse_line(b"nonsense").unwrap_err().echo.is_none());
        let bad_utf8 = parse_line(b"{\"id\":\"x\",\"origin\":\"o\",\"act\":\"\xff\"}").unwrap_err();
        assert_eq!(bad_utf8.kind, ProtocolErrorKind::InvalidUtf8);
        let no_act = parse_line(br#"{"id":"x","origin":"o","sync":true}"#).unwrap_err();
        assert_eq!(no_act.kind, ProtocolErrorKind::BadEnvelope);
        assert!(no_act.echo.is_some());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut line = String::from(r#"{"id":"x","origin":"o","sync":true,"act":"#);
        line.push_str(&"[".repeat(100_000));
        line.push_str(&"]".repeat(100_000));
        line.push('}');
        let bad = parse_line(line.as_bytes()).unwrap_err();
        assert_eq!(bad.kind, ProtocolErrorKind::InvalidJson);
        assert!(bad.echo.is_some());
    }

    #[test]
    fn over_long_lines_name_their_action_when_recognisable() {
        let prefix = V8.replace("get_session", "store_session_data");
        // Cut right after the command name, as the first 4 KiB of a long line would be.
        let cut = prefix.find("\"id\":\"abc").unwrap();
        let cmd = identify_cmd(&prefix.as_bytes()[..cut]);
        assert_eq!(cmd, Some(Cmd::StoreSessionData));
        let v = error_value(&Failure::Protocol {
            kind: ProtocolErrorKind::LineTooLong,
            max_line_bytes: 4096,
            cmd,
        });
        assert_eq!(
            v["message"],
            "seneca: Action cmd:store_session_data,role:sessions failed: request line is longer than 4096 bytes."
        );
        assert_eq!(v["orig"]["code"], "DATA_TOO_LARGE");
        assert_eq!(v["orig"]["status"], 413);
        // Another role, an unknown command, or no command: no action named.
        assert_eq!(
            identify_cmd(V8.replace("\"sessions\"", "\"users\"").as_bytes()),
            None
        );
        assert_eq!(identify_cmd(V8.as_bytes()), None);
        assert_eq!(identify_cmd(b"{\"id\":\"x\""), None);
    }

    #[test]
    fn command_errors_are_node_shaped() {
        let err = CommandError::invalid("user_id", "user_id is required");
        let v = error_value(&Failure::Command {
            cmd: "open_session",
            error: &err,
            correlation_id: Some("c-1"),
        });
        assert_eq!(v["seneca"], true);
        assert_eq!(v["code"], "act_execute");
        assert_eq!(
            v["message"],
            "seneca: Action cmd:open_session,role:sessions failed: user_id is required."
        );
        assert_eq!(v["orig"]["code"], "INVALID_DATA");
        assert_eq!(v["orig"]["status"], 400);
        assert_eq!(v["orig"]["category"], "BadRequest");
        assert_eq!(v["orig"]["correlation_id"], "c-1");
        assert_eq!(v["orig"]["details"]["field"], "user_id");
    }

    #[test]
    fn not_found_lists_the_pattern() {
        let act: Map<String, Value> = serde_json::from_str(
            r#"{"role":"sessions","version":1,"cmd":"no_such_cmd","custom$":{}}"#,
        )
        .unwrap();
        let v = error_value(&Failure::NotFound { act: &act });
        assert_eq!(v["code"], "act_not_found");
        assert_eq!(
            v["details"]["args"],
            "{ role: 'sessions', version: 1, cmd: 'no_such_cmd' }"
        );
    }
}

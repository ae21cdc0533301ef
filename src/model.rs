//! The session record and the small value types around it: timestamps, session ids
//! and the bucket a session lives in. No I/O here.

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::value::RawValue;

/// The bucket rule, shared with `sessions check` (see [`sessions_shared::keys`]).
pub use sessions_shared::keys::{bucket_of_session, bucket_of_user, BUCKETS};

/// JSON text kept exactly as the client sent it (after one parse), so `user` and
/// `data` round-trip without being re-encoded on every read.
pub type JsonText = Box<RawValue>;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// A user session (SessionV1 on the wire).
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub user_name: Option<String>,
    pub active: bool,
    pub open_time: Millis,
    pub request_time: Millis,
    pub close_time: Option<Millis>,
    pub address: Option<String>,
    pub client: Option<String>,
    pub user: Option<JsonText>,
    pub data: Option<JsonText>,
}

impl Serialize for Session {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("SessionV1", 11)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("user_id", &self.user_id)?;
        st.serialize_field("user_name", &self.user_name)?;
        st.serialize_field("active", &self.active)?;
        st.serialize_field("open_time", &IsoTime(self.open_time))?;
        st.serialize_field("request_time", &IsoTime(self.request_time))?;
        st.serialize_field("close_time", &self.close_time.map(IsoTime))?;
        st.serialize_field("address", &self.address)?;
        st.serialize_field("client", &self.client)?;
        st.serialize_field("user", &self.user)?;
        st.serialize_field("data", &self.data)?;
        st.end()
    }
}

/// A timestamp that serializes as a Node-style ISO string (`2026-11-27T09:17:50.123Z`).
#[derive(Debug, Clone, Copy)]
pub struct IsoTime(pub Millis);

impl Serialize for IsoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Every reply carries two or three of these: the fixed-width path skips the
        // strftime machinery and the String (it was a visible share of a get's CPU).
        match iso_fixed(self.0) {
            Some(buf) => s.serialize_str(std::str::from_utf8(&buf).unwrap_or_default()),
            None => s.serialize_str(&format_iso(self.0)),
        }
    }
}

/// Formats milliseconds since the epoch the way JavaScript's `Date.toJSON` does.
pub fn format_iso(ms: Millis) -> String {
    if let Some(buf) = iso_fixed(ms) {
        return String::from_utf8_lossy(&buf).into_owned();
    }
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for years 0 to 9999 (the fixed-width form); None
/// outside them, where [`format_iso`] falls back to strftime.
fn iso_fixed(ms: Millis) -> Option<[u8; 24]> {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp_millis(ms)?;
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    put(20, 3, t.timestamp_subsec_millis());
    Some(b)
}

/// Parses an ISO 8601 / RFC 3339 date (what a Node `Date` becomes in JSON), also
/// accepting a date without a time (`2026-11-27`, midnight UTC).
pub fn parse_iso(s: &str) -> Option<Millis> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis());
    }
    None
}

/// Current time in milliseconds since the epoch.
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A new session id for a user: 32 lowercase hex characters whose first two encode
/// the bucket and the remaining 30 come from a v4 UUID (114 random bits: its version
/// and variant bits are fixed).
pub fn new_session_id(bucket: u16) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let mut id = format!("{bucket:02x}");
    id.push_str(&random[..30]);
    id
}

/// The key open_session reuses a session by: the same user, address and client,
/// where a missing value equals a missing value (and differs from an empty string).
pub fn reuse_key(user_id: &str, address: Option<&str>, client: Option<&str>) -> String {
    // A JSON array is unambiguous whatever characters the parts contain.
    serde_json::json!([user_id, address, client]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_iso_matches_strftime() {
        let strftime = |ms: Millis| {
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        };
        let samples = [
            0,
            1,
            999,
            -1,
            1_795_771_380_098,
            951_782_400_000,     // 2000-02-29
            253_402_300_799_999, // 9999-12-31T23:59:59.999Z
            -62_167_219_200_000, // 0000-01-01
            1_700_000_000_123,
        ];
        for ms in samples {
            assert_eq!(format_iso(ms), strftime(ms), "{ms}");
            let fixed = iso_fixed(ms).unwrap();
            assert_eq!(std::str::from_utf8(&fixed).unwrap(), strftime(ms));
        }
        // Past year 9999 the fixed form does not apply; strftime's output is kept.
        assert!(iso_fixed(253_402_300_800_000).is_none());
        assert_eq!(
            format_iso(253_402_300_800_000),
            strftime(253_402_300_800_000)
        );
        assert!(iso_fixed(-62_167_219_200_001).is_none());
    }

    #[test]
    fn iso_round_trip() {
        let ms = 1_795_771_380_098;
        let s = format_iso(ms);
        assert_eq!(s, "2026-11-27T09:23:00.098Z");
        assert_eq!(parse_iso(&s), Some(ms));
        assert_eq!(parse_iso("2026-11-27"), Some(1_795_737_600_000));
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn ids_carry_their_bucket() {
        for user in ["u1", "", "ünïcødé", "a:{b}"] {
            let b = bucket_of_user(user);
            assert!(b < BUCKETS);
            let id = new_session_id(b);
            assert_eq!(id.len(), 32);
            assert_eq!(bucket_of_session(&id), Some(b));
        }
        assert_eq!(bucket_of_session("ff000000000000000000000000000000"), None);
        assert_eq!(bucket_of_session("ABCDEF00000000000000000000000000"), None);
        assert_eq!(bucket_of_session("abc"), None);
    }

    #[test]
    fn reuse_key_distinguishes_missing_from_empty() {
        assert_ne!(reuse_key("u", None, None), reuse_key("u", Some(""), None));
        assert_eq!(
            reuse_key("u", Some("a"), None),
            reuse_key("u", Some("a"), None)
        );
    }
}

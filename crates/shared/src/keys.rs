//! The key layout. Sessions are spread over [`BUCKETS`] buckets: a user's bucket comes
//! from the user id ([`bucket_of_user`]) and is written into the first two hex digits
//! of each of its session ids ([`bucket_of_session`]). Every key is `P:{NN}:...`
//! where `P` is the configured prefix ([`check_prefix`] has its rule) and `NN` the
//! bucket as two lowercase hex digits; `{NN}` is the hash tag, so all keys of one
//! bucket live in one cluster slot. [`Keys`] builds the names, once per bucket at
//! start so the request path only appends an id or a user id to a ready base;
//! [`KeyKind::parse`] tells what a name found in Redis is. What each key holds is
//! documented with the service's Redis store.
//!
//! The service calls the bucket rule and the key builders on every request, from
//! another crate: they are `#[inline]` so they still inline there.

/// Number of buckets sessions are spread over. Fixed for the life of a dataset: the
/// bucket is part of every session id and of every Redis key (as the hash tag).
pub const BUCKETS: u16 = 64;

/// The bucket of a user: FNV-1a over the user id bytes, modulo [`BUCKETS`]. Written
/// out here rather than taken from a hasher crate so it can never change under us.
#[inline]
pub fn bucket_of_user(user_id: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in user_id.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(BUCKETS)) as u16
}

/// The bucket encoded in a session id, or `None` when the id is not one of ours
/// (wrong length, not lowercase hex, or a bucket out of range).
#[inline]
pub fn bucket_of_session(id: &str) -> Option<u16> {
    let bytes = id.as_bytes();
    if bytes.len() != 32 || !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let bucket = u16::from_str_radix(&id[..2], 16).ok()?;
    (bucket < BUCKETS).then_some(bucket)
}

// What follows the bucket's base `P:{NN}:` in each key name.
const OPEN_ACTIVE: &str = "oa";
const OPEN_CLOSED: &str = "oc";
const EXPIRY: &str = "exp";
const RETENTION: &str = "ret";
const REUSE: &str = "reuse";
const SESSION: &str = "s:";
const USER_ACTIVE: &str = "ua:";
const USER_CLOSED: &str = "uc:";

/// The per-bucket keys that every script and listing knows up front.
#[derive(Debug, Clone)]
pub struct BucketKeys {
    /// `P:{NN}:` — what derived keys (session hashes, user indexes) are built from.
    pub base: String,
    /// Active sessions by open_time.
    pub oa: String,
    /// Closed sessions by open_time.
    pub oc: String,
    /// Active sessions by request_time (expiry sweep).
    pub exp: String,
    /// Closed sessions by close_time (retention).
    pub ret: String,
    /// Reuse key -> id of the active session open_session hands out again.
    pub reuse: String,
}

/// Key names for one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    buckets: Vec<BucketKeys>,
}

/// The longest key prefix, in bytes: it is part of every key and every key a script
/// builds, so it is kept short.
pub const MAX_PREFIX_BYTES: usize = 128;

/// The rule for a key prefix, in one place for the store, the configuration and
/// `sessions check`: 1 to [`MAX_PREFIX_BYTES`] bytes without `{` or `}` (a brace in
/// the prefix would become the cluster hash tag instead of the bucket). The error
/// says what the rule is, for the caller to put after the prefix's name.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES || prefix.contains(['{', '}']) {
        return Err(format!(
            "must be 1 to {MAX_PREFIX_BYTES} bytes without '{{' or '}}'"
        ));
    }
    Ok(())
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        let buckets = (0..BUCKETS)
            .map(|b| {
                let base = format!("{prefix}:{{{b:02x}}}:");
                BucketKeys {
                    oa: format!("{base}{OPEN_ACTIVE}"),
                    oc: format!("{base}{OPEN_CLOSED}"),
                    exp: format!("{base}{EXPIRY}"),
                    ret: format!("{base}{RETENTION}"),
                    reuse: format!("{base}{REUSE}"),
                    base,
                }
            })
            .collect();
        Keys { buckets }
    }

    /// The keys of `bucket`; callers only pass buckets below [`BUCKETS`] (taken from
    /// `bucket_of_user` / `bucket_of_session` or a loop over the range); anything else
    /// is folded into range rather than panicking.
    #[inline]
    pub fn bucket(&self, bucket: u16) -> &BucketKeys {
        &self.buckets[usize::from(bucket % BUCKETS)]
    }

    /// `P:{NN}:s:<id>`, the session hash.
    #[inline]
    pub fn session(&self, bucket: u16, id: &str) -> String {
        join(&self.bucket(bucket).base, SESSION, id)
    }

    /// [`Keys::session`] into a reused buffer (row fetches build many keys in a row).
    #[inline]
    pub fn write_session(&self, buf: &mut String, bucket: u16, id: &str) {
        buf.clear();
        buf.push_str(&self.bucket(bucket).base);
        buf.push_str(SESSION);
        buf.push_str(id);
    }

    /// `P:{NN}:ua:<user_id>` or `P:{NN}:uc:<user_id>`, a user's active / closed index.
    #[inline]
    pub fn user(&self, bucket: u16, user_id: &str, active: bool) -> String {
        join(
            &self.bucket(bucket).base,
            if active { USER_ACTIVE } else { USER_CLOSED },
            user_id,
        )
    }
}

/// What a key of a bucket is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind<'a> {
    /// `s:<id>`, a session hash.
    Session(&'a str),
    /// `oa`, the bucket's active sessions by open_time.
    OpenActive,
    /// `oc`, the bucket's closed sessions by open_time.
    OpenClosed,
    /// `exp`, active sessions by request_time.
    Expiry,
    /// `ret`, closed sessions by close_time.
    Retention,
    /// `ua:<user_id>` (active) or `uc:<user_id>` (closed), a user's index.
    User { user_id: &'a str, active: bool },
    /// `reuse`, reuse key -> id.
    Reuse,
}

impl<'a> KeyKind<'a> {
    /// What `rest`, a key name without its bucket's base `P:{NN}:`, names; `None`
    /// for a name outside the layout.
    pub fn parse(rest: &'a str) -> Option<KeyKind<'a>> {
        Some(match rest {
            OPEN_ACTIVE => KeyKind::OpenActive,
            OPEN_CLOSED => KeyKind::OpenClosed,
            EXPIRY => KeyKind::Expiry,
            RETENTION => KeyKind::Retention,
            REUSE => KeyKind::Reuse,
            _ => {
                if let Some(id) = rest.strip_prefix(SESSION) {
                    KeyKind::Session(id)
                } else if let Some(user_id) = rest.strip_prefix(USER_ACTIVE) {
                    KeyKind::User {
                        user_id,
                        active: true,
                    }
                } else if let Some(user_id) = rest.strip_prefix(USER_CLOSED) {
                    KeyKind::User {
                        user_id,
                        active: false,
                    }
                } else {
                    return None;
                }
            }
        })
    }
}

#[inline]
fn join(base: &str, kind: &str, tail: &str) -> String {
    let mut k = String::with_capacity(base.len() + kind.len() + tail.len());
    k.push_str(base);
    k.push_str(kind);
    k.push_str(tail);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_bucket_as_hash_tag() {
        let k = Keys::new("sessions");
        assert_eq!(k.bucket(10).oa, "sessions:{0a}:oa");
        assert_eq!(k.bucket(63).base, "sessions:{3f}:");
        assert_eq!(k.session(1, "01ab"), "sessions:{01}:s:01ab");
        assert_eq!(k.user(2, "u{x}", true), "sessions:{02}:ua:u{x}");
        assert_eq!(k.user(2, "u", false), "sessions:{02}:uc:u");
    }

    #[test]
    fn every_key_name_parses_back_to_what_it_is() {
        let k = Keys::new("p");
        let b = k.bucket(7);
        let rest = |key: &str| key.strip_prefix(b.base.as_str()).unwrap().to_owned();
        let parsed = |key: &str| KeyKind::parse(&rest(key)).map(|k| format!("{k:?}"));
        let named = |kind: KeyKind| Some(format!("{kind:?}"));
        assert_eq!(parsed(&b.oa), named(KeyKind::OpenActive));
        assert_eq!(parsed(&b.oc), named(KeyKind::OpenClosed));
        assert_eq!(parsed(&b.exp), named(KeyKind::Expiry));
        assert_eq!(parsed(&b.ret), named(KeyKind::Retention));
        assert_eq!(parsed(&b.reuse), named(KeyKind::Reuse));
        assert_eq!(
            parsed(&k.session(7, "07ab")),
            named(KeyKind::Session("07ab"))
        );
        let user = KeyKind::User {
            user_id: "a:b",
            active: false,
        };
        assert_eq!(parsed(&k.user(7, "a:b", false)), named(user));
        assert_eq!(KeyKind::parse("other"), None);
        assert_eq!(KeyKind::parse("s"), None);
    }

    #[test]
    fn ids_name_their_bucket() {
        for user in ["u1", "", "ünïcødé", "a:{b}"] {
            assert!(bucket_of_user(user) < BUCKETS);
        }
        // Pinned: a dataset's keys and ids were made with these buckets, so the rule
        // can never change.
        assert_eq!(
            ["u1", "", "alice", "ünïcødé"].map(bucket_of_user),
            [51, 5, 39, 32]
        );
        assert_eq!(
            bucket_of_session("3f000000000000000000000000000000"),
            Some(63)
        );
        assert_eq!(bucket_of_session("ff000000000000000000000000000000"), None);
        assert_eq!(bucket_of_session("ABCDEF00000000000000000000000000"), None);
        assert_eq!(bucket_of_session("abc"), None);
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(check_prefix("sessions").is_ok());
        assert!(check_prefix(&"p".repeat(MAX_PREFIX_BYTES)).is_ok());
        assert!(check_prefix("a{b").is_err());
        assert!(check_prefix("a}b").is_err());
        assert!(check_prefix("").is_err());
        assert!(check_prefix(&"p".repeat(MAX_PREFIX_BYTES + 1)).is_err());
    }
}

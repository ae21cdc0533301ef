//! Redis key names. Every key is `P:{NN}:...` where `P` is the configured prefix and
//! `NN` the bucket as two lowercase hex digits; `{NN}` is the hash tag, so all keys of
//! one bucket live in one cluster slot. Built once per bucket at start so the request
//! path only appends an id or a user id to a ready base.

use crate::model::BUCKETS;

/// The per-bucket keys that every script and listing knows up front.
#[derive(Debug, Clone)]
pub(crate) struct BucketKeys {
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
pub(crate) struct Keys {
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
                    oa: format!("{base}oa"),
                    oc: format!("{base}oc"),
                    exp: format!("{base}exp"),
                    ret: format!("{base}ret"),
                    reuse: format!("{base}reuse"),
                    base,
                }
            })
            .collect();
        Keys { buckets }
    }

    /// The keys of `bucket`; callers only pass buckets below [`BUCKETS`] (taken from
    /// `bucket_of_user` / `bucket_of_session` or a loop over the range); anything else
    /// is folded into range rather than panicking.
    pub fn bucket(&self, bucket: u16) -> &BucketKeys {
        &self.buckets[usize::from(bucket % BUCKETS)]
    }

    /// `P:{NN}:s:<id>`, the session hash.
    pub fn session(&self, bucket: u16, id: &str) -> String {
        join(&self.bucket(bucket).base, "s:", id)
    }

    /// [`Keys::session`] into a reused buffer (row fetches build many keys in a row).
    pub fn write_session(&self, buf: &mut String, bucket: u16, id: &str) {
        buf.clear();
        buf.push_str(&self.bucket(bucket).base);
        buf.push_str("s:");
        buf.push_str(id);
    }

    /// `P:{NN}:ua:<user_id>` or `P:{NN}:uc:<user_id>`, a user's active / closed index.
    pub fn user(&self, bucket: u16, user_id: &str, active: bool) -> String {
        join(
            &self.bucket(bucket).base,
            if active { "ua:" } else { "uc:" },
            user_id,
        )
    }
}

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
    fn prefixes_with_braces_are_refused() {
        assert!(check_prefix("sessions").is_ok());
        assert!(check_prefix(&"p".repeat(MAX_PREFIX_BYTES)).is_ok());
        assert!(check_prefix("a{b").is_err());
        assert!(check_prefix("a}b").is_err());
        assert!(check_prefix("").is_err());
        assert!(check_prefix(&"p".repeat(MAX_PREFIX_BYTES + 1)).is_err());
    }
}

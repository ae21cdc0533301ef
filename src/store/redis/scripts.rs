//! The Lua scripts, one per mutating command, and how a call to one is built. Each
//! script is `lua/common.lua` (shebang, calling convention, shared helpers) followed
//! by its own file, with `lua/expiry.lua` (the expiry instant) in between for the
//! scripts that close expired sessions; they are sent by SHA1 (EVALSHA), and as text
//! (EVAL, which caches them) when Redis answers NOSCRIPT.
//!
//! Every script takes the five per-bucket keys as KEYS[1..5] (see [`Lua::evalsha`])
//! and the bucket base `P:{NN}:` as ARGV[1], from which it builds the keys it only
//! learns from data; all of them share the bucket's hash tag.

use std::sync::LazyLock;

use redis::Cmd;

use super::keys::BucketKeys;

macro_rules! lua {
    ($name:literal) => {
        Lua::new(
            $name,
            concat!(
                include_str!("lua/common.lua"),
                include_str!(concat!("lua/", $name, ".lua"))
            ),
        )
    };
    ($name:literal, with expiry) => {
        Lua::new(
            $name,
            concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/expiry.lua"),
                include_str!(concat!("lua/", $name, ".lua"))
            ),
        )
    };
}

/// One script: its text and SHA1.
#[derive(Debug)]
pub(crate) struct Lua {
    name: &'static str,
    body: &'static str,
    sha: String,
}

/// Every script of the store.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub open: Lua,
    pub store_data: Lua,
    pub update_user: Lua,
    pub close: Lua,
    pub close_user: Lua,
    pub delete: Lua,
    pub expire: Lua,
    pub purge: Lua,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    open: lua!("open"),
    store_data: lua!("store_data"),
    update_user: lua!("update_user"),
    close: lua!("close", with expiry),
    close_user: lua!("close_user", with expiry),
    delete: lua!("delete"),
    expire: lua!("expire", with expiry),
    purge: lua!("purge"),
});

impl Lua {
    fn new(name: &'static str, body: &'static str) -> Self {
        let sha = redis::Script::new(body).get_hash().to_owned();
        Lua { name, body, sha }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `EVALSHA sha numkeys oa oc exp ret reuse <extra_keys...> base`: the five bucket
    /// keys and the script's own keys as KEYS, the bucket base as ARGV[1]. The caller
    /// appends ARGV[2..].
    pub fn evalsha(&self, bucket: &BucketKeys, extra_keys: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.sha)
            .arg(5 + extra_keys.len())
            .arg(&bucket.oa)
            .arg(&bucket.oc)
            .arg(&bucket.exp)
            .arg(&bucket.ret)
            .arg(&bucket.reuse);
        for k in extra_keys {
            cmd.arg(*k);
        }
        cmd.arg(&bucket.base);
        cmd
    }

    /// The EVAL equivalent of `evalsha` (an EVALSHA of this script built by
    /// [`Lua::evalsha`]): the script's text in place of its SHA1, the same keys and
    /// arguments. Redis caches the text it runs, so later EVALSHAs find it.
    pub fn eval(&self, evalsha: &Cmd) -> Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(self.body);
        // Skip the command name and the SHA1.
        for arg in evalsha.args_iter().skip(2) {
            if let redis::Arg::Simple(a) = arg {
                cmd.arg(a);
            }
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_starts_with_the_shebang_and_has_its_own_sha() {
        let s = &*SCRIPTS;
        let all = [
            &s.open,
            &s.store_data,
            &s.update_user,
            &s.close,
            &s.close_user,
            &s.delete,
            &s.expire,
            &s.purge,
        ];
        for l in all {
            assert!(l.body.starts_with("#!lua\n"), "{}", l.name);
            assert_eq!(l.sha.len(), 40);
        }
        let mut shas: Vec<_> = all.iter().map(|l| &l.sha).collect();
        shas.sort();
        shas.dedup();
        assert_eq!(shas.len(), all.len());
    }

    #[test]
    fn open_reads_the_fields_the_codec_decodes_by_position() {
        let listed = super::super::codec::SESSION_FIELDS
            .iter()
            .map(|f| format!("'{f}'"))
            .collect::<Vec<_>>()
            .join(", ");
        // The HMGET in open.lua, with its line break taken out.
        let body = SCRIPTS.open.body.replace(",\n      ", ", ");
        assert!(
            body.contains(&format!("redis.call('HMGET', key, {listed})")),
            "open.lua's HMGET must list {listed}"
        );
    }

    #[test]
    fn eval_carries_the_text_and_the_same_keys_and_arguments() {
        let keys = super::super::keys::Keys::new("p");
        let lua = &SCRIPTS.close;
        let mut evalsha = lua.evalsha(keys.bucket(3), &["p:{03}:s:03ab"]);
        evalsha.arg("03ab").arg(42);
        let eval = lua.eval(&evalsha);
        let args = |c: &Cmd| -> Vec<Vec<u8>> {
            c.args_iter()
                .filter_map(|a| match a {
                    redis::Arg::Simple(b) => Some(b.to_vec()),
                    _ => None,
                })
                .collect()
        };
        let (sha_args, eval_args) = (args(&evalsha), args(&eval));
        assert_eq!(eval_args[0], b"EVAL");
        assert_eq!(eval_args[1], lua.body.as_bytes());
        assert_eq!(sha_args[1], lua.sha.as_bytes());
        assert_eq!(eval_args[2..], sha_args[2..]);
        assert_eq!(eval_args[2], b"6");
    }
}

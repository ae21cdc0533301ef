//! What the load consists of: the commands, the weighted mix, the pool of sessions and
//! users opened at setup, and the arguments each request carries (written straight into
//! the request buffer, with every value JSON-escaped once when the pool is built).

use crate::wire::{push_json_str, push_u64};

/// The commands the bench sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cmd {
    Get,
    Open,
    Store,
    List,
}

impl Cmd {
    pub const ALL: [Cmd; 4] = [Cmd::Get, Cmd::Open, Cmd::Store, Cmd::List];

    /// Short name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Cmd::Get => "get",
            Cmd::Open => "open",
            Cmd::Store => "store",
            Cmd::List => "list",
        }
    }

    /// The `cmd` value on the wire.
    pub fn wire_name(self) -> &'static str {
        match self {
            Cmd::Get => "get_session_by_id",
            Cmd::Open => "open_session",
            Cmd::Store => "store_session_data",
            Cmd::List => "get_sessions",
        }
    }

    pub fn from_name(s: &str) -> Option<Cmd> {
        Cmd::ALL
            .into_iter()
            .find(|c| c.name() == s || c.wire_name() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Weights of the commands; requests pick a command at random with these weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// Cumulative weights, in `Cmd::ALL` order, for picking.
    cumulative: [u32; 4],
}

impl Mix {
    pub fn new(weights: Vec<(Cmd, u32)>) -> Result<Mix, String> {
        let mut w = [0u32; 4];
        for (cmd, weight) in weights {
            w[cmd.index()] = weight;
        }
        if w.iter().any(|&x| x > 1_000_000) {
            return Err("weights must be at most 1000000".into());
        }
        if w.iter().sum::<u32>() == 0 {
            return Err("the mix needs at least one command with a weight above 0".into());
        }
        let mut cumulative = [0u32; 4];
        let mut acc = 0;
        for (i, x) in w.iter().enumerate() {
            acc += x;
            cumulative[i] = acc;
        }
        Ok(Mix { cumulative })
    }

    pub fn single(cmd: Cmd) -> Mix {
        Mix::new(vec![(cmd, 1)]).unwrap_or_else(|_| unreachable!("one positive weight"))
    }

    pub fn total(&self) -> u32 {
        self.cumulative[3]
    }

    pub fn weight(&self, cmd: Cmd) -> u32 {
        let i = cmd.index();
        self.cumulative[i] - if i == 0 { 0 } else { self.cumulative[i - 1] }
    }

    pub fn uses(&self, cmd: Cmd) -> bool {
        self.weight(cmd) > 0
    }

    pub fn pick(&self, rng: &mut Rng) -> Cmd {
        let r = rng.below(u64::from(self.total())) as u32;
        let i = self.cumulative.iter().position(|&c| r < c).unwrap_or(3);
        Cmd::ALL[i]
    }
}

/// Small fast generator (SplitMix64); the bench needs spread, not cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// One session the setup asks for: who opens it, from where.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// `,"user_id":..,"user_name":..,"address":..,"client":..` — the open_session
    /// arguments; sent again by the `open` scenario, they hit the server's reuse.
    pub open_args: Vec<u8>,
}

/// Builds the setup plan: `sessions` sessions over `users` users; every session has its
/// own address so the server's reuse rule keeps them distinct.
pub fn pool_specs(run_tag: &str, sessions: u32, users: u32) -> Vec<PoolSpec> {
    (0..sessions as usize)
        .map(|i| {
            let user = i % users as usize;
            let mut a = Vec::with_capacity(128);
            a.extend_from_slice(b",\"user_id\":");
            push_json_str(&mut a, &user_id(run_tag, user));
            a.extend_from_slice(b",\"user_name\":");
            push_json_str(&mut a, &format!("Bench User {user}"));
            a.extend_from_slice(b",\"address\":");
            push_json_str(
                &mut a,
                &format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
            );
            a.extend_from_slice(b",\"client\":\"sessions-bench\"");
            PoolSpec { open_args: a }
        })
        .collect()
}

pub fn user_id(run_tag: &str, user: usize) -> String {
    format!("bench-{run_tag}-u{user}")
}

/// A session opened at setup, ready to be named in requests.
#[derive(Debug, Clone)]
pub struct Pooled {
    /// `,"session_id":"<id>"`
    pub session_arg: Vec<u8>,
    pub open_args: Vec<u8>,
}

impl Pooled {
    pub fn new(spec: &PoolSpec, session_id: &str) -> Pooled {
        let mut session_arg = b",\"session_id\":".to_vec();
        push_json_str(&mut session_arg, session_id);
        Pooled {
            session_arg,
            open_args: spec.open_args.clone(),
        }
    }
}

/// Everything a connection needs to write request arguments. Read-only once built.
#[derive(Debug)]
pub struct Scenario {
    pub mix: Mix,
    /// Pooled sessions per address (sessions are opened through the address that
    /// later reads them, so separate single-node servers work too).
    pub pools: Vec<Vec<Pooled>>,
    /// `{"user_id":"..."}` filter objects, one per pooled user.
    pub user_filters: Vec<Vec<u8>>,
    /// `,"data":<json>` for store_session_data.
    pub data_arg: Vec<u8>,
    /// `,"paging":{"take":N}` for get_sessions.
    pub paging_arg: Vec<u8>,
    pub distinct_users: bool,
    pub run_tag: String,
}

impl Scenario {
    pub fn new(
        mix: Mix,
        pools: Vec<Vec<Pooled>>,
        run_tag: &str,
        users: u32,
        data_size: usize,
        list_take: u32,
        distinct_users: bool,
    ) -> Scenario {
        let user_filters = (0..users as usize)
            .map(|u| {
                let mut f = b",\"filter\":{\"user_id\":".to_vec();
                push_json_str(&mut f, &user_id(run_tag, u));
                f.push(b'}');
                f
            })
            .collect();
        let mut data_arg = b",\"data\":".to_vec();
        data_arg.extend_from_slice(&data_json(data_size));
        let mut paging_arg = b",\"paging\":{\"take\":".to_vec();
        push_u64(&mut paging_arg, u64::from(list_take));
        paging_arg.push(b'}');
        Scenario {
            mix,
            pools,
            user_filters,
            data_arg,
            paging_arg,
            distinct_users,
            run_tag: run_tag.to_owned(),
        }
    }

    /// Adds `"active":true` to every get_sessions filter.
    pub fn filter_active(&mut self) {
        for f in &mut self.user_filters {
            f.pop();
            f.extend_from_slice(b",\"active\":true}");
        }
    }

    /// Whether the chosen commands need pooled sessions (get_sessions lists the
    /// pooled users' sessions, so it needs them too).
    pub fn needs_pool(mix: &Mix, distinct_users: bool) -> bool {
        mix.uses(Cmd::Get)
            || mix.uses(Cmd::Store)
            || mix.uses(Cmd::List)
            || (mix.uses(Cmd::Open) && !distinct_users)
    }

    /// Appends the arguments of one `cmd` request (each starting with a comma).
    /// `conn` and `seq` make distinct user ids unique within the run.
    pub fn write_args(
        &self,
        buf: &mut Vec<u8>,
        cmd: Cmd,
        addr: usize,
        rng: &mut Rng,
        conn: usize,
        seq: u64,
    ) {
        let pool = &self.pools[addr];
        let pick = |rng: &mut Rng| &pool[rng.below(pool.len() as u64) as usize];
        match cmd {
            Cmd::Get => buf.extend_from_slice(&pick(rng).session_arg),
            Cmd::Store => {
                buf.extend_from_slice(&pick(rng).session_arg);
                buf.extend_from_slice(&self.data_arg);
            }
            Cmd::List => {
                let f = &self.user_filters[rng.below(self.user_filters.len() as u64) as usize];
                buf.extend_from_slice(f);
                buf.extend_from_slice(&self.paging_arg);
            }
            Cmd::Open if self.distinct_users => {
                // The run tag is plain base36, so these values need no escaping.
                buf.extend_from_slice(b",\"user_id\":\"bench-");
                buf.extend_from_slice(self.run_tag.as_bytes());
                buf.extend_from_slice(b"-c");
                push_u64(buf, conn as u64);
                buf.push(b'-');
                push_u64(buf, seq);
                buf.extend_from_slice(
                    b"\",\"user_name\":\"Bench User\",\"address\":\"10.255.0.1\",\"client\":\"sessions-bench\"",
                );
            }
            Cmd::Open => buf.extend_from_slice(&pick(rng).open_args),
        }
    }
}

/// A JSON object of about `size` bytes: `{"blob":"<filler>","n":1}`.
pub fn data_json(size: usize) -> Vec<u8> {
    const FIXED: usize = r#"{"blob":"","n":1}"#.len();
    let fill = size.saturating_sub(FIXED);
    let mut v = Vec::with_capacity(FIXED + fill);
    v.extend_from_slice(br#"{"blob":""#);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = Rng::new(42);
    v.extend((0..fill).map(|_| alphabet[rng.below(36) as usize]));
    v.extend_from_slice(br#"","n":1}"#);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Cmd::ALL {
            assert_eq!(Cmd::from_name(c.name()), Some(c));
            assert_eq!(Cmd::from_name(c.wire_name()), Some(c));
        }
        assert_eq!(Cmd::from_name("nope"), None);
    }

    #[test]
    fn mix_picks_follow_the_weights() {
        let m = Mix::new(vec![(Cmd::Get, 80), (Cmd::Store, 20)]).unwrap();
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[m.pick(&mut rng).index()] += 1;
        }
        assert_eq!(counts[Cmd::Open.index()], 0);
        assert_eq!(counts[Cmd::List.index()], 0);
        assert!(
            (79_000..81_000).contains(&counts[Cmd::Get.index()]),
            "{counts:?}"
        );
        assert!(Mix::new(vec![(Cmd::Get, 0)]).is_err());
    }

    #[test]
    fn single_mix_only_picks_that_command() {
        let m = Mix::single(Cmd::List);
        let mut rng = Rng::new(7);
        assert!((0..1000).all(|_| m.pick(&mut rng) == Cmd::List));
    }

    #[test]
    fn data_has_the_asked_size_and_is_json() {
        for size in [0, 17, 256, 4096] {
            let d = data_json(size);
            assert_eq!(d.len(), size.max(17));
            let v: serde_json::Value = serde_json::from_slice(&d).unwrap();
            assert!(v.is_object());
        }
    }

    fn scenario(distinct: bool) -> Scenario {
        let specs = pool_specs("t1", 4, 2);
        let pool = specs
            .iter()
            .enumerate()
            .map(|(i, s)| Pooled::new(s, &format!("sid\"{i}")))
            .collect();
        Scenario::new(Mix::single(Cmd::Get), vec![pool], "t1", 2, 64, 7, distinct)
    }

    /// Every command's arguments, wrapped in braces, form a JSON object with the
    /// fields the server expects.
    #[test]
    fn arguments_are_valid_json_with_the_right_fields() {
        let s = scenario(false);
        let mut rng = Rng::new(3);
        let args = |cmd, s: &Scenario, rng: &mut Rng| {
            let mut b = b"{\"cmd\":1".to_vec();
            s.write_args(&mut b, cmd, 0, rng, 5, 9);
            b.push(b'}');
            serde_json::from_slice::<serde_json::Value>(&b).unwrap()
        };
        let v = args(Cmd::Get, &s, &mut rng);
        assert!(v["session_id"].as_str().unwrap().starts_with("sid\""));
        let v = args(Cmd::Store, &s, &mut rng);
        assert_eq!(v["data"]["n"], 1);
        let v = args(Cmd::List, &s, &mut rng);
        assert!(v["filter"]["user_id"]
            .as_str()
            .unwrap()
            .starts_with("bench-t1-u"));
        assert_eq!(v["paging"]["take"], 7);
        assert!(v["filter"].get("active").is_none());
        let mut active = scenario(false);
        active.filter_active();
        let v = args(Cmd::List, &active, &mut rng);
        assert_eq!(v["filter"]["active"], true);
        assert!(v["filter"]["user_id"].is_string());
        let v = args(Cmd::Open, &s, &mut rng);
        assert!(v["address"].as_str().unwrap().starts_with("10.0.0."));
        let d = scenario(true);
        let v = args(Cmd::Open, &d, &mut rng);
        assert_eq!(v["user_id"], "bench-t1-c5-9");
    }

    #[test]
    fn pool_is_opened_when_a_command_names_pooled_sessions_or_users() {
        assert!(Scenario::needs_pool(&Mix::single(Cmd::Get), true));
        assert!(Scenario::needs_pool(&Mix::single(Cmd::Store), true));
        assert!(Scenario::needs_pool(&Mix::single(Cmd::List), true));
        assert!(Scenario::needs_pool(&Mix::single(Cmd::Open), false));
        assert!(!Scenario::needs_pool(&Mix::single(Cmd::Open), true));
    }

    #[test]
    fn pooled_sessions_have_distinct_addresses() {
        let specs = pool_specs("x", 300, 7);
        let mut opens: Vec<_> = specs.iter().map(|s| s.open_args.clone()).collect();
        opens.sort();
        opens.dedup();
        assert_eq!(opens.len(), 300);
        let s8 = String::from_utf8(specs[8].open_args.clone()).unwrap();
        assert!(s8.contains("\"bench-x-u1\""), "{s8}");
    }
}

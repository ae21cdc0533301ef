//! The real binary's runtime settings: `SESSIONS_WORKER_THREADS` sets how many
//! threads run requests.

mod common;

use common::binary::Binary;

/// What this suite runs besides the service (see `common::needs`): nothing.
const NEEDS: &[common::needs::Need] = &[];

/// Threads of `pid` with the runtime's thread name (workers, and blocking-pool
/// threads if any were started).
fn runtime_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc of the child")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("tokio-r"))
        .count()
}

#[test]
fn worker_threads_follow_the_setting() {
    let four = Binary::start(&[("SESSIONS_WORKER_THREADS", "4")]);
    let one = Binary::start(&[("SESSIONS_WORKER_THREADS", "1")]);
    let (n4, n1) = (
        runtime_threads(four.child.id()),
        runtime_threads(one.child.id()),
    );
    assert!(n4 >= 4, "4 workers asked, {n4} runtime threads");
    assert!(
        n1 < n4,
        "1 worker asked, {n1} runtime threads (4 asked: {n4})"
    );
}

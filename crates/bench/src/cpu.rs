//! CPU time the bench itself used, so a report can show the load generator was not
//! the bottleneck. Linux only (summed from `/proc/self/task/*/schedstat`); elsewhere
//! the figure is simply absent.

use std::time::Duration;

/// Time on CPU of every thread of this process so far.
pub fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // Threads may end between listing and reading; skip those.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += parse_schedstat(&text)?;
    }
    Some(Duration::from_nanos(total))
}

/// First field of a schedstat line: nanoseconds spent running.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_run_time() {
        assert_eq!(parse_schedstat("810795 4038503 3\n"), Some(810_795));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    /// This thread's run time: other test threads may end meanwhile and take their
    /// time out of the process total, so the test watches only its own thread.
    fn thread_cpu() -> u64 {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        parse_schedstat(&text).unwrap()
    }

    #[test]
    fn cpu_time_grows_with_work() {
        assert!(process_cpu().is_some_and(|d| d > Duration::ZERO));
        let before = thread_cpu();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        assert!(thread_cpu() > before);
    }
}

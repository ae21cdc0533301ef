//! Fuzzes the connection's line splitter: any byte stream, read in any chunk sizes,
//! with small line limits. Checks every event against a plain split on `\n`: lines
//! within the limit come out exactly, longer ones are skipped with a prefix of
//! theirs, an endless line is reported only past eight times the limit, and the
//! buffer never grows past the limit plus a chunk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessions::lines::{Event, LineSplitter, CHUNK, DISCARD_FACTOR, PREFIX_KEEP};

fuzz_target!(|data: &[u8]| {
    let [a, b, stream @ ..] = data else {
        return;
    };
    // Limits from 1 to 4096 bytes, so short inputs reach every path.
    let max_line = 1 + (usize::from(*a) * 16 + usize::from(*b >> 4)) % 4096;
    let step = 1 + usize::from(*b & 0x0f) * 97;

    let mut splitter = LineSplitter::new(max_line);
    let mut events = Vec::new();
    for chunk in stream.chunks(step) {
        let go_on = splitter.feed(chunk, |ev| {
            let endless = matches!(ev, Event::Endless(_));
            events.push(ev);
            !endless
        });
        assert!(splitter.capacity() <= max_line + 1 + CHUNK);
        assert!(splitter.buffered() <= max_line);
        if !go_on {
            break;
        }
    }

    // The reference: every segment before a newline, then the unfinished rest.
    let mut segments: Vec<&[u8]> = stream.split(|c| *c == b'\n').collect();
    let unfinished = segments.pop().unwrap_or_default();
    let mut events = events.into_iter();
    for seg in segments {
        let Some(ev) = events.next() else {
            panic!("a complete line produced no event");
        };
        match ev {
            Event::Line(line) => assert_eq!(&line[..], seg),
            Event::TooLong(prefix) => check_prefix(&prefix, seg, max_line),
            Event::Endless(prefix) => {
                check_prefix(&prefix, seg, max_line);
                assert!(seg.len() > max_line * DISCARD_FACTOR);
                assert!(events.next().is_none());
                return;
            }
        }
    }
    match events.next() {
        None => {}
        Some(Event::Endless(prefix)) => {
            check_prefix(&prefix, unfinished, max_line);
            assert!(unfinished.len() > max_line * DISCARD_FACTOR);
        }
        Some(other) => panic!("unexpected event for an unfinished line: {other:?}"),
    }
    assert!(events.next().is_none());
});

fn check_prefix(prefix: &[u8], seg: &[u8], max_line: usize) {
    assert!(
        seg.len() > max_line,
        "only lines over the limit are skipped"
    );
    assert!(seg.starts_with(prefix));
    assert!(prefix.len() <= PREFIX_KEEP);
    assert!(prefix.len() >= (max_line + 1).min(PREFIX_KEEP));
}

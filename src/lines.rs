//! Splitting a connection's byte stream into request lines, without I/O: owns the
//! read buffer and keeps it bounded. A line longer than the limit is not kept: its
//! first bytes are remembered (to recognise the sender), the rest is skipped up to its
//! newline; a "line" running on past [`DISCARD_FACTOR`] times the limit is abuse.
//! The buffer never grows past the limit plus one read chunk, and shrinks again after
//! a large line so an idle connection holds only a small buffer.

use bytes::BytesMut;

/// How much of an over-long line is kept to recognise its sender.
pub const PREFIX_KEEP: usize = 4096;

/// An over-long line is skipped up to its newline, but a "line" that goes on past
/// this many multiples of the limit is abuse: the connection must be closed.
pub const DISCARD_FACTOR: usize = 8;

/// The buffer a connection starts with, and the most one read adds.
pub const CHUNK: usize = 8 * 1024;

/// Past this capacity the buffer is given back once the line that needed it is done.
const SHRINK_ABOVE: usize = 64 * 1024;

/// What the byte stream holds next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete line, without its `\n` (a `\r` or other whitespace is left for the
    /// caller to trim). At most the limit long.
    Line(BytesMut),
    /// A line longer than the limit was skipped; its first bytes, to recognise the
    /// sender.
    TooLong(Vec<u8>),
    /// A line ran on without a newline past [`DISCARD_FACTOR`] times the limit; its
    /// first bytes. The connection must be closed.
    Endless(Vec<u8>),
}

struct Discard {
    prefix: Vec<u8>,
    seen: usize,
}

/// The read buffer of one connection and the line-splitting state.
pub struct LineSplitter {
    max_line: usize,
    buf: BytesMut,
    /// How far `buf` has been searched for a newline already.
    scanned: usize,
    /// Set while skipping the rest of an over-long line.
    discarding: Option<Discard>,
}

impl LineSplitter {
    /// A splitter for lines of at most `max_line` bytes (without the newline).
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line,
            buf: BytesMut::with_capacity(CHUNK),
            scanned: 0,
            discarding: None,
        }
    }

    /// The buffer to read into, with free space for at least one byte and at most
    /// about one chunk beyond the limit. Call [`LineSplitter::next_event`] until it
    /// returns None before reading again.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        let spare = self.buf.capacity() - self.buf.len();
        if spare < CHUNK / 2 && !self.buf.try_reclaim(CHUNK) {
            // Grow by doubling (amortised copies) but never past the limit plus a
            // chunk: BytesMut's own growth could double a buffer of nearly the limit.
            let len = self.buf.len();
            let cap = (self.buf.capacity() * 2)
                .max(len + CHUNK)
                .min(self.max_line + 1 + CHUNK)
                .max(len + 1);
            let mut grown = BytesMut::with_capacity(cap);
            grown.extend_from_slice(&self.buf);
            self.buf = grown;
        }
        &mut self.buf
    }

    /// Feeds `bytes` the way a connection reads them — into [`LineSplitter::read_buf`],
    /// as much as fits each time, draining events in between — and hands each event
    /// to `f`. Stops when `f` returns false (then returns false).
    pub fn feed(&mut self, mut bytes: &[u8], mut f: impl FnMut(Event) -> bool) -> bool {
        while !bytes.is_empty() {
            let buf = self.read_buf();
            let n = bytes.len().min(buf.capacity() - buf.len());
            buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            while let Some(ev) = self.next_event() {
                if !f(ev) {
                    return false;
                }
            }
        }
        true
    }

    /// Bytes held for a line not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The buffer's capacity (what the connection holds in memory for reading).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The next event in what has been read so far, or None when more bytes are
    /// needed.
    pub fn next_event(&mut self) -> Option<Event> {
        if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
            let end = self.scanned + pos;
            let big = self.buf.capacity() > SHRINK_ABOVE;
            let mut line = self.buf.split_to(end + 1);
            self.scanned = 0;
            if big {
                self.shrink();
            }
            if let Some(d) = self.discarding.take() {
                return Some(Event::TooLong(d.prefix));
            }
            line.truncate(end);
            if line.len() > self.max_line {
                let keep = line.len().min(PREFIX_KEEP);
                return Some(Event::TooLong(line[..keep].to_vec()));
            }
            return Some(Event::Line(line));
        }
        self.scanned = self.buf.len();
        if let Some(d) = &mut self.discarding {
            d.seen += self.buf.len();
            self.buf.clear();
            self.scanned = 0;
            if self.buf.capacity() > SHRINK_ABOVE {
                self.buf = BytesMut::with_capacity(CHUNK);
            }
            if d.seen > self.max_line.saturating_mul(DISCARD_FACTOR) {
                let prefix = std::mem::take(&mut d.prefix);
                // Whatever comes after is not looked at: the caller closes.
                self.discarding = Some(Discard {
                    prefix: Vec::new(),
                    seen: 0,
                });
                return Some(Event::Endless(prefix));
            }
        } else if self.buf.len() > self.max_line {
            let keep = self.buf.len().min(PREFIX_KEEP);
            self.discarding = Some(Discard {
                prefix: self.buf[..keep].to_vec(),
                seen: self.buf.len(),
            });
            self.buf.clear();
            self.scanned = 0;
            self.shrink();
        }
        None
    }

    /// Gives back a large allocation, keeping what is buffered.
    fn shrink(&mut self) {
        if self.buf.capacity() > SHRINK_ABOVE {
            let mut small = BytesMut::with_capacity(self.buf.len().max(CHUNK));
            small.extend_from_slice(&self.buf);
            self.buf = small;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in reads of `step` bytes; collects every event up to an
    /// endless line.
    fn split(max_line: usize, input: &[u8], step: usize) -> Vec<Event> {
        let mut s = LineSplitter::new(max_line);
        let mut out = Vec::new();
        for chunk in input.chunks(step.max(1)) {
            let go_on = s.feed(chunk, |ev| {
                let endless = matches!(ev, Event::Endless(_));
                out.push(ev);
                !endless
            });
            assert!(s.capacity() <= max_line + 1 + CHUNK);
            if !go_on {
                break;
            }
        }
        out
    }

    fn line(s: &str) -> Event {
        Event::Line(BytesMut::from(s))
    }

    #[test]
    fn splits_lines_whatever_the_read_sizes() {
        let input = b"{\"a\":1}\n\r\n\n{\"b\":2}\r\ntail";
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(
                split(1024, input, step),
                vec![line("{\"a\":1}"), line("\r"), line(""), line("{\"b\":2}\r")],
                "step {step}"
            );
        }
    }

    #[test]
    fn a_line_at_the_limit_passes_one_over_is_skipped() {
        let at = "x".repeat(1024);
        let over = "y".repeat(1025);
        let input = format!("{at}\n{over}\nok\n");
        for step in [1, 500, 4096] {
            let ev = split(1024, input.as_bytes(), step);
            assert_eq!(ev.len(), 3, "step {step}");
            assert_eq!(ev[0], line(&at));
            assert!(matches!(&ev[1], Event::TooLong(p) if p.iter().all(|b| *b == b'y')));
            assert_eq!(ev[2], line("ok"));
        }
    }

    #[test]
    fn the_prefix_of_a_long_line_is_kept() {
        let input = format!("{{\"id\":\"a/b\",{}\n", "z".repeat(50_000));
        let ev = split(8192, input.as_bytes(), 8192);
        match &ev[..] {
            [Event::TooLong(p)] => {
                assert_eq!(p.len(), PREFIX_KEEP);
                assert!(p.starts_with(b"{\"id\":\"a/b\","));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endless_line_is_reported_once_and_buffer_stays_small() {
        let input = vec![b'x'; 1024 * (DISCARD_FACTOR + 2)];
        let ev = split(1024, &input, 300);
        assert_eq!(ev.len(), 1);
        assert!(matches!(&ev[0], Event::Endless(p) if !p.is_empty()));
    }

    #[test]
    fn buffer_shrinks_after_a_big_line() {
        let max = 256 * 1024;
        let mut s = LineSplitter::new(max);
        let big = vec![b'x'; max];
        let mut rest = &big[..];
        while !rest.is_empty() {
            let buf = s.read_buf();
            let n = rest.len().min(buf.capacity() - buf.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            assert!(s.next_event().is_none());
        }
        assert!(s.capacity() <= max + 1 + CHUNK);
        s.read_buf().extend_from_slice(b"\nnext");
        assert!(matches!(s.next_event(), Some(Event::Line(l)) if l.len() == max));
        assert!(s.next_event().is_none());
        assert_eq!(s.buffered(), 4);
        assert!(s.capacity() <= SHRINK_ABOVE, "capacity {}", s.capacity());
    }
}

//! The line path: split what a program wrote into whole lines, each with its prefix
//! (`name | ` for "inherit") and timestamp, so that the writer can put whole lines into one
//! `write(2)`.
//!
//! A partial line is held until its newline comes, up to `MAX_LINE` bytes: a longer line is
//! written in `MAX_LINE` pieces, so a program writing 10 MB without a newline costs holden at
//! most `MAX_LINE` of memory. At a program's death (or at EOF) the held bytes are written.
//!
//! A stream that transforms its lines (prefix, timestamp) ends each piece of an overlong line
//! and the held bytes at death with a newline: each is a line of its own, with its own prefix.
//! A stream that does not (a plain file) writes the bytes exactly as they came: pieces and
//! held bytes without an added newline; the file's writer knows the file then ends mid-line.

use std::io::{self, Write};
use std::time::SystemTime;

/// Longest line content held in memory; longer lines are cut into lines of this size.
pub const MAX_LINE: usize = 64 * 1024;

/// `2026-11-23T07:41:00.123Z ` is 25 bytes.
const STAMP_LEN: usize = 25;

/// An RFC 3339 UTC time with milliseconds and a trailing space, formatted on the stack.
#[derive(Clone, Copy)]
pub struct Stamp {
    buf: [u8; 32],
    len: usize,
}

impl Stamp {
    pub fn at(t: SystemTime) -> Stamp {
        let mut buf = [0u8; 32];
        let mut cur = io::Cursor::new(&mut buf[..]);
        // 25 bytes always fit in 32 (the year stays below 10000 for a while).
        let _ = write!(cur, "{} ", humantime::format_rfc3339_millis(t));
        let len = cur.position() as usize;
        debug_assert_eq!(len, STAMP_LEN);
        Stamp { buf, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Index of the first newline in `s`, eight bytes at a time (the line path's hot loop; a
/// byte-at-a-time search does not vectorize because of its early exit).
pub fn find_newline(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes")) ^ NL;
        // A zero byte of `w` is a newline; the lowest flagged byte is always a true zero.
        let zero = w.wrapping_sub(LO) & !w & HI;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| b == b'\n').map(|p| at + p)
}

/// One stream's line splitter.
pub struct Lines {
    /// The beginning of a line whose newline has not come yet (at most MAX_LINE bytes).
    held: Vec<u8>,
    /// When the held line's first bytes were read (its timestamp).
    held_at: Option<Stamp>,
    /// `name | ` for "inherit"; empty otherwise.
    prefix: Vec<u8>,
    timestamps: bool,
}

impl Lines {
    pub fn new(prefix: Vec<u8>, timestamps: bool) -> Lines {
        Lines {
            held: Vec::new(),
            held_at: None,
            prefix,
            timestamps,
        }
    }

    /// Does this stream change what it writes (prefix or timestamp)?
    pub fn transforms(&self) -> bool {
        self.timestamps || !self.prefix.is_empty()
    }

    /// The held start of a line.
    pub fn held_bytes(&self) -> &[u8] {
        &self.held
    }

    /// Forget the held bytes (the caller wrote them as they are).
    pub fn clear_held(&mut self) {
        self.held.clear();
        self.held_at = None;
    }

    /// What ends an overlong piece or the held bytes at death.
    fn cut_ending(&self) -> &'static [u8] {
        if self.transforms() { b"\n" } else { b"" }
    }

    #[cfg(test)]
    /// Memory the held line occupies.
    pub fn capacity(&self) -> usize {
        self.held.capacity() + self.prefix.capacity()
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Split `data`, read at `now`, into whole lines and hand each to `emit` as its parts
    /// (prefix, timestamp, held start, rest with its newline). What is left without a newline
    /// is held.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        now: SystemTime,
        emit: &mut dyn FnMut(&[&[u8]]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut now_stamp: Option<Stamp> = None;
        while !data.is_empty() {
            let room = MAX_LINE - self.held.len();
            // A newline may sit just past `room` bytes of content: a line of exactly MAX_LINE.
            let window = &data[..data.len().min(room + 1)];
            let (content, ending, used): (&[u8], &[u8], usize) = match find_newline(window) {
                Some(i) => (&window[..=i], b"", i + 1),
                None if window.len() > room => (&window[..room], self.cut_ending(), room),
                None => {
                    if self.held.is_empty() && self.timestamps {
                        self.held_at = Some(*now_stamp.get_or_insert_with(|| Stamp::at(now)));
                    }
                    // Never more than MAX_LINE, whatever Vec's doubling would pick.
                    let need = self.held.len() + window.len();
                    if need > self.held.capacity() {
                        self.held.reserve_exact(MAX_LINE - self.held.len());
                    }
                    self.held.extend_from_slice(window);
                    data = &data[window.len()..];
                    continue;
                }
            };
            let stamp = match (self.timestamps, self.held_at.take()) {
                (false, _) => None,
                (true, Some(s)) if !self.held.is_empty() => Some(s),
                (true, _) => Some(*now_stamp.get_or_insert_with(|| Stamp::at(now))),
            };
            let stamp_bytes = stamp.as_ref().map(Stamp::as_bytes).unwrap_or_default();
            emit(&[&self.prefix, stamp_bytes, &self.held, content, ending])?;
            self.held.clear();
            data = &data[used..];
        }
        Ok(())
    }

    /// Write the held partial line, if any (the program died or closed its output), ended
    /// with a newline when this stream transforms its lines.
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[&[u8]]) -> io::Result<()>) -> io::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let stamp = self.held_at.take();
        let stamp_bytes = stamp.as_ref().map(Stamp::as_bytes).unwrap_or_default();
        let r = emit(&[&self.prefix, stamp_bytes, &self.held, self.cut_ending()]);
        self.held.clear();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn collect(lines: &mut Lines, chunks: &[&[u8]], t: SystemTime) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for c in chunks {
            lines
                .feed(c, t, &mut |parts| {
                    out.push(parts.concat());
                    Ok(())
                })
                .unwrap();
        }
        out
    }

    #[test]
    fn whole_lines_come_out_once_and_partial_ones_wait_for_their_newline() {
        let mut l = Lines::new(Vec::new(), false);
        let out = collect(&mut l, &[b"one\ntw", b"o\nthree", b"\n"], UNIX_EPOCH);
        assert_eq!(out, vec![b"one\n".to_vec(), b"two\n".to_vec(), b"three\n".to_vec()]);
        assert_eq!(l.held(), 0);
    }

    #[test]
    fn inherit_lines_get_the_program_prefix() {
        let mut l = Lines::new(b"web | ".to_vec(), false);
        let out = collect(&mut l, &[b"a\nb\n"], UNIX_EPOCH);
        assert_eq!(out, vec![b"web | a\n".to_vec(), b"web | b\n".to_vec()]);
    }

    #[test]
    fn timestamps_are_rfc3339_millis_and_taken_when_the_line_began() {
        let t0 = UNIX_EPOCH + Duration::from_millis(1_795_419_660_123);
        let t1 = t0 + Duration::from_secs(1);
        let mut l = Lines::new(Vec::new(), true);
        let mut out = collect(&mut l, &[b"first half "], t0);
        out.extend(collect(&mut l, &[b"second half\nnext\n"], t1));
        assert_eq!(
            out,
            vec![
                b"2026-11-23T07:41:00.123Z first half second half\n".to_vec(),
                b"2026-11-23T07:41:01.123Z next\n".to_vec(),
            ]
        );
    }

    #[test]
    fn a_line_longer_than_the_bound_is_cut_and_memory_stays_bounded() {
        let mut l = Lines::new(b"p | ".to_vec(), false);
        let big = vec![b'x'; 3 * MAX_LINE + 10];
        let mut out = Vec::new();
        for chunk in big.chunks(4096) {
            out.extend(collect(&mut l, &[chunk], UNIX_EPOCH));
            assert!(l.held() <= MAX_LINE && l.capacity() <= MAX_LINE + 4);
        }
        assert_eq!(out.len(), 3);
        assert!(
            out.iter()
                .all(|line| line.len() == 4 + MAX_LINE + 1 && line.ends_with(b"x\n"))
        );
        assert_eq!(l.held(), 10);
        let mut rest = Vec::new();
        l.flush(&mut |p| {
            rest.push(p.concat());
            Ok(())
        })
        .unwrap();
        assert_eq!(rest, vec![[b"p | ".to_vec(), vec![b'x'; 10], b"\n".to_vec()].concat()]);
    }

    #[test]
    fn a_plain_stream_cuts_an_overlong_line_without_adding_newlines() {
        let mut l = Lines::new(Vec::new(), false);
        let big = vec![b'x'; 2 * MAX_LINE + 10];
        let mut out = collect(&mut l, &[&big], UNIX_EPOCH);
        l.flush(&mut |p| {
            out.push(p.concat());
            Ok(())
        })
        .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out.concat(), big);
    }

    #[test]
    fn a_line_of_exactly_the_bound_keeps_its_own_newline() {
        let mut l = Lines::new(Vec::new(), false);
        let mut line = vec![b'y'; MAX_LINE];
        line.push(b'\n');
        let out = collect(&mut l, &[&line[..100], &line[100..]], UNIX_EPOCH);
        assert_eq!(out, vec![line]);
    }

    #[test]
    fn flushing_with_nothing_held_writes_nothing() {
        let mut l = Lines::new(b"p | ".to_vec(), true);
        let mut n = 0;
        l.flush(&mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 0);
    }

    proptest::proptest! {
        #[test]
        fn find_newline_agrees_with_a_plain_search(data in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(b'\n'), proptest::strategy::Just(0x8a_u8),
                proptest::strategy::Just(0x0b_u8), proptest::strategy::Just(0x09_u8), 0u8..=255], 0..64)) {
            proptest::prop_assert_eq!(find_newline(&data), data.iter().position(|&b| b == b'\n'));
        }


        #[test]
        fn any_chunking_gives_the_same_lines(data in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(b'\n'), 97u8..100], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..8)) {
            let mut whole = Lines::new(Vec::new(), false);
            let mut expected = collect(&mut whole, &[&data], UNIX_EPOCH);
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= data.len()).collect();
            cuts.sort();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts { chunks.push(&data[at..c]); at = c; }
            chunks.push(&data[at..]);
            let mut pieces = Lines::new(Vec::new(), false);
            let got = collect(&mut pieces, &chunks, UNIX_EPOCH);
            proptest::prop_assert_eq!(&got, &expected);
            let mut tail = Vec::new();
            pieces.flush(&mut |p| { tail.push(p.concat()); Ok(()) }).unwrap();
            expected.extend(tail);
            // A plain stream gives back exactly what came in.
            proptest::prop_assert_eq!(expected.concat(), data);
        }
    }
}

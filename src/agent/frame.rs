//! The agent's wire format: pure encoding and decoding of frames, nothing else.
//!
//! Every frame is a 12-byte header (magic `HLDA`, version, type, two reserved zero bytes, the
//! payload length as a little-endian u32) followed by the payload. Sizes are bounded before a
//! single payload byte is looked at, so a peer can never make the other side buffer more than
//! `HEADER_LEN + MAX_PAYLOAD` bytes. The byte-by-byte layout is in docs/agent-protocol.md.
//!
//! Decoding tells apart errors that lose the framing (bad magic, version or length: the stream
//! cannot be trusted any more) from errors inside a well-framed payload (the frame can be
//! skipped and the connection kept). This module depends on std and thiserror only, so that the
//! benchmark and the integration tests can include it as it is.

/// `HLDA`: holden agent.
pub const MAGIC: [u8; 4] = *b"HLDA";
/// The only version this holden speaks.
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 12;
/// Largest payload of any frame: 256 KiB.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// Most arguments (the command included) in a START_PROCESS.
pub const MAX_ARGS: usize = 4096;
/// Most environment entries in a START_PROCESS.
pub const MAX_ENV: usize = 4096;
/// Longest message of a PROCESS_ERROR, in bytes.
pub const MAX_ERROR_MESSAGE: usize = 4096;

/// Frame types.
pub const TYPE_PING: u8 = 1;
pub const TYPE_PONG: u8 = 2;
pub const TYPE_START_PROCESS: u8 = 3;
pub const TYPE_PROCESS_STARTED: u8 = 4;
pub const TYPE_PROCESS_ERROR: u8 = 5;

/// START_PROCESS flags.
pub const FLAG_CWD: u32 = 1 << 0;
pub const FLAG_CLEAR_ENV: u32 = 1 << 1;
pub const FLAG_NULL_STDIO: u32 = 1 << 2;
const KNOWN_FLAGS: u32 = FLAG_CWD | FLAG_CLEAR_ENV | FLAG_NULL_STDIO;

/// One message, as either side sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Ping,
    Pong,
    StartProcess(StartProcess),
    /// The pid in the agent's PID namespace; the pidfd travels beside the frame (SCM_RIGHTS).
    ProcessStarted {
        pid: i32,
    },
    ProcessError {
        errno: i32,
        message: String,
    },
}

/// What to spawn. Strings are raw bytes (Unix argv and environment are not necessarily UTF-8)
/// and never contain NUL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartProcess {
    pub argv: Vec<Vec<u8>>,
    /// Added to (or, with `clear_env`, replacing) the agent's own environment.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    pub cwd: Option<Vec<u8>>,
    pub clear_env: bool,
    /// stdin, stdout and stderr on /dev/null instead of the agent's own.
    pub null_stdio: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the frame does not start with the magic \"HLDA\"")]
    BadMagic,
    #[error("protocol version {0} is not supported (this holden speaks version {VERSION})")]
    BadVersion(u8),
    #[error("the reserved header bytes are not zero")]
    Reserved,
    #[error("a payload of {0} bytes is over the limit of {MAX_PAYLOAD} bytes")]
    TooLarge(usize),
    /// A well-framed frame whose payload is wrong: `len` bytes (header included) can be skipped.
    #[error("{reason}")]
    Payload { len: usize, reason: String },
    /// Encoding only: what was asked cannot be put in a frame.
    #[error("{0}")]
    Unencodable(String),
}

impl FrameError {
    /// When the framing survived the error: how many bytes to skip to the next frame.
    pub fn skip_len(&self) -> Option<usize> {
        match self {
            FrameError::Payload { len, .. } => Some(*len),
            FrameError::BadMagic
            | FrameError::BadVersion(_)
            | FrameError::Reserved
            | FrameError::TooLarge(_)
            | FrameError::Unencodable(_) => None,
        }
    }
}

impl Message {
    fn type_byte(&self) -> u8 {
        match self {
            Message::Ping => TYPE_PING,
            Message::Pong => TYPE_PONG,
            Message::StartProcess(_) => TYPE_START_PROCESS,
            Message::ProcessStarted { .. } => TYPE_PROCESS_STARTED,
            Message::ProcessError { .. } => TYPE_PROCESS_ERROR,
        }
    }
}

/// The whole frame (header and payload) for `msg`. A PROCESS_ERROR message longer than
/// `MAX_ERROR_MESSAGE` is cut at a character boundary; anything else over a bound is refused.
pub fn encode(msg: &Message) -> Result<Vec<u8>, FrameError> {
    let mut payload = Vec::new();
    match msg {
        Message::Ping | Message::Pong => {}
        Message::StartProcess(sp) => encode_start(sp, &mut payload)?,
        Message::ProcessStarted { pid } => payload.extend_from_slice(&pid.to_le_bytes()),
        Message::ProcessError { errno, message } => {
            payload.extend_from_slice(&errno.to_le_bytes());
            let mut end = message.len().min(MAX_ERROR_MESSAGE);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            put_bytes(&mut payload, &message.as_bytes()[..end]);
        }
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::Unencodable(format!(
            "the request takes {} bytes, over the limit of {MAX_PAYLOAD} bytes",
            payload.len()
        )));
    }
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.push(VERSION);
    frame.push(msg.type_byte());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

fn encode_start(sp: &StartProcess, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let bad = |s: String| Err(FrameError::Unencodable(s));
    if sp.argv.is_empty() {
        return bad("the command is empty".into());
    }
    if sp.argv.len() > MAX_ARGS {
        return bad(format!("{} arguments are over the limit of {MAX_ARGS}", sp.argv.len()));
    }
    if sp.env.len() > MAX_ENV {
        return bad(format!(
            "{} environment entries are over the limit of {MAX_ENV}",
            sp.env.len()
        ));
    }
    let strings = sp
        .argv
        .iter()
        .chain(sp.env.iter().flat_map(|(k, v)| [k, v]))
        .chain(sp.cwd.iter());
    for s in strings {
        if s.contains(&0) {
            return bad(format!("{:?} contains a NUL byte", String::from_utf8_lossy(s)));
        }
    }
    for (k, _) in &sp.env {
        if k.is_empty() || k.contains(&b'=') {
            return bad(format!(
                "{:?} is not a valid environment variable name",
                String::from_utf8_lossy(k)
            ));
        }
    }
    let mut flags = 0;
    if sp.cwd.is_some() {
        flags |= FLAG_CWD;
    }
    if sp.clear_env {
        flags |= FLAG_CLEAR_ENV;
    }
    if sp.null_stdio {
        flags |= FLAG_NULL_STDIO;
    }
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(sp.argv.len() as u32).to_le_bytes());
    out.extend_from_slice(&(sp.env.len() as u32).to_le_bytes());
    for a in &sp.argv {
        put_bytes(out, a);
    }
    for (k, v) in &sp.env {
        put_bytes(out, k);
        put_bytes(out, v);
    }
    if let Some(c) = &sp.cwd {
        put_bytes(out, c);
    }
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    // Callers keep every string below MAX_PAYLOAD, which fits a u32; a longer one is caught by
    // the payload bound in `encode`.
    out.extend_from_slice(&(s.len().min(u32::MAX as usize) as u32).to_le_bytes());
    out.extend_from_slice(s);
}

/// Decode the first frame in `buf`. `Ok(None)`: not all of it has arrived yet (the header is
/// checked as soon as it is complete, so a bad or oversized frame is refused before its payload
/// is waited for). `Ok(Some((msg, len)))`: a frame of `len` bytes.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, FrameError> {
    // Check the magic on what has arrived, so that garbage is refused without waiting for 12 bytes.
    let seen = buf.len().min(MAGIC.len());
    if buf[..seen] != MAGIC[..seen] {
        return Err(FrameError::BadMagic);
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[4] != VERSION {
        return Err(FrameError::BadVersion(buf[4]));
    }
    if buf[6] != 0 || buf[7] != 0 {
        return Err(FrameError::Reserved);
    }
    let len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Ok(None);
    }
    let payload = &buf[HEADER_LEN..total];
    let fail = |reason: String| FrameError::Payload { len: total, reason };
    let mut r = Reader { buf: payload };
    let msg = match buf[5] {
        TYPE_PING => Message::Ping,
        TYPE_PONG => Message::Pong,
        TYPE_START_PROCESS => Message::StartProcess(decode_start(&mut r).map_err(fail)?),
        TYPE_PROCESS_STARTED => Message::ProcessStarted {
            pid: r.i32("pid").map_err(fail)?,
        },
        TYPE_PROCESS_ERROR => {
            let errno = r.i32("errno").map_err(fail)?;
            let bytes = r.bytes("message").map_err(fail)?;
            if bytes.len() > MAX_ERROR_MESSAGE {
                return Err(fail(format!(
                    "an error message of {} bytes is over the limit of {MAX_ERROR_MESSAGE}",
                    bytes.len()
                )));
            }
            let message =
                String::from_utf8(bytes.to_vec()).map_err(|_| fail("the error message is not UTF-8".into()))?;
            Message::ProcessError { errno, message }
        }
        other => return Err(fail(format!("unknown message type {other}"))),
    };
    if !r.buf.is_empty() {
        return Err(fail(format!("{} bytes left over after the message", r.buf.len())));
    }
    Ok(Some((msg, total)))
}

fn decode_start(r: &mut Reader<'_>) -> Result<StartProcess, String> {
    let flags = r.u32("flags")?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(format!("unknown flags {:#x}", flags & !KNOWN_FLAGS));
    }
    let argc = r.u32("argument count")? as usize;
    let envc = r.u32("environment count")? as usize;
    if argc == 0 {
        return Err("the command is empty".into());
    }
    if argc > MAX_ARGS {
        return Err(format!("{argc} arguments are over the limit of {MAX_ARGS}"));
    }
    if envc > MAX_ENV {
        return Err(format!("{envc} environment entries are over the limit of {MAX_ENV}"));
    }
    let string = |r: &mut Reader<'_>, what: &str| -> Result<Vec<u8>, String> {
        let s = r.bytes(what)?;
        if s.contains(&0) {
            return Err(format!("the {what} contains a NUL byte"));
        }
        Ok(s.to_vec())
    };
    // No `with_capacity(argc)`: the counts are bounded, but the bytes behind them may not exist.
    let mut argv = Vec::new();
    for _ in 0..argc {
        argv.push(string(r, "argument")?);
    }
    let mut env = Vec::new();
    for _ in 0..envc {
        let k = string(r, "environment name")?;
        if k.is_empty() || k.contains(&b'=') {
            return Err(format!(
                "{:?} is not a valid environment variable name",
                String::from_utf8_lossy(&k)
            ));
        }
        let v = string(r, "environment value")?;
        env.push((k, v));
    }
    let cwd = if flags & FLAG_CWD != 0 {
        Some(string(r, "working directory")?)
    } else {
        None
    };
    Ok(StartProcess {
        argv,
        env,
        cwd,
        clear_env: flags & FLAG_CLEAR_ENV != 0,
        null_stdio: flags & FLAG_NULL_STDIO != 0,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!("the payload ends inside the {what}"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32, String> {
        Ok(self.u32(what)? as i32)
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn start(argv: &[&str]) -> StartProcess {
        StartProcess {
            argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
            ..StartProcess::default()
        }
    }

    #[test]
    fn ping_is_a_bare_header() {
        let f = encode(&Message::Ping).unwrap();
        assert_eq!(f, b"HLDA\x01\x01\x00\x00\x00\x00\x00\x00");
        assert_eq!(decode(&f).unwrap(), Some((Message::Ping, 12)));
    }

    #[test]
    fn start_process_layout_matches_the_documentation() {
        let sp = StartProcess {
            argv: vec![b"sh".to_vec(), b"-c".to_vec()],
            env: vec![(b"A".to_vec(), b"1".to_vec())],
            cwd: Some(b"/".to_vec()),
            clear_env: false,
            null_stdio: true,
        };
        let f = encode(&Message::StartProcess(sp.clone())).unwrap();
        let mut want = b"HLDA\x01\x03\x00\x00".to_vec();
        let payload: &[u8] = b"\x05\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\
            \x02\x00\x00\x00sh\x02\x00\x00\x00-c\
            \x01\x00\x00\x00A\x01\x00\x00\x001\
            \x01\x00\x00\x00/";
        want.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        want.extend_from_slice(payload);
        assert_eq!(f, want);
        assert_eq!(decode(&f).unwrap(), Some((Message::StartProcess(sp), want.len())));
    }

    #[test]
    fn an_incomplete_frame_asks_for_more() {
        let f = encode(&Message::StartProcess(start(&["true"]))).unwrap();
        for cut in 0..f.len() {
            assert_eq!(decode(&f[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_refused_at_the_first_wrong_byte() {
        assert_eq!(decode(b"G"), Err(FrameError::BadMagic));
        assert_eq!(decode(b"GET / HTTP/1.1\r\n"), Err(FrameError::BadMagic));
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header() {
        let mut h = b"HLDA\x01\x03\x00\x00".to_vec();
        h.extend_from_slice(&((MAX_PAYLOAD + 1) as u32).to_le_bytes());
        assert_eq!(decode(&h), Err(FrameError::TooLarge(MAX_PAYLOAD + 1)));
    }

    #[test]
    fn another_version_is_refused() {
        assert_eq!(
            decode(b"HLDA\x02\x01\x00\x00\x00\x00\x00\x00"),
            Err(FrameError::BadVersion(2))
        );
    }

    #[test]
    fn a_bad_payload_can_be_skipped() {
        // START_PROCESS with argc 0.
        let mut f = b"HLDA\x01\x03\x00\x00\x0c\x00\x00\x00".to_vec();
        f.extend_from_slice(&[0; 12]);
        let e = decode(&f).unwrap_err();
        assert_eq!(e.skip_len(), Some(24));
        assert!(e.to_string().contains("empty"), "{e}");
        // An unknown type with an empty payload.
        let e = decode(b"HLDA\x01\x63\x00\x00\x00\x00\x00\x00").unwrap_err();
        assert_eq!(e.skip_len(), Some(12));
    }

    #[test]
    fn huge_counts_without_bytes_behind_them_are_refused() {
        let mut p = Vec::new();
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&(MAX_ARGS as u32).to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        let mut f = b"HLDA\x01\x03\x00\x00".to_vec();
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&p);
        assert!(matches!(decode(&f), Err(FrameError::Payload { .. })));
    }

    #[test]
    fn encoding_refuses_what_the_agent_would_refuse() {
        assert!(encode(&Message::StartProcess(start(&[]))).is_err());
        assert!(encode(&Message::StartProcess(start(&["a\0b"]))).is_err());
        let mut sp = start(&["x"]);
        sp.env.push((b"A=B".to_vec(), b"1".to_vec()));
        assert!(encode(&Message::StartProcess(sp)).is_err());
        let big = start(&[&"x".repeat(MAX_PAYLOAD)]);
        assert!(encode(&Message::StartProcess(big)).is_err());
        let many = StartProcess {
            argv: vec![b"x".to_vec(); MAX_ARGS + 1],
            ..StartProcess::default()
        };
        assert!(encode(&Message::StartProcess(many)).is_err());
    }

    #[test]
    fn a_long_error_message_is_cut_at_a_character_boundary() {
        let msg = Message::ProcessError {
            errno: 2,
            message: "é".repeat(MAX_ERROR_MESSAGE),
        };
        let f = encode(&msg).unwrap();
        let Some((Message::ProcessError { errno, message }, _)) = decode(&f).unwrap() else {
            panic!("not a PROCESS_ERROR");
        };
        assert_eq!(errno, 2);
        assert_eq!(message.len(), MAX_ERROR_MESSAGE);
    }

    fn bytes_without_nul() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=255, 0..40)
    }

    fn message() -> impl Strategy<Value = Message> {
        let name = proptest::collection::vec((1u8..=255).prop_filter("no =", |b| *b != b'='), 1..10);
        let start = (
            proptest::collection::vec(bytes_without_nul(), 1..8),
            proptest::collection::vec((name, bytes_without_nul()), 0..5),
            proptest::option::of(bytes_without_nul()),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(argv, env, cwd, clear_env, null_stdio)| {
                Message::StartProcess(StartProcess {
                    argv,
                    env,
                    cwd,
                    clear_env,
                    null_stdio,
                })
            });
        prop_oneof![
            Just(Message::Ping),
            Just(Message::Pong),
            start,
            any::<i32>().prop_map(|pid| Message::ProcessStarted { pid }),
            (any::<i32>(), ".{0,50}").prop_map(|(errno, message)| Message::ProcessError { errno, message }),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(msg in message()) {
            let f = encode(&msg).unwrap();
            prop_assert_eq!(decode(&f).unwrap(), Some((msg, f.len())));
        }

        #[test]
        fn every_truncation_asks_for_more(msg in message(), cut in any::<proptest::sample::Index>()) {
            let f = encode(&msg).unwrap();
            let cut = cut.index(f.len());
            prop_assert_eq!(decode(&f[..cut]).unwrap(), None);
        }

        #[test]
        fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&buf);
        }

        #[test]
        fn random_payloads_behind_a_valid_header_never_panic(
            ty in 0u8..8,
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut f = b"HLDA\x01".to_vec();
            f.push(ty);
            f.extend_from_slice(&[0, 0]);
            f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            f.extend_from_slice(&payload);
            match decode(&f) {
                Ok(Some((_, len))) => prop_assert_eq!(len, f.len()),
                Ok(None) => prop_assert!(false, "a complete frame asked for more"),
                Err(e) => prop_assert_eq!(e.skip_len(), Some(f.len())),
            }
        }

        #[test]
        fn flipped_bytes_never_panic(msg in message(), at in any::<proptest::sample::Index>(), b in any::<u8>()) {
            let mut f = encode(&msg).unwrap();
            let i = at.index(f.len());
            f[i] = b;
            let _ = decode(&f);
        }
    }
}

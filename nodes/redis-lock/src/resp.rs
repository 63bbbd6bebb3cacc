//! RESP2 frames: a bounded, non-allocating completeness check, then the allocating parse.
//!
//! Every size that comes off the wire is checked against a named limit before anything is
//! allocated for it, so random bytes, truncated frames and huge declared lengths end in a
//! `ProtocolError` (the connection is closed) and never in a panic or a giant allocation.

use std::fmt;

/// Longest bulk string accepted (values and keys of a lock service are tiny; Redis allows 512 MiB).
pub const BULK_BYTES_MAX: usize = 1024 * 1024;
/// Most elements in one array frame.
pub const ARRAY_LEN_MAX: usize = 1024 * 1024;
/// Longest `+`, `-`, `:` or inline-command line, including its terminator.
pub const LINE_BYTES_MAX: usize = 64 * 1024;
/// Deepest nesting of arrays; requests are flat, replies nest at most twice.
pub const DEPTH_MAX: usize = 8;
/// Largest whole frame; a connection buffering more than this without a full frame is dropped.
pub const FRAME_BYTES_MAX: usize = 4 * 1024 * 1024;

/// One RESP2 value.
#[derive(Clone, PartialEq, Eq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    /// `$-1`: the nil bulk string (a missing key).
    Null,
    Array(Vec<Frame>),
    /// `*-1`: the nil array.
    NullArray,
}

/// Why bytes are not a frame (yet).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// More bytes are needed; not an error on a live stream.
    #[error("incomplete frame")]
    Incomplete,
    #[error("protocol error: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ProtocolError {
    ProtocolError::Invalid(msg.into())
}

impl Frame {
    /// A bulk string from text.
    pub fn bulk(s: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(s.as_ref().to_vec())
    }

    /// The `+OK` reply.
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }

    /// An error reply; `msg` starts with the error kind (`ERR`, `READONLY`, …) as in Redis.
    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }

    /// A request frame: an array of bulk strings.
    pub fn command<I, S>(parts: I) -> Frame
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        Frame::Array(parts.into_iter().map(Frame::bulk).collect())
    }

    /// Appends the wire form of this frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Simple(s) => {
                out.push(b'+');
                push_line_text(out, s);
            }
            Frame::Error(s) => {
                out.push(b'-');
                push_line_text(out, s);
            }
            Frame::Integer(n) => {
                out.push(b':');
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Frame::Bulk(b) => {
                out.push(b'$');
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Null => out.extend_from_slice(b"$-1\r\n"),
            Frame::Array(items) => {
                out.push(b'*');
                out.extend_from_slice(items.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                for item in items {
                    item.encode(out);
                }
            }
            Frame::NullArray => out.extend_from_slice(b"*-1\r\n"),
        }
    }

    /// The wire form of this frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Simple strings and errors cannot carry CR or LF; replace them so a reply never splits.
fn push_line_text(out: &mut Vec<u8>, s: &str) {
    out.extend(
        s.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Simple(s) => write!(f, "+{s}"),
            Frame::Error(s) => write!(f, "-{s}"),
            Frame::Integer(n) => write!(f, ":{n}"),
            Frame::Bulk(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Frame::Null => write!(f, "(nil)"),
            Frame::Array(items) => f.debug_list().entries(items).finish(),
            Frame::NullArray => write!(f, "(nil array)"),
        }
    }
}

/// Checks whether `buf` starts with one whole frame and returns its length, without allocating.
/// A first byte that is not a RESP type marker starts an inline command (`PING\r\n`), as
/// Redis accepts from telnet.
pub fn check(buf: &[u8]) -> Result<usize, ProtocolError> {
    Scan::default().advance(buf, &mut 0)
}

/// How far the completeness check of a partial frame got, so that the next read resumes
/// there: checking from the start on every read made one client trickling a large frame
/// cost time quadratic in its size (85% of a core for one slow client).
#[derive(Debug, Default)]
struct Scan {
    /// Where the next element (or the bulk body in `body`) starts; all before is whole.
    pos: usize,
    /// Elements still to come in each open array, outermost first.
    open: Vec<usize>,
    /// A bulk body of this many bytes and its CRLF start at `pos`.
    body: Option<usize>,
    /// Bytes of the line after `pos` already searched for its terminator.
    searched: usize,
}

impl Scan {
    /// Goes as far through `buf` (a frame starting at `buf[0]`) as its bytes allow: the
    /// frame's length once it is whole. `examined` counts the bytes searched, so tests can
    /// tell a resumed scan from a rescan.
    fn advance(&mut self, buf: &[u8], examined: &mut u64) -> Result<usize, ProtocolError> {
        loop {
            if let Some(len) = self.body {
                // The body is not searched: only its terminator is looked at.
                skip_bulk_body(buf, &mut self.pos, len)?;
                *examined += 2;
                self.body = None;
                if self.element_done() {
                    return Ok(self.pos);
                }
                continue;
            }
            let depth = self.open.len();
            if depth > DEPTH_MAX {
                return Err(invalid("arrays nested too deeply"));
            }
            let Some(&marker) = buf.get(self.pos) else {
                return Err(ProtocolError::Incomplete);
            };
            let typed = matches!(marker, b'+' | b'-' | b':' | b'$' | b'*');
            if !typed && depth > 0 {
                return Err(invalid(format!(
                    "unexpected byte 0x{marker:02x} where a frame starts"
                )));
            }
            let (line, next) = if typed {
                line_at(buf, self.pos + 1, false, &mut self.searched, examined)?
            } else {
                line_at(buf, self.pos, true, &mut self.searched, examined)?
            };
            self.pos = next;
            match marker {
                b':' => {
                    integer(line)?;
                }
                b'$' => match integer(line)? {
                    -1 => {}
                    n => {
                        self.body = Some(length(n, BULK_BYTES_MAX, "bulk string")?);
                        continue;
                    }
                },
                b'*' => match integer(line)? {
                    -1 | 0 => {}
                    n => {
                        self.open.push(length(n, ARRAY_LEN_MAX, "array")?);
                        continue;
                    }
                },
                // `+`, `-` and inline commands are whole once their line is.
                _ => {}
            }
            if self.element_done() {
                return Ok(self.pos);
            }
        }
    }

    /// One element ended: true when that ends the frame.
    fn element_done(&mut self) -> bool {
        while let Some(left) = self.open.last_mut() {
            *left -= 1;
            if *left > 0 {
                return false;
            }
            self.open.pop();
        }
        true
    }
}

/// Parses one whole frame; call only after `check` succeeded on the same bytes.
pub fn parse(buf: &[u8]) -> Result<(Frame, usize), ProtocolError> {
    let mut pos = 0;
    let frame = parse_at(buf, &mut pos, 0)?;
    Ok((frame, pos))
}

fn parse_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Frame, ProtocolError> {
    if depth > DEPTH_MAX {
        return Err(invalid("arrays nested too deeply"));
    }
    let Some(&marker) = buf.get(*pos) else {
        return Err(ProtocolError::Incomplete);
    };
    match marker {
        b'+' => {
            *pos += 1;
            Ok(Frame::Simple(text(line(buf, pos)?)?))
        }
        b'-' => {
            *pos += 1;
            Ok(Frame::Error(text(line(buf, pos)?)?))
        }
        b':' => {
            *pos += 1;
            Ok(Frame::Integer(integer(line(buf, pos)?)?))
        }
        b'$' => {
            *pos += 1;
            let len = integer(line(buf, pos)?)?;
            if len == -1 {
                return Ok(Frame::Null);
            }
            let len = length(len, BULK_BYTES_MAX, "bulk string")?;
            let start = *pos;
            skip_bulk_body(buf, pos, len)?;
            Ok(Frame::Bulk(buf[start..start + len].to_vec()))
        }
        b'*' => {
            *pos += 1;
            let len = integer(line(buf, pos)?)?;
            if len == -1 {
                return Ok(Frame::NullArray);
            }
            let len = length(len, ARRAY_LEN_MAX, "array")?;
            // The capacity is bounded by the bytes present: each element takes at least 3.
            let mut items = Vec::with_capacity(len.min(buf.len() / 3 + 1));
            for _ in 0..len {
                items.push(parse_at(buf, pos, depth + 1)?);
            }
            Ok(Frame::Array(items))
        }
        _ if depth == 0 => {
            let words = inline_line(buf, pos)?;
            Ok(Frame::Array(
                words
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|w| !w.is_empty())
                    .map(Frame::bulk)
                    .collect(),
            ))
        }
        other => Err(invalid(format!(
            "unexpected byte 0x{other:02x} where a frame starts"
        ))),
    }
}

/// The body of a bulk string of `len` bytes and its CRLF.
fn skip_bulk_body(buf: &[u8], pos: &mut usize, len: usize) -> Result<(), ProtocolError> {
    let end = *pos + len;
    if buf.len() < end + 2 {
        return Err(ProtocolError::Incomplete);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(invalid("bulk string not terminated by CRLF"));
    }
    *pos = end + 2;
    Ok(())
}

/// One CRLF-terminated line after the type marker, without its terminator.
fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], ProtocolError> {
    let (l, next) = line_at(buf, *pos, false, &mut 0, &mut 0)?;
    *pos = next;
    Ok(l)
}

fn inline_line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], ProtocolError> {
    let (l, next) = line_at(buf, *pos, true, &mut 0, &mut 0)?;
    *pos = next;
    Ok(l)
}

/// The line from `start` and where the next element starts: CRLF-terminated after a type
/// marker, or an inline command ended by LF (with or without CR), as Redis accepts.
/// `searched` carries how far an earlier call looked, so a resumed search does not look
/// again.
fn line_at<'a>(
    buf: &'a [u8],
    start: usize,
    inline: bool,
    searched: &mut usize,
    examined: &mut u64,
) -> Result<(&'a [u8], usize), ProtocolError> {
    let rest = &buf[start.min(buf.len())..];
    let window = &rest[..rest.len().min(LINE_BYTES_MAX)];
    // A CRLF may straddle the last read: its CR is looked at again.
    let from = if inline {
        *searched
    } else {
        searched.saturating_sub(1)
    }
    .min(window.len());
    let end = if inline {
        window[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| (from + i, 1))
    } else {
        window[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| (from + i, 2))
    };
    *examined += end.map_or(window.len(), |(i, terminator)| i + terminator) as u64 - from as u64;
    match end {
        Some((i, terminator)) => {
            *searched = 0;
            let l = &rest[..i];
            if inline {
                Ok((l.strip_suffix(b"\r").unwrap_or(l), start + i + terminator))
            } else if l.iter().any(|&b| b == b'\r' || b == b'\n') {
                // RESP lines cannot carry CR or LF (a reply re-encoded would change); found
                // by fuzzing.
                Err(invalid("CR or LF inside a line"))
            } else {
                Ok((l, start + i + terminator))
            }
        }
        None if rest.len() >= LINE_BYTES_MAX => Err(invalid(if inline {
            "inline command too long"
        } else {
            "line too long"
        })),
        None => {
            *searched = window.len();
            Err(ProtocolError::Incomplete)
        }
    }
}

fn integer(l: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(l)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| invalid(format!("invalid integer {:?}", String::from_utf8_lossy(l))))
}

fn length(n: i64, max: usize, what: &str) -> Result<usize, ProtocolError> {
    match usize::try_from(n) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(invalid(format!("invalid {what} length {n} (limit {max})"))),
    }
}

/// Lossy, so `check` and `parse` agree on every input: invalid UTF-8 in a status line is
/// shown, not fatal.
fn text(l: &[u8]) -> Result<String, ProtocolError> {
    Ok(String::from_utf8_lossy(l).into_owned())
}

/// The bytes read from one connection and not yet taken as frames. A partial frame is
/// checked once, resuming where the last read left off, and whole frames are taken by
/// moving an offset: together each byte costs O(1) however it is trickled or pipelined.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    /// Bytes before this were taken as frames.
    start: usize,
    scan: Scan,
    examined: u64,
}

/// A buffer that held a large frame gives the memory back once it is empty.
const IDLE_CAPACITY: usize = 64 * 1024;

impl FrameBuffer {
    pub fn new() -> FrameBuffer {
        FrameBuffer::default()
    }

    /// Where to read more bytes to (`read_buf`): the bytes not taken yet, moved to the
    /// front (at most once per read, and never more than one partial frame).
    pub fn read_target(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        &mut self.buf
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        self.read_target().extend_from_slice(bytes);
    }

    /// Bytes not taken as frames yet.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn is_empty(&self) -> bool {
        self.pending().is_empty()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scan = Scan::default();
    }

    /// Bytes looked at by the completeness check since this buffer was made.
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    /// Takes one whole frame off the front if there is one.
    pub fn take_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let pending = &self.buf[self.start..];
        match self.scan.advance(pending, &mut self.examined) {
            Ok(len) => {
                let (frame, _) = parse(&pending[..len])?;
                self.start += len;
                self.scan = Scan::default();
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                    if self.buf.capacity() > IDLE_CAPACITY {
                        self.buf.shrink_to(IDLE_CAPACITY);
                    }
                }
                Ok(Some(frame))
            }
            Err(ProtocolError::Incomplete) if pending.len() > FRAME_BYTES_MAX => Err(invalid(
                format!("frame larger than {FRAME_BYTES_MAX} bytes"),
            )),
            Err(ProtocolError::Incomplete) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The frames a connection takes from `data` arriving in reads of `piece` bytes, the
/// protocol error that ends it if one does, and what stays buffered; for tests and fuzzing,
/// which check that how a stream is cut into reads changes nothing.
pub fn read_in_pieces(
    data: &[u8],
    piece: usize,
) -> (Vec<Frame>, Option<ProtocolError>, FrameBuffer) {
    let mut buf = FrameBuffer::new();
    let mut frames = Vec::new();
    for read in data.chunks(piece.max(1)) {
        buf.extend(read);
        loop {
            match buf.take_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e), buf),
            }
        }
    }
    (frames, None, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(bytes: &[u8]) -> FrameBuffer {
        let mut buf = FrameBuffer::new();
        buf.extend(bytes);
        buf
    }

    /// A client trickling a large frame one byte per read: each byte is looked at a
    /// bounded number of times. Checking from the frame's start on every read (the old
    /// code) looked at ~n²/2 bytes, 85% of a core for one slow client.
    #[test]
    fn a_trickled_frame_is_checked_once_not_rescanned_on_every_read() {
        let mut parts: Vec<Vec<u8>> = (0..5_000).map(|i| format!("k{i}").into_bytes()).collect();
        parts.push(vec![b'v'; 200_000]);
        let frame = Frame::command(&parts);
        let mut bytes = frame.to_bytes();
        let status = Frame::Simple("x".repeat(LINE_BYTES_MAX - 10));
        bytes.extend(status.to_bytes());
        bytes.extend(b"PING PONG\r\n");
        let (frames, err, buf) = read_in_pieces(&bytes, 1);
        assert_eq!(err, None);
        assert_eq!(
            frames,
            vec![frame, status, Frame::command(["PING", "PONG"])]
        );
        assert!(buf.is_empty());
        let examined = buf.bytes_examined();
        assert!(
            examined <= 2 * bytes.len() as u64,
            "{examined} bytes examined for a {} byte stream",
            bytes.len()
        );
    }

    /// Thousands of pipelined commands in one read are taken without moving the rest of
    /// the buffer each time, and checked once.
    #[test]
    fn a_pipeline_in_one_read_is_taken_frame_by_frame() {
        let one = Frame::command(["SET", "k", "v", "PX", "100"]).to_bytes();
        let bytes = one.repeat(50_000);
        let mut buf = buffer(&bytes);
        let mut n = 0;
        while let Ok(Some(f)) = buf.take_frame() {
            assert_eq!(f.to_bytes(), one);
            n += 1;
        }
        assert_eq!(n, 50_000);
        assert!(buf.is_empty());
        assert!(buf.bytes_examined() <= bytes.len() as u64);
    }

    /// A resumed check decides exactly as a check of all the bytes at once, however the
    /// stream is cut into reads.
    #[test]
    fn resuming_decides_as_checking_everything_at_once() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let alphabet = b"*$+-:\r\n0123\r\n-abc ";
        let mut samples: Vec<Vec<u8>> = sample_frames().iter().map(Frame::to_bytes).collect();
        for _ in 0..5_000 {
            let len = rng.random_range(0..60);
            samples.push(
                (0..len)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect(),
            );
        }
        for bytes in &samples {
            let whole = read_in_pieces(bytes, bytes.len());
            for chunk in [1, 2, 3, 7] {
                let cut = read_in_pieces(bytes, chunk);
                assert_eq!(
                    (&cut.0, &cut.1),
                    (&whole.0, &whole.1),
                    "{bytes:?} in {chunk}s"
                );
                if whole.1.is_none() {
                    assert_eq!(cut.2.pending(), whole.2.pending(), "{bytes:?} in {chunk}s");
                }
            }
        }
    }

    fn sample_frames() -> Vec<Frame> {
        vec![
            Frame::ok(),
            Frame::error("ERR bad"),
            Frame::Integer(-42),
            Frame::bulk("hello\r\nworld"),
            Frame::bulk(""),
            Frame::Null,
            Frame::NullArray,
            Frame::command(["SET", "k", "v", "NX", "PX", "100"]),
            Frame::Array(vec![Frame::Array(vec![Frame::Integer(1)]), Frame::Null]),
        ]
    }

    #[test]
    fn every_frame_round_trips_and_every_prefix_is_incomplete() {
        for frame in sample_frames() {
            let bytes = frame.to_bytes();
            assert_eq!(check(&bytes), Ok(bytes.len()), "{frame:?}");
            assert_eq!(parse(&bytes), Ok((frame.clone(), bytes.len())));
            for cut in 0..bytes.len() {
                assert_eq!(
                    check(&bytes[..cut]),
                    Err(ProtocolError::Incomplete),
                    "{frame:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn inline_commands_split_on_whitespace() {
        let mut buf = buffer(b"SET  k v\r\nPING\n");
        assert_eq!(
            buf.take_frame(),
            Ok(Some(Frame::command(["SET", "k", "v"])))
        );
        assert_eq!(buf.take_frame(), Ok(Some(Frame::command(["PING"]))));
        assert_eq!(buf.take_frame(), Ok(None));
    }

    /// Table of malformed inputs and the verdict each must get: never a panic, never success.
    #[test]
    fn malformed_frames_are_rejected() {
        let table: &[(&[u8], bool)] = &[
            // (bytes, true = invalid now, false = incomplete)
            (b"$99999999999\r\n", true),
            (b"$-2\r\n", true),
            (b"*-5\r\n", true),
            (b"*2000000\r\n", true),
            (b"$3\r\nabcXY", true),
            (b":12x\r\n", true),
            (b"*1\r\n\x00", true),
            (b"$3\r\nab", false),
            (b"*3\r\n$1\r\na\r\n", false),
            (
                b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
                true,
            ),
            (b"$18446744073709551616\r\n", true),
        ];
        for (bytes, invalid_now) in table {
            let got = check(bytes);
            if *invalid_now {
                assert!(
                    matches!(got, Err(ProtocolError::Invalid(_))),
                    "{bytes:?}: {got:?}"
                );
            } else {
                assert_eq!(got, Err(ProtocolError::Incomplete), "{bytes:?}");
            }
        }
    }

    #[test]
    fn an_endless_line_is_cut_off() {
        let mut buf = buffer(&[b'+'; LINE_BYTES_MAX + 10]);
        assert!(matches!(buf.take_frame(), Err(ProtocolError::Invalid(_))));
        let mut buf = buffer(&[b'a'; LINE_BYTES_MAX + 10]);
        assert!(matches!(buf.take_frame(), Err(ProtocolError::Invalid(_))));
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let alphabet = b"*$+-:\r\n0123456789-abc";
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.random_bool(0.8) {
                        alphabet[rng.random_range(0..alphabet.len())]
                    } else {
                        rng.random()
                    }
                })
                .collect();
            let mut buf = buffer(&bytes);
            // Drain as a connection would; each step must consume bytes or stop.
            for _ in 0..64 {
                match buf.take_frame() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            if let Ok(n) = check(&bytes) {
                assert_eq!(parse(&bytes).map(|(_, used)| used), Ok(n), "{bytes:?}");
            }
        }
    }
}

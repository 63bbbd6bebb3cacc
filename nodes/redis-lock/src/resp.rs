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
    let mut pos = 0;
    check_at(buf, &mut pos, 0)?;
    Ok(pos)
}

fn check_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<(), ProtocolError> {
    if depth > DEPTH_MAX {
        return Err(invalid("arrays nested too deeply"));
    }
    let Some(&marker) = buf.get(*pos) else {
        return Err(ProtocolError::Incomplete);
    };
    match marker {
        b'+' | b'-' => {
            *pos += 1;
            line(buf, pos)?;
            Ok(())
        }
        b':' => {
            *pos += 1;
            integer(line(buf, pos)?)?;
            Ok(())
        }
        b'$' => {
            *pos += 1;
            let len = integer(line(buf, pos)?)?;
            if len == -1 {
                return Ok(());
            }
            let len = length(len, BULK_BYTES_MAX, "bulk string")?;
            skip_bulk_body(buf, pos, len)
        }
        b'*' => {
            *pos += 1;
            let len = integer(line(buf, pos)?)?;
            if len == -1 {
                return Ok(());
            }
            let len = length(len, ARRAY_LEN_MAX, "array")?;
            for _ in 0..len {
                check_at(buf, pos, depth + 1)?;
            }
            Ok(())
        }
        _ if depth == 0 => {
            inline_line(buf, pos)?;
            Ok(())
        }
        other => Err(invalid(format!(
            "unexpected byte 0x{other:02x} where a frame starts"
        ))),
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
    let rest = &buf[*pos..];
    let window = &rest[..rest.len().min(LINE_BYTES_MAX)];
    match window.windows(2).position(|w| w == b"\r\n") {
        // RESP lines cannot carry CR or LF (a reply re-encoded would change); found by
        // fuzzing.
        Some(i) if rest[..i].iter().any(|&b| b == b'\r' || b == b'\n') => {
            Err(invalid("CR or LF inside a line"))
        }
        Some(i) => {
            *pos += i + 2;
            Ok(&rest[..i])
        }
        None if rest.len() >= LINE_BYTES_MAX => Err(invalid("line too long")),
        None => Err(ProtocolError::Incomplete),
    }
}

/// An inline command line, ended by LF (with or without CR), as Redis accepts.
fn inline_line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], ProtocolError> {
    let rest = &buf[*pos..];
    let window = &rest[..rest.len().min(LINE_BYTES_MAX)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => {
            *pos += i + 1;
            let l = &rest[..i];
            Ok(l.strip_suffix(b"\r").unwrap_or(l))
        }
        None if rest.len() >= LINE_BYTES_MAX => Err(invalid("inline command too long")),
        None => Err(ProtocolError::Incomplete),
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

/// Takes one whole frame off the front of `buf` if there is one.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Frame>, ProtocolError> {
    match check(buf) {
        Ok(_) => {
            let (frame, used) = parse(buf)?;
            buf.drain(..used);
            Ok(Some(frame))
        }
        Err(ProtocolError::Incomplete) if buf.len() > FRAME_BYTES_MAX => Err(invalid(format!(
            "frame larger than {FRAME_BYTES_MAX} bytes"
        ))),
        Err(ProtocolError::Incomplete) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut buf = b"SET  k v\r\nPING\n".to_vec();
        assert_eq!(
            take_frame(&mut buf),
            Ok(Some(Frame::command(["SET", "k", "v"])))
        );
        assert_eq!(take_frame(&mut buf), Ok(Some(Frame::command(["PING"]))));
        assert_eq!(take_frame(&mut buf), Ok(None));
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
        let mut buf = vec![b'+'; LINE_BYTES_MAX + 10];
        assert!(matches!(
            take_frame(&mut buf),
            Err(ProtocolError::Invalid(_))
        ));
        let mut buf = vec![b'a'; LINE_BYTES_MAX + 10];
        assert!(matches!(
            take_frame(&mut buf),
            Err(ProtocolError::Invalid(_))
        ));
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
            let mut buf = bytes.clone();
            // Drain as a connection would; each step must consume bytes or stop.
            for _ in 0..64 {
                match take_frame(&mut buf) {
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

//! Peer transport: messages over TCP, each sent as one or more length-prefixed fragments.
//! Each connection starts with a magic string; each fragment is `[len u32 LE][payload]`
//! with `len & !MORE <= FRAME_BYTES_MAX`, and the bit [`MORE`] set on every fragment of a
//! message but its last. A message may be of any size up to [`MESSAGE_BYTES_MAX`] (a Raft
//! snapshot can be far larger than one frame); anything else closes the connection
//! (garbage on the peer port never reaches the consensus core).
//! Outgoing messages go through a bounded queue per peer and are dropped, never blocked on,
//! when the peer is slow or down: consensus protocols tolerate lost messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Largest fragment accepted, in bytes.
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Size of the fragments a message is cut into; well under [`FRAME_BYTES_MAX`].
pub const FRAGMENT_BYTES: usize = 1024 * 1024;
/// Largest message reassembled from fragments. Memory, not the wire, is the bound: the
/// receiver holds a whole message before decoding it.
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024 * 1024;
/// The bit of a fragment's length word that says another fragment of the message follows.
pub const MORE: u32 = 1 << 31;
/// First bytes of every peer connection (2: fragmented messages).
pub const MAGIC: &[u8; 8] = b"FLTNODE2";
/// Messages queued per peer before new ones are dropped.
pub const QUEUE_FRAMES_MAX: usize = 8192;
/// Bytes queued per peer before new messages are dropped: a slow follower must not make a
/// leader hold many copies of a large snapshot.
pub const QUEUE_BYTES_MAX: usize = 512 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

struct Peer {
    tx: mpsc::Sender<Vec<u8>>,
    queued_bytes: Arc<AtomicUsize>,
}

/// Sends messages to peers by id; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Outbox {
    peers: Arc<HashMap<String, Peer>>,
}

impl Outbox {
    /// Starts one writer task per peer on `runtime`. `peers` maps id to `host:port`.
    pub fn start(runtime: &tokio::runtime::Handle, peers: &[(String, String)]) -> Self {
        let mut map = HashMap::new();
        for (id, addr) in peers {
            let (tx, rx) = mpsc::channel(QUEUE_FRAMES_MAX);
            let queued_bytes = Arc::new(AtomicUsize::new(0));
            runtime.spawn(writer(id.clone(), addr.clone(), rx, queued_bytes.clone()));
            map.insert(id.clone(), Peer { tx, queued_bytes });
        }
        Self {
            peers: Arc::new(map),
        }
    }

    /// Queues `message` for `to`; returns false when it was dropped (unknown peer, queue
    /// full, or message over the size limit).
    pub fn send(&self, to: &str, message: Vec<u8>) -> bool {
        if message.len() > MESSAGE_BYTES_MAX {
            tracing::warn!(
                to,
                bytes = message.len(),
                "dropping an outgoing message over the size limit"
            );
            return false;
        }
        let Some(peer) = self.peers.get(to) else {
            return false;
        };
        let bytes = message.len();
        let before = peer.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        // One message always fits in an empty queue, however large.
        if before > 0 && before + bytes > QUEUE_BYTES_MAX {
            peer.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        if peer.tx.try_send(message).is_err() {
            peer.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }
}

async fn writer(
    id: String,
    addr: String,
    mut rx: mpsc::Receiver<Vec<u8>>,
    queued_bytes: Arc<AtomicUsize>,
) {
    let dequeued = |m: &Vec<u8>| {
        queued_bytes.fetch_sub(m.len(), Ordering::Relaxed);
    };
    loop {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            _ => {
                // While the peer is unreachable, what is queued is stale: drop it.
                while let Ok(m) = rx.try_recv() {
                    dequeued(&m);
                }
                if rx.is_closed() {
                    return;
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tracing::debug!(peer = %id, %addr, "connected to peer");
        let mut w = BufWriter::with_capacity(256 * 1024, stream);
        if w.write_all(MAGIC).await.is_err() {
            continue;
        }
        loop {
            let Some(message) = rx.recv().await else {
                return;
            };
            dequeued(&message);
            if write_message(&mut w, &message).await.is_err() {
                break;
            }
            // Batch whatever else is queued into the same flush.
            let mut failed = false;
            while let Ok(message) = rx.try_recv() {
                dequeued(&message);
                if write_message(&mut w, &message).await.is_err() {
                    failed = true;
                    break;
                }
            }
            if failed || w.flush().await.is_err() {
                break;
            }
        }
        tracing::debug!(peer = %id, "peer connection lost; reconnecting");
    }
}

/// Writes `message` as fragments of at most [`FRAGMENT_BYTES`] (an empty message is one
/// empty fragment).
async fn write_message<W: AsyncWriteExt + Unpin>(w: &mut W, message: &[u8]) -> std::io::Result<()> {
    let mut chunks = message.chunks(FRAGMENT_BYTES).peekable();
    if chunks.peek().is_none() {
        return w.write_all(&0u32.to_le_bytes()).await;
    }
    while let Some(chunk) = chunks.next() {
        let more = if chunks.peek().is_some() { MORE } else { 0 };
        w.write_all(&(chunk.len() as u32 | more).to_le_bytes())
            .await?;
        w.write_all(chunk).await?;
    }
    Ok(())
}

/// Accepts peer connections forever, handing each frame to `handler`. A connection that
/// does not start with [`MAGIC`], announces an oversized frame, or carries a frame the
/// handler rejects (returns false) is closed and logged.
pub async fn serve(listener: TcpListener, handler: Arc<dyn Fn(Vec<u8>) -> bool + Send + Sync>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(reason) = read_frames(stream, handler).await {
                tracing::warn!(%remote, %reason, "closed peer connection");
            }
        });
    }
}

async fn read_frames(
    mut stream: TcpStream,
    handler: Arc<dyn Fn(Vec<u8>) -> bool + Send + Sync>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut magic = [0u8; 8];
    stream
        .read_exact(&mut magic)
        .await
        .map_err(|e| format!("no handshake: {e}"))?;
    if &magic != MAGIC {
        return Err(format!("bad handshake {magic:02x?}: not a faultline peer"));
    }
    let mut stream = tokio::io::BufReader::with_capacity(256 * 1024, stream);
    loop {
        match read_message(&mut stream).await? {
            None => return Ok(()),
            Some(message) => {
                if !handler(message) {
                    return Err("undecodable message".to_string());
                }
            }
        }
    }
}

/// Reads one message's fragments; `None` on a clean close between messages. The buffer
/// grows with the bytes that arrived, never with a length a peer merely announced.
async fn read_message<R: AsyncReadExt + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, String> {
    let mut message = Vec::new();
    let mut first = true;
    loop {
        let mut word = [0u8; 4];
        match r.read_exact(&mut word).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && first => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err("connection closed in the middle of a message".to_string())
            }
            Err(e) => return Err(e.to_string()),
        }
        first = false;
        let word = u32::from_le_bytes(word);
        let len = (word & !MORE) as usize;
        if len > FRAME_BYTES_MAX {
            return Err(format!(
                "frame of {len} bytes is over the limit of {FRAME_BYTES_MAX}"
            ));
        }
        if message.len() + len > MESSAGE_BYTES_MAX {
            return Err(format!(
                "message of over {MESSAGE_BYTES_MAX} bytes is over the limit"
            ));
        }
        let start = message.len();
        message.resize(start + len, 0);
        r.read_exact(&mut message[start..])
            .await
            .map_err(|e| format!("truncated frame: {e}"))?;
        if word & MORE == 0 {
            return Ok(Some(message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn frames_arrive_and_garbage_is_rejected() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let sink = got.clone();
        tokio::spawn(serve(
            listener,
            Arc::new(move |f: Vec<u8>| {
                let ok = f != b"bad";
                sink.lock().unwrap().push(f);
                let _ = done_tx.send(());
                ok
            }),
        ));
        // Garbage: an HTTP request is not a handshake; the server must survive it.
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1];
        assert!(
            matches!(raw.read(&mut buf).await, Ok(0) | Err(_)),
            "server closes a garbage connection"
        );
        // An oversized length after a valid handshake is refused without allocating.
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        raw.write_all(MAGIC).await.unwrap();
        raw.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        assert!(matches!(raw.read(&mut buf).await, Ok(0) | Err(_)));

        let outbox = Outbox::start(
            &tokio::runtime::Handle::current(),
            &[("p".into(), addr.clone())],
        );
        assert!(!outbox.send("nobody", b"x".to_vec()));
        assert!(outbox.send("p", b"hello".to_vec()));
        done_rx.recv().await.unwrap();
        assert_eq!(got.lock().unwrap().as_slice(), &[b"hello".to_vec()]);

        // A message larger than one frame arrives whole, and so does an empty one.
        let big: Vec<u8> = (0..FRAME_BYTES_MAX + 3).map(|i| (i % 251) as u8).collect();
        assert!(outbox.send("p", big.clone()));
        assert!(outbox.send("p", Vec::new()));
        done_rx.recv().await.unwrap();
        done_rx.recv().await.unwrap();
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 3);
        assert!(got[1] == big, "the large message arrived changed");
        assert!(got[2].is_empty());
    }

    #[tokio::test]
    async fn a_message_cut_off_between_fragments_is_not_delivered() {
        let mut wire = Vec::new();
        write_message(&mut wire, &vec![7u8; FRAGMENT_BYTES * 2 + 1])
            .await
            .unwrap();
        let mut whole = wire.as_slice();
        assert_eq!(
            read_message(&mut whole).await.unwrap().map(|m| m.len()),
            Some(FRAGMENT_BYTES * 2 + 1)
        );
        let mut cut = &wire[..FRAGMENT_BYTES + 4];
        assert!(read_message(&mut cut).await.is_err());
        let mut empty: &[u8] = &[];
        assert_eq!(read_message(&mut empty).await.unwrap(), None);
    }
}

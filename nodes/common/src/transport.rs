//! Peer transport: length-prefixed frames over TCP. Each connection starts with a magic
//! string; each frame is `[len u32 LE][payload]` with `len <= FRAME_BYTES_MAX`. Anything else
//! closes the connection (garbage on the peer port never reaches the consensus core).
//! Outgoing frames go through a bounded queue per peer and are dropped, never blocked on,
//! when the peer is slow or down: consensus protocols tolerate lost messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Largest frame accepted or sent, in bytes (a snapshot travels in one frame).
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// First bytes of every peer connection.
pub const MAGIC: &[u8; 8] = b"FLTNODE1";
/// Frames queued per peer before new ones are dropped.
pub const QUEUE_FRAMES_MAX: usize = 8192;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// Sends frames to peers by id; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Outbox {
    peers: Arc<HashMap<String, mpsc::Sender<Vec<u8>>>>,
}

impl Outbox {
    /// Starts one writer task per peer on `runtime`. `peers` maps id to `host:port`.
    pub fn start(runtime: &tokio::runtime::Handle, peers: &[(String, String)]) -> Self {
        let mut map = HashMap::new();
        for (id, addr) in peers {
            let (tx, rx) = mpsc::channel(QUEUE_FRAMES_MAX);
            runtime.spawn(writer(id.clone(), addr.clone(), rx));
            map.insert(id.clone(), tx);
        }
        Self {
            peers: Arc::new(map),
        }
    }

    /// Queues `frame` for `to`; returns false when it was dropped (unknown peer, queue full,
    /// or frame over the size limit).
    pub fn send(&self, to: &str, frame: Vec<u8>) -> bool {
        if frame.len() > FRAME_BYTES_MAX {
            tracing::warn!(
                to,
                bytes = frame.len(),
                "dropping an outgoing frame over the size limit"
            );
            return false;
        }
        match self.peers.get(to) {
            Some(tx) => tx.try_send(frame).is_ok(),
            None => false,
        }
    }
}

async fn writer(id: String, addr: String, mut rx: mpsc::Receiver<Vec<u8>>) {
    loop {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            _ => {
                // While the peer is unreachable, what is queued is stale: drop it.
                while rx.try_recv().is_ok() {}
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
            let Some(frame) = rx.recv().await else { return };
            if write_frame(&mut w, &frame).await.is_err() {
                break;
            }
            // Batch whatever else is queued into the same flush.
            let mut failed = false;
            while let Ok(frame) = rx.try_recv() {
                if write_frame(&mut w, &frame).await.is_err() {
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

async fn write_frame(w: &mut BufWriter<TcpStream>, frame: &[u8]) -> std::io::Result<()> {
    w.write_all(&(frame.len() as u32).to_le_bytes()).await?;
    w.write_all(frame).await
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
        let mut len = [0u8; 4];
        match stream.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > FRAME_BYTES_MAX {
            return Err(format!(
                "frame of {len} bytes is over the limit of {FRAME_BYTES_MAX}"
            ));
        }
        let mut frame = vec![0u8; len];
        stream
            .read_exact(&mut frame)
            .await
            .map_err(|e| format!("truncated frame: {e}"))?;
        if !handler(frame) {
            return Err("undecodable frame".to_string());
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
    }
}

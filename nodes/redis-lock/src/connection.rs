//! A TCP stream read as RESP frames and written as encoded replies; the only socket code.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::resp::{Frame, FrameBuffer, ProtocolError};

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("connection closed in the middle of a frame")]
    Truncated,
}

pub struct Connection {
    stream: TcpStream,
    buf: FrameBuffer,
}

impl Connection {
    pub fn new(stream: TcpStream) -> Connection {
        let _ = stream.set_nodelay(true);
        Connection {
            stream,
            buf: FrameBuffer::new(),
        }
    }

    /// The next whole frame, or `None` on a clean close between frames. Cancel-safe: a
    /// partly read frame stays in the buffer.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ConnError> {
        loop {
            if let Some(frame) = self.buf.take_frame()? {
                return Ok(Some(frame));
            }
            if self.stream.read_buf(self.buf.read_target()).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnError::Truncated)
                };
            }
        }
    }

    /// True when the peer closed the connection (or sent something unasked) while it sat
    /// unused, e.g. a server's idle timeout: a request sent on it now would be lost with
    /// no way to tell whether it was applied. Never waits.
    pub fn closed_while_idle(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let mut byte = [0u8; 1];
        !matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// A frame already buffered, without reading: lets a server answer a pipeline in one write.
    pub fn buffered_frame(&mut self) -> Result<Option<Frame>, ConnError> {
        Ok(self.buf.take_frame()?)
    }

    /// Waits for bytes (or the close) without parsing them; used where the peer only listens.
    pub async fn read_discard(&mut self) -> Result<usize, ConnError> {
        self.buf.clear();
        Ok(self.stream.read_buf(self.buf.read_target()).await?)
    }

    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), ConnError> {
        self.write_raw(&frame.to_bytes()).await
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }
}

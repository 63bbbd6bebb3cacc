//! The one error type of remote control: every message names the host and, for commands,
//! the command line, its exit status and its stderr.

use std::time::Duration;

/// How much of a command's stderr goes into an error message (the full text stays in the
/// error's `stderr` field).
const STDERR_IN_MESSAGE_CHARS_MAX: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The master connection to one or more hosts could not be set up.
    #[error("cannot connect over SSH to {host}: {reason}")]
    Connect { host: String, reason: String },

    /// The remote command ran and exited with a non-zero status.
    #[error("{host}: command `{command}` exited with status {status}; stderr: {}", stderr_excerpt(.stderr))]
    Failed {
        host: String,
        command: String,
        status: i32,
        stdout: String,
        stderr: String,
    },

    /// The remote command did not finish in time; it was killed on the host.
    #[error("{host}: command `{command}` timed out after {timeout:?}; stderr so far: {}", stderr_excerpt(.stderr))]
    Timeout {
        host: String,
        command: String,
        timeout: Duration,
        stderr: String,
    },

    /// SSH itself failed (connection lost, master gone): the command may or may not have run.
    #[error("{host}: command `{command}`: SSH failed: {reason}")]
    Transport {
        host: String,
        command: String,
        reason: String,
    },

    /// A local file operation around a transfer failed.
    #[error("{host}: {context}: {source}")]
    Local {
        host: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ControlError {
    /// The host the error is about (for `Connect`, the failed hosts, comma-separated).
    pub fn host(&self) -> &str {
        match self {
            ControlError::Connect { host, .. }
            | ControlError::Failed { host, .. }
            | ControlError::Timeout { host, .. }
            | ControlError::Transport { host, .. }
            | ControlError::Local { host, .. } => host,
        }
    }
}

fn stderr_excerpt(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        return "(empty)".to_string();
    }
    let count = trimmed.chars().count();
    if count <= STDERR_IN_MESSAGE_CHARS_MAX {
        return trimmed.to_string();
    }
    // Keep the end: the last lines of stderr usually say what went wrong.
    let tail: String = trimmed
        .chars()
        .skip(count - STDERR_IN_MESSAGE_CHARS_MAX)
        .collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_message_names_host_command_status_and_stderr() {
        let err = ControlError::Failed {
            host: "n2".into(),
            command: "ls /nope".into(),
            status: 2,
            stdout: String::new(),
            stderr: "ls: cannot access '/nope': No such file or directory\n".into(),
        };
        let msg = err.to_string();
        for part in ["n2", "ls /nope", "status 2", "No such file"] {
            assert!(msg.contains(part), "{msg}");
        }
    }

    #[test]
    fn long_stderr_keeps_its_end() {
        let long = format!("{}THE END", "x".repeat(10_000));
        let msg = stderr_excerpt(&long);
        assert!(msg.ends_with("THE END"));
        assert!(msg.chars().count() <= STDERR_IN_MESSAGE_CHARS_MAX + 1);
    }
}

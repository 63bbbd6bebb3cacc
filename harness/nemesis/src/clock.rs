//! Clock faults on hosts. Local test hosts share one kernel clock, so a node's clock is
//! shifted through libfaketime: the db starts its node with [`faketime_env`], and the
//! nemesis rewrites the host's timestamp file, which libfaketime re-reads on every call.
//! On VMs (`--clock-strategy system`) the host's own clock is set instead.
//!
//! A rate change in the timestamp file (`x2`) applies from process start and makes the clock
//! jump, so `skew` and `strobe` are driven from the controller as a series of small offset
//! steps; when the controller dies the steps stop and `cluster heal` resets the file.

use faultline_control::heal::{FAKETIME_FILE, FAKETIME_RESET};
use faultline_control::{ControlError, Remote};
use serde::{Deserialize, Serialize};

/// Where Debian's libfaketime lives.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// How a host's clock is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockStrategy {
    /// libfaketime in the node's process (local hosts; programs linked against glibc).
    Faketime,
    /// The host's system clock (VMs, with time synchronisation off).
    System,
}

impl std::str::FromStr for ClockStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "faketime" => Ok(ClockStrategy::Faketime),
            "system" => Ok(ClockStrategy::System),
            other => Err(format!(
                "unknown clock strategy {other:?}; expected faketime or system"
            )),
        }
    }
}

/// Environment a node needs so that its clock can be shifted with libfaketime. Monotonic
/// clocks are left alone: with them faked, tokio's timers hang.
pub fn faketime_env() -> Vec<(&'static str, String)> {
    vec![
        ("LD_PRELOAD", LIBFAKETIME.to_string()),
        ("FAKETIME_TIMESTAMP_FILE", FAKETIME_FILE.to_string()),
        ("FAKETIME_NO_CACHE", "1".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ]
}

/// libfaketime's relative-offset syntax for `offset_ms` (fractional seconds are accepted).
pub fn faketime_offset(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}s", abs / 1000, abs % 1000)
}

/// Writes the timestamp file atomically (rename), so libfaketime never reads half a line.
const WRITE_FILE_SCRIPT: &str = r#"printf '%s\n' "$2" > "$1.tmp.$$" && mv -f "$1.tmp.$$" "$1""#;

/// Steps the system clock by $1 milliseconds (GNU date; nanosecond arithmetic in awk would
/// lose precision, so whole milliseconds are added to the epoch in ms).
const SYSTEM_STEP_SCRIPT: &str = r#"now=$(date +%s%3N); t=$((now + $1)); date -s "@$((t / 1000)).$(printf %03d $((t % 1000)))" >/dev/null"#;

/// Sets the host's clock offset, relative to the true time, to `offset_ms`. For the system
/// strategy `previous_ms` (what the nemesis set last) is needed to step by the difference.
pub async fn set_offset(
    remote: &Remote,
    strategy: ClockStrategy,
    previous_ms: i64,
    offset_ms: i64,
) -> Result<(), ControlError> {
    match strategy {
        ClockStrategy::Faketime => {
            let text = if offset_ms == 0 {
                FAKETIME_RESET.to_string()
            } else {
                faketime_offset(offset_ms)
            };
            remote
                .exec(&["sh", "-c", WRITE_FILE_SCRIPT, "sh", FAKETIME_FILE, &text])
                .await
                .map(|_| ())
        }
        ClockStrategy::System => {
            let step = (offset_ms - previous_ms).to_string();
            remote
                .exec(&["sh", "-c", SYSTEM_STEP_SCRIPT, "sh", &step])
                .await
                .map(|_| ())
        }
    }
}

/// Creates the timestamp file with no offset, so a node started with [`faketime_env`] finds
/// it (libfaketime with a missing file runs the real clock, but a later write must win).
pub async fn prepare(remote: &Remote) -> Result<(), ControlError> {
    remote
        .exec(&[
            "sh",
            "-c",
            WRITE_FILE_SCRIPT,
            "sh",
            FAKETIME_FILE,
            FAKETIME_RESET,
        ])
        .await
        .map(|_| ())
}

/// Whether libfaketime is installed on the host.
pub async fn has_libfaketime(remote: &Remote) -> bool {
    remote
        .exec_status(&["test", "-e", LIBFAKETIME])
        .await
        .is_ok_and(|out| out.status == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_use_libfaketime_syntax() {
        assert_eq!(faketime_offset(0), "+0.000s");
        assert_eq!(faketime_offset(1250), "+1.250s");
        assert_eq!(faketime_offset(-60_000), "-60.000s");
        assert_eq!(faketime_offset(-5), "-0.005s");
    }

    #[test]
    fn env_keeps_monotonic_clocks_real() {
        let env = faketime_env();
        assert!(env.contains(&("FAKETIME_DONT_FAKE_MONOTONIC", "1".into())));
        assert!(env.contains(&("FAKETIME_TIMESTAMP_FILE", FAKETIME_FILE.into())));
    }
}

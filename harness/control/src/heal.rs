//! Undoing every fault faultline can leave on a host: its iptables chains, its tc qdiscs,
//! paused processes and skewed fake clocks. `faultline cluster heal` and the nemesis use these.
//!
//! Conventions the nemesis follows so that heal can find what it added:
//! - iptables rules go only into the chains [`CHAIN_INPUT`] and [`CHAIN_OUTPUT`], jumped to
//!   from INPUT and OUTPUT (made by [`ensure_chains`]); heal removes jumps and chains.
//! - root qdiscs get the handle [`TC_HANDLE`]; heal deletes root qdiscs with that handle.
//! - every daemon has a PID file (`*.pid`) under `/opt/faultline`; heal sends each SIGCONT.
//! - libfaketime timestamp files are named `*.faketime` under `/opt/faultline`
//!   ([`FAKETIME_FILE`] is the usual one); heal writes `+0` into each.

use crate::control::{Control, Remote};
use crate::error::ControlError;
use crate::local_cluster::HOST_DIR;

/// Chain for faultline's inbound rules, jumped to from INPUT.
pub const CHAIN_INPUT: &str = "FAULTLINE-INPUT";
/// Chain for faultline's outbound rules, jumped to from OUTPUT.
pub const CHAIN_OUTPUT: &str = "FAULTLINE-OUTPUT";
/// Handle of every root qdisc faultline adds (`tc qdisc add dev eth0 root handle fa1: …`).
pub const TC_HANDLE: &str = "fa1:";
/// The usual libfaketime timestamp file of a host (`FAKETIME_TIMESTAMP_FILE`).
pub const FAKETIME_FILE: &str = "/opt/faultline/clock.faketime";
/// What a reset clock file holds: no offset.
pub const FAKETIME_RESET: &str = "+0";

/// Creates faultline's chains and their jumps if missing (idempotent). Arguments: the chain
/// pairs as `chain:parent`.
const ENSURE_CHAINS_SCRIPT: &str = r#"set -e
for pair in "$@"; do
  chain=${pair%%:*}; parent=${pair##*:}
  iptables -w -S "$chain" >/dev/null 2>&1 || iptables -w -N "$chain"
  iptables -w -C "$parent" -j "$chain" 2>/dev/null || iptables -w -I "$parent" 1 -j "$chain"
done"#;

/// Everything heal does, in one round trip. $1: the per-host dir, $2: the tc handle,
/// $3: the clock reset value, then the chain pairs. Prints one line per undone fault.
const HEAL_SCRIPT: &str = r#"dir=$1; handle=$2; reset=$3; shift 3
if command -v iptables >/dev/null 2>&1; then
  for pair in "$@"; do
    chain=${pair%%:*}; parent=${pair##*:}
    i=0
    while [ $i -lt 100 ] && iptables -w -D "$parent" -j "$chain" 2>/dev/null; do i=$((i+1)); done
    if iptables -w -S "$chain" >/dev/null 2>&1; then
      n=$(iptables -w -S "$chain" | grep -c '^-A')
      iptables -w -F "$chain" && iptables -w -X "$chain" && echo "iptables $chain $n"
    fi
  done
fi
if command -v tc >/dev/null 2>&1; then
  for dev in $(ls /sys/class/net); do
    if tc qdisc show dev "$dev" 2>/dev/null | grep -q " $handle root"; then
      tc qdisc del dev "$dev" root && echo "tc $dev"
    fi
  done
fi
if [ -d "$dir" ]; then
  find "$dir" -name '*.pid' -type f | while IFS= read -r f; do
    read -r p < "$f" || true
    case $p in ''|*[!0-9]*) continue;; esac
    [ "$p" -gt 1 ] || continue
    st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)
    kill -CONT "$p" 2>/dev/null || continue
    case $st in T|t) echo "resumed $p $f";; esac
  done
  find "$dir" -name '*.faketime' -type f | while IFS= read -r f; do
    [ "$(cat -- "$f")" = "$reset" ] && continue
    printf '%s\n' "$reset" > "$f.reset.$$" && mv -f "$f.reset.$$" "$f" && echo "clock $f"
  done
fi
exit 0"#;

fn chain_pairs() -> [String; 2] {
    [
        format!("{CHAIN_INPUT}:INPUT"),
        format!("{CHAIN_OUTPUT}:OUTPUT"),
    ]
}

/// What heal undid on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealReport {
    pub host: String,
    /// Chains removed, with the number of rules each held.
    pub chains: Vec<(String, usize)>,
    /// Interfaces whose faultline qdisc was deleted.
    pub qdiscs: Vec<String>,
    /// Stopped processes resumed with SIGCONT (each from a PID file under /opt/faultline;
    /// every PID file's process gets SIGCONT, only stopped ones are listed).
    pub resumed: Vec<i32>,
    /// Clock files reset to `+0` (those that held something else).
    pub clocks: Vec<String>,
}

impl HealReport {
    fn parse(host: &str, stdout: &str) -> HealReport {
        let mut report = HealReport {
            host: host.to_string(),
            ..HealReport::default()
        };
        for line in stdout.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["iptables", chain, n] => report
                    .chains
                    .push((chain.to_string(), n.parse().unwrap_or(0))),
                ["tc", dev] => report.qdiscs.push(dev.to_string()),
                ["resumed", pid, ..] => report.resumed.extend(pid.parse::<i32>().ok()),
                ["clock", file] => report.clocks.push(file.to_string()),
                _ => {}
            }
        }
        report
    }

    /// One line for people: what was undone, or that nothing was needed.
    pub fn summary(&self) -> String {
        let rules: usize = self.chains.iter().map(|(_, n)| n).sum();
        let mut parts = Vec::new();
        if !self.chains.is_empty() {
            parts.push(format!("{rules} iptables rule(s) removed"));
        }
        if !self.qdiscs.is_empty() {
            parts.push(format!("qdisc removed on {}", self.qdiscs.join(", ")));
        }
        if !self.resumed.is_empty() {
            parts.push(format!("{} process(es) resumed", self.resumed.len()));
        }
        if !self.clocks.is_empty() {
            parts.push(format!("{} clock(s) reset", self.clocks.len()));
        }
        if parts.is_empty() {
            parts.push("nothing to heal".into());
        }
        format!("{}: {}", self.host, parts.join("; "))
    }
}

/// Creates faultline's iptables chains on the host and jumps to them (idempotent); the
/// nemesis calls it before adding rules to the chains.
pub async fn ensure_chains(remote: &Remote) -> Result<(), ControlError> {
    let pairs = chain_pairs();
    let mut argv = vec!["sh", "-c", ENSURE_CHAINS_SCRIPT, "sh"];
    argv.extend(pairs.iter().map(String::as_str));
    remote.exec(&argv).await.map(|_| ())
}

/// Undoes every fault faultline added on one host (see the module doc).
pub async fn heal_host(remote: &Remote) -> Result<HealReport, ControlError> {
    let pairs = chain_pairs();
    let mut argv = vec![
        "sh",
        "-c",
        HEAL_SCRIPT,
        "sh",
        HOST_DIR,
        TC_HANDLE,
        FAKETIME_RESET,
    ];
    argv.extend(pairs.iter().map(String::as_str));
    let out = remote.exec(&argv).await?;
    Ok(HealReport::parse(remote.name(), &out.stdout))
}

/// Heals every host in parallel; every host is tried even when one fails, and the first
/// error is returned after all have run.
pub async fn heal_all(control: &Control) -> Result<Vec<HealReport>, ControlError> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, remote) in control.remotes().iter().cloned().enumerate() {
        tasks.spawn(async move { (i, heal_host(&remote).await) });
    }
    let mut results: Vec<(usize, Result<HealReport, ControlError>)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => results.push(r),
            Err(e) => {
                let failed = ControlError::Transport {
                    host: "(unknown host)".into(),
                    command: "heal".into(),
                    reason: format!("heal task failed: {e}"),
                };
                results.push((usize::MAX, Err(failed)));
            }
        }
    }
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_parses_script_output() {
        let out = "iptables FAULTLINE-INPUT 3\niptables FAULTLINE-OUTPUT 0\ntc eth0\nresumed 42 /opt/faultline/n.pid\nclock /opt/faultline/clock.faketime\nnoise\n";
        let r = HealReport::parse("n1", out);
        assert_eq!(
            r.chains,
            vec![
                ("FAULTLINE-INPUT".into(), 3),
                ("FAULTLINE-OUTPUT".into(), 0)
            ]
        );
        assert_eq!(r.qdiscs, vec!["eth0".to_string()]);
        assert_eq!(r.resumed, vec![42]);
        assert_eq!(r.clocks.len(), 1);
        assert!(r.summary().contains("3 iptables rule(s) removed"));
        assert_eq!(HealReport::parse("n2", "").summary(), "n2: nothing to heal");
    }
}

//! Whether KVM can run our VMs. `/dev/kvm` existing is not enough: on some hosts it is a
//! nested device (e.g. PVM) on which stock kernels hang in the decompressor, printing
//! nothing. So a probe boots the image's kernel with no root file system under KVM for a few
//! seconds: a kernel that works gets as far as the root-mount panic; one that hangs prints
//! nothing.

use super::qemu::Accel;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a working kernel may take to reach the root-mount panic under KVM (it takes
/// about a second); a hung one is given up on after this.
pub const PROBE_WAIT_MAX: Duration = Duration::from_secs(10);

/// What the probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// No `/dev/kvm`, or it cannot be opened.
    NoDevice(String),
    /// QEMU ran (or was stopped after the wait); its serial console printed `console`.
    Ran {
        console: String,
        timed_out: bool,
        exit_code: Option<i32>,
    },
    /// QEMU could not be started.
    NoQemu(String),
}

/// The accelerator to use after `outcome`, and why, in words for the user.
pub fn decide(outcome: &ProbeOutcome) -> (Accel, String) {
    match outcome {
        ProbeOutcome::NoDevice(why) => (Accel::Tcg, format!("no usable /dev/kvm ({why})")),
        ProbeOutcome::NoQemu(why) => (Accel::Tcg, format!("KVM probe could not start: {why}")),
        ProbeOutcome::Ran {
            console,
            timed_out,
            exit_code,
        } => {
            let started = console.contains("Linux version");
            // The end of a boot without a root file system: the kernel ran to completion.
            let finished = console.contains("Kernel panic") || console.contains("VFS:");
            if started && finished {
                (Accel::Kvm, "KVM booted the kernel in the probe".into())
            } else if *timed_out && !started {
                (
                    Accel::Tcg,
                    format!(
                        "KVM probe: the kernel printed nothing in {}s (a nested KVM that \
                         cannot boot stock kernels); using software emulation",
                        PROBE_WAIT_MAX.as_secs()
                    ),
                )
            } else {
                let last = console.lines().last().unwrap_or("").trim();
                (
                    Accel::Tcg,
                    format!(
                        "KVM probe did not finish booting (exit {exit_code:?}, last line {last:?}); \
                         using software emulation"
                    ),
                )
            }
        }
    }
}

/// Boots `kernel` under KVM without a disk and reports what happened. Kills only the QEMU
/// it started.
pub fn probe(qemu: &Path, kernel: &Path, scratch: &Path) -> ProbeOutcome {
    if let Err(err) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return ProbeOutcome::NoDevice(err.to_string());
    }
    let console = scratch.join("kvm-probe.log");
    let _ = std::fs::remove_file(&console);
    let child = Command::new(qemu)
        .args([
            "-machine", "pc", "-accel", "kvm", "-cpu", "host", "-m", "256",
        ])
        .arg("-kernel")
        .arg(kernel)
        .args([
            "-append",
            "console=ttyS0 panic=-1 root=/dev/faultline-probe",
        ])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => return ProbeOutcome::NoQemu(format!("{}: {err}", qemu.display())),
    };
    let deadline = Instant::now() + PROBE_WAIT_MAX;
    let (timed_out, exit_code) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (false, status.code()),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break (true, None);
            }
        }
    };
    let mut text = std::fs::read_to_string(&console).unwrap_or_default();
    if let Some(mut stderr) = child.stderr.take() {
        use std::io::Read;
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        text.push_str(&err);
    }
    let _ = std::fs::remove_file(&console);
    ProbeOutcome::Ran {
        console: text,
        timed_out,
        exit_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(console: &str, timed_out: bool) -> ProbeOutcome {
        ProbeOutcome::Ran {
            console: console.into(),
            timed_out,
            exit_code: (!timed_out).then_some(0),
        }
    }

    #[test]
    fn kvm_only_when_the_kernel_ran_to_its_root_mount_panic() {
        let booted = "[    0.000000] Linux version 6.1.0-40-amd64\n...\n\
                      [    1.2] VFS: Cannot open root device \"faultline-probe\"\n\
                      [    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs";
        assert_eq!(decide(&ran(booted, false)).0, Accel::Kvm);
        // The nested PVM case: nothing at all before the probe gave up.
        let (accel, why) = decide(&ran("", true));
        assert_eq!(accel, Accel::Tcg);
        assert!(why.contains("printed nothing"), "{why}");
        // Started but stuck half-way, or QEMU refused KVM outright.
        assert_eq!(
            decide(&ran("[0.0] Linux version 6.1\n[0.5] smpboot: CPU0", true)).0,
            Accel::Tcg
        );
        let (accel, why) = decide(&ran(
            "qemu-system-x86_64: failed to initialize kvm: Operation not permitted",
            false,
        ));
        assert_eq!(accel, Accel::Tcg);
        assert!(why.contains("failed to initialize kvm"), "{why}");
        assert_eq!(
            decide(&ProbeOutcome::NoDevice("No such file".into())).0,
            Accel::Tcg
        );
        assert_eq!(decide(&ProbeOutcome::NoQemu("gone".into())).0, Accel::Tcg);
    }
}

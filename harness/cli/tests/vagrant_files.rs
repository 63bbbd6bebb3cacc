//! The Vagrant files as a user gets them: the Vagrantfile validates with Debian's vagrant
//! (offline, no box needed) and the provisioning script is shellcheck-clean.

use std::path::Path;
use std::process::Command;

fn vagrant_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vagrant")
}

#[test]
fn vagrantfile_validates_without_a_box() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("vagrant")
        .args(["validate", "--ignore-provider"])
        .current_dir(vagrant_dir())
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        // A fresh VAGRANT_HOME: validation must not depend on boxes or plugins installed here.
        .env("VAGRANT_HOME", home.path())
        .output()
        .expect("running vagrant (Debian package vagrant)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "vagrant validate failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Vagrantfile validated successfully"),
        "{stdout}"
    );
    for node in ["n1", "n5"] {
        assert!(stdout.contains(node), "five hosts are defined: {stdout}");
    }
}

#[test]
fn provisioning_script_is_shellcheck_clean() {
    let out = Command::new("shellcheck")
        .arg("provision.sh")
        .current_dir(vagrant_dir())
        .output()
        .expect("running shellcheck (Debian package shellcheck)");
    assert!(
        out.status.success(),
        "shellcheck found problems:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

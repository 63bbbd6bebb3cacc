//! The VM image: built once from Debian's packages by the recipe, cached under
//! `/var/cache/faultline/vm/<recipe-hash>/`, or brought by the user (`--vm-image DIR`).
//!
//! An image directory holds `rootfs.img` (a raw ext4 file system, the whole of `/dev/vda`),
//! `vmlinuz` and `initrd.img` (booted directly by QEMU). Its root file system must configure
//! itself from the `faultline.*` kernel arguments, as the recipe's `faultline-boot` does.

use super::recipe;
use crate::local_cluster::sys::{run, FileLock};
use anyhow::{bail, Context};
use std::fs;
use std::path::{Path, PathBuf};

/// Where built images are kept, one directory per recipe hash.
pub const CACHE_ROOT: &str = "/var/cache/faultline/vm";

/// The files of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

impl Image {
    pub fn in_dir(dir: &Path) -> Image {
        Image {
            dir: dir.to_path_buf(),
            rootfs: dir.join("rootfs.img"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
        }
    }

    /// Errors name the first file missing.
    pub fn check(&self) -> anyhow::Result<()> {
        for file in [&self.rootfs, &self.kernel, &self.initrd] {
            if !file.is_file() {
                bail!(
                    "VM image {}: {} is missing (an image directory holds rootfs.img, vmlinuz \
                     and initrd.img)",
                    self.dir.display(),
                    file.display()
                );
            }
        }
        Ok(())
    }
}

/// The cache directory of the current recipe.
pub fn cached_dir() -> PathBuf {
    Path::new(CACHE_ROOT).join(recipe::recipe_hash(&recipe::recipe_text()))
}

/// True when the current recipe's image is built.
pub fn is_cached() -> bool {
    cached_dir().join("ready").is_file()
}

/// The current recipe's image, built first when missing (about 2 minutes, from the apt
/// sources configured on this machine). A build that dies leaves only a `build-*` directory,
/// removed by the next build.
pub fn ensure_built(progress: &dyn Fn(&str)) -> anyhow::Result<Image> {
    fs::create_dir_all(CACHE_ROOT).with_context(|| format!("cannot create {CACHE_ROOT}"))?;
    let _lock = FileLock::acquire(&Path::new(CACHE_ROOT).join("lock"))?;
    let dir = cached_dir();
    let image = Image::in_dir(&dir);
    if dir.join("ready").is_file() {
        image.check()?;
        return Ok(image);
    }
    for entry in fs::read_dir(CACHE_ROOT)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("build-") {
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    let build = Path::new(CACHE_ROOT).join(format!("build-{}", std::process::id()));
    fs::create_dir_all(&build)?;
    let tree = build.join("tree");
    progress(&format!(
        "building the VM image with mmdebstrap into {} (about 2 minutes, once per recipe)",
        dir.display()
    ));
    run("mmdebstrap", &recipe::mmdebstrap_args(&tree)).context("mmdebstrap failed")?;
    let boot = tree.join("boot");
    copy_only(&boot, "vmlinuz-", &build.join("vmlinuz"))?;
    copy_only(&boot, "initrd.img-", &build.join("initrd.img"))?;
    run(
        "mkfs.ext4",
        &recipe::mkfs_args(&tree, &build.join("rootfs.img")),
    )
    .context("mkfs.ext4 -d failed (e2fsprogs 1.43 or newer is needed)")?;
    fs::remove_dir_all(&tree).with_context(|| format!("cannot remove {}", tree.display()))?;
    fs::write(build.join("recipe.txt"), recipe::recipe_text())?;
    fs::write(build.join("ready"), "")?;
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::rename(&build, &dir)
        .with_context(|| format!("cannot move {} to {}", build.display(), dir.display()))?;
    image.check()?;
    Ok(image)
}

/// Copies the one file in `dir` whose name starts with `prefix` to `to`. The recipe installs
/// one kernel; two would mean the tree is not what the recipe makes.
fn copy_only(dir: &Path, prefix: &str, to: &Path) -> anyhow::Result<()> {
    let names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(prefix))
        .collect();
    let [name] = names.as_slice() else {
        bail!(
            "expected one {prefix}* in {}, found {names:?}",
            dir.display()
        );
    };
    fs::copy(dir.join(name), to)
        .with_context(|| format!("cannot copy {name} to {}", to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_check_names_the_missing_file_and_the_one_kernel_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let image = Image::in_dir(dir.path());
        let err = image.check().unwrap_err().to_string();
        assert!(err.contains("rootfs.img is missing"), "{err}");
        let boot = dir.path().join("boot");
        fs::create_dir(&boot).unwrap();
        fs::write(boot.join("vmlinuz-6.1.0-40-amd64"), "kernel").unwrap();
        fs::write(boot.join("initrd.img-6.1.0-40-amd64"), "initrd").unwrap();
        copy_only(&boot, "vmlinuz-", &image.kernel).unwrap();
        copy_only(&boot, "initrd.img-", &image.initrd).unwrap();
        assert_eq!(fs::read_to_string(&image.kernel).unwrap(), "kernel");
        assert!(image
            .check()
            .unwrap_err()
            .to_string()
            .contains("rootfs.img"));
        fs::write(&image.rootfs, "").unwrap();
        image.check().unwrap();
        fs::write(boot.join("vmlinuz-6.1.0-9-amd64"), "other").unwrap();
        let err = copy_only(&boot, "vmlinuz-", &image.kernel).unwrap_err();
        assert!(err.to_string().contains("expected one vmlinuz-*"), "{err}");
        assert!(copy_only(&boot, "System.map-", &image.kernel).is_err());
    }
}

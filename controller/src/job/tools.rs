//! `job tools`, the init container of backup pods with command sources: copies this binary,
//! with the dynamic loader and shared libraries it runs with, into a shared volume and
//! creates the FIFOs, so that any image (without a shell, without glibc) can run the pipe
//! helper ([`super::pipe`]).

use std::path::{Path, PathBuf};

use super::error::JobError;

/// Copy this binary, with its loader and libraries, into `into`, and create `fifos`.
pub fn tools(into: &Path, fifos: &[PathBuf]) -> Result<(), JobError> {
    let me = std::env::current_exe()
        .map_err(|e| JobError::Io(format!("cannot find this program: {e}")))?;
    std::fs::create_dir_all(into).map_err(|e| JobError::Io(format!("{}: {e}", into.display())))?;
    let dest = into.join("holdfast");
    std::fs::copy(&me, &dest).map_err(|e| JobError::Io(format!("{}: {e}", dest.display())))?;
    std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| JobError::Io(format!("{}: {e}", dest.display())))?;
    copy_runtime(into)?;
    for f in fifos {
        if let Some(dir) = f.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| JobError::Io(format!("{}: {e}", dir.display())))?;
        }
        match rustix::fs::mknodat(
            rustix::fs::CWD,
            f,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o666),
            0,
        ) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::EXIST => {}
            Err(e) => return Err(JobError::Io(format!("mkfifo {}: {e}", f.display()))),
        }
        // Whatever user the command's image runs as must be able to write it (past umask).
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .map_err(|e| JobError::Io(format!("{}: {e}", f.display())))?;
    }
    Ok(())
}

/// Copy the dynamic loader (as `ld.so`) and every shared library this process has mapped
/// (into `lib/`): what `helper_command` starts the copied binary with, so that it never
/// depends on the command image's libc.
fn copy_runtime(into: &Path) -> Result<(), JobError> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| JobError::Io(format!("/proc/self/maps: {e}")))?;
    let libs = into.join("lib");
    std::fs::create_dir_all(&libs).map_err(|e| JobError::Io(format!("{}: {e}", libs.display())))?;
    let mut loader = false;
    let mut seen = std::collections::BTreeSet::new();
    for path in maps.lines().filter_map(|l| l.split_whitespace().nth(5)) {
        let file = Path::new(path);
        let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !path.starts_with('/') || !name.contains(".so") || !seen.insert(path.to_owned()) {
            continue;
        }
        let dest = if name.starts_with("ld-") {
            loader = true;
            into.join("ld.so")
        } else {
            libs.join(name)
        };
        std::fs::copy(file, &dest).map_err(|e| JobError::Io(format!("{path}: {e}")))?;
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| JobError::Io(format!("{}: {e}", dest.display())))?;
    }
    if !loader {
        return Err(JobError::Io(
            "this holdfast binary runs without a dynamic loader (a static build): command \
             sources need the image's glibc build, whose loader the helper carries"
                .into(),
        ));
    }
    Ok(())
}

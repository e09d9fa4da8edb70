//! Running one container as a local process: its own mount namespace whose root is a tmpfs
//! holding bind mounts of the host's top-level directories, a minimal `/dev`, the pod's
//! volumes at their mount paths and a termination-message file; then `chroot`, the security
//! context (user, group, capabilities, no-new-privileges, read-only root) through
//! `setpriv`, and the container's command with exactly its environment.
//!
//! Images are not pulled: the Holdfast image runs the binary under test; any other image
//! runs its `command` with the host's programs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

/// Capabilities a container gets when its security context says nothing (the container
/// runtimes' default set).
const DEFAULT_CAPS: &[&str] = &[
    "chown",
    "dac_override",
    "fsetid",
    "fowner",
    "mknod",
    "net_raw",
    "setgid",
    "setuid",
    "setfcap",
    "setpcap",
    "net_bind_service",
    "sys_chroot",
    "kill",
    "audit_write",
];

/// Termination messages are capped like the kubelet's.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// One bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

/// What the process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub uid: Option<i64>,
    pub gid: Option<i64>,
    pub no_new_privs: bool,
    /// Capabilities kept (lowercase, without `cap_`); `None` keeps all (privileged).
    pub caps: Option<Vec<String>>,
    pub read_only_root: bool,
}

/// Everything needed to start the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    /// Where the container writes its termination message.
    pub termination_path: String,
    pub security: Security,
}

/// A container the agent cannot run faithfully.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// Whether `image` is Holdfast's own (its repository's last component is `holdfast`).
pub fn is_holdfast_image(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next() == Some("holdfast")
}

/// Where the binary under test appears in a container of the holdfast image. Bound there
/// from the host, as an image would carry it: the host path may lie under a directory that
/// a volume covers in the container (a checkout under `/tmp`, an emptyDir at `/tmp`).
pub const IMAGE_BIN: &str = "/.holdfast-image/holdfast";

fn argv(c: &Container) -> Result<Vec<String>, Unsupported> {
    let image = c.image.clone().unwrap_or_default();
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone().unwrap_or_default();
    let bin = IMAGE_BIN.to_owned();
    if is_holdfast_image(&image) {
        // The image's entrypoint is the holdfast binary.
        let mut out = match command.split_first() {
            None => vec![bin],
            Some((first, rest)) if first == "holdfast" || first.ends_with("/holdfast") => {
                std::iter::once(bin).chain(rest.iter().cloned()).collect()
            }
            Some(_) => command.clone(),
        };
        out.extend(args);
        return Ok(out);
    }
    if command.is_empty() {
        return Err(Unsupported(format!(
            "container {}: image {image} is run with the host's programs, and without a \
             `command` its entrypoint is unknown",
            c.name
        )));
    }
    Ok(command.into_iter().chain(args).collect())
}

fn security(pod: &Pod, c: &Container) -> Security {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let caps = if privileged {
        None
    } else {
        let c = sc.and_then(|s| s.capabilities.as_ref());
        let lower = |v: &String| v.to_ascii_lowercase().trim_start_matches("cap_").to_owned();
        let drop: Vec<String> = c
            .and_then(|c| c.drop.as_ref())
            .map(|d| d.iter().map(lower).collect())
            .unwrap_or_default();
        let add: Vec<String> = c
            .and_then(|c| c.add.as_ref())
            .map(|a| a.iter().map(lower).collect())
            .unwrap_or_default();
        let mut set: Vec<String> = if drop.iter().any(|d| d == "all") {
            Vec::new()
        } else {
            DEFAULT_CAPS
                .iter()
                .map(|c| (*c).to_owned())
                .filter(|c| !drop.contains(c))
                .collect()
        };
        for a in add {
            if !set.contains(&a) {
                set.push(a);
            }
        }
        Some(set)
    };
    Security {
        uid: sc
            .and_then(|s| s.run_as_user)
            .or(pod_sc.and_then(|s| s.run_as_user)),
        gid: sc
            .and_then(|s| s.run_as_group)
            .or(pod_sc.and_then(|s| s.run_as_group)),
        no_new_privs: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        caps,
        read_only_root: sc.and_then(|s| s.read_only_root_filesystem) == Some(true),
    }
}

/// Plan a container from the pod spec and the host paths of the pod's volumes.
pub fn plan(
    pod: &Pod,
    c: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    env: Vec<(String, String)>,
    holdfast_bin: &Path,
) -> Result<Launch, Unsupported> {
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let host = volumes.get(&m.name).ok_or_else(|| {
            Unsupported(format!("volumeMount {} names no volume of the pod", m.name))
        })?;
        let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.split('/').any(|p| p == "..") => {
                return Err(Unsupported(format!("subPath {sub} escapes its volume")));
            }
            Some(sub) => host.join(sub),
            None => host.clone(),
        };
        if !m.mount_path.starts_with('/') {
            return Err(Unsupported(format!(
                "mountPath {} is not absolute",
                m.mount_path
            )));
        }
        mounts.push(Mount {
            host,
            target: m.mount_path.clone(),
            read_only: m.read_only == Some(true),
        });
    }
    if is_holdfast_image(c.image.as_deref().unwrap_or_default()) {
        mounts.push(Mount {
            host: holdfast_bin.to_path_buf(),
            target: IMAGE_BIN.into(),
            read_only: true,
        });
    }
    if c.volume_devices.as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(Unsupported(
            "volumeDevices (block volumes) are not emulated".into(),
        ));
    }
    Ok(Launch {
        argv: argv(c)?,
        env,
        working_dir: c.working_dir.clone(),
        mounts,
        termination_path: c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into()),
        security: security(pod, c),
    })
}

/// Single-quote for sh.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script that builds the container's root inside a new mount namespace and execs the
/// command. The environment is not in it: it reaches the process through `exec`, so no
/// Secret value is written to disk.
pub fn script(launch: &Launch, root: &Path, termination_file: &Path) -> String {
    let r = q(&root.display().to_string());
    let mut s = String::from("set -eu\n");
    s += &format!("mount -t tmpfs -o mode=755 holdfast-root {r}\n");
    // The host's top-level directories, except those the container gets its own of.
    s += &format!(
        "for d in /*; do n=\"${{d#/}}\"; case \"$n\" in dev|proc|sys) continue;; esac; \
         if [ -L \"$d\" ]; then ln -s \"$(readlink \"$d\")\" {r}/\"$n\"; \
         elif [ -d \"$d\" ]; then mkdir {r}/\"$n\"; mount --rbind \"$d\" {r}/\"$n\"; fi; done\n"
    );
    s += &format!("mkdir {r}/proc {r}/sys {r}/dev {r}/dev/shm\n");
    s += &format!("mount --rbind /proc {r}/proc\nmount --rbind /sys {r}/sys\n");
    s += &format!("mount -t tmpfs -o mode=1777 shm {r}/dev/shm\n");
    s += &format!(
        "for n in null zero full random urandom tty; do touch {r}/dev/$n; \
         mount --bind /dev/$n {r}/dev/$n; done\n"
    );
    s += &format!(
        "ln -s /proc/self/fd {r}/dev/fd; ln -s /proc/self/fd/0 {r}/dev/stdin; \
         ln -s /proc/self/fd/1 {r}/dev/stdout; ln -s /proc/self/fd/2 {r}/dev/stderr\n"
    );
    let mut binds: Vec<(String, String, bool)> = launch
        .mounts
        .iter()
        .map(|m| (m.host.display().to_string(), m.target.clone(), m.read_only))
        .collect();
    binds.push((
        termination_file.display().to_string(),
        launch.termination_path.clone(),
        false,
    ));
    // Every volume source is first bound under a staging directory of the new root, from
    // outside it: a volume mounted at a host directory's path (an emptyDir at `/tmp`) would
    // otherwise hide the sources that live below that directory on the host.
    s += &format!("mkdir {r}/.holdfast-volumes\n");
    for (i, (host, _, _)) in binds.iter().enumerate() {
        let (h, stage) = (q(host), format!("{r}/.holdfast-volumes/{i}"));
        s += &format!(
            "if [ -d {h} ]; then mkdir {stage}; else touch {stage}; fi\nmount --bind {h} {stage}\n"
        );
    }
    // The rest runs inside the new root, so that symlinks in mount paths (`/var/run` →
    // `/run`) resolve there.
    let mut inner = String::from("set -eu\n");
    // Mount points first, while everything is writable (a point under a host directory is
    // created on the host, as a kubelet creates it in the image's root).
    for (i, (_, target, _)) in binds.iter().enumerate() {
        let t = q(target);
        inner += &format!(
            "if [ -d /.holdfast-volumes/{i} ]; then mkdir -p {t}; else mkdir -p \"$(dirname {t})\"; \
             [ -e {t} ] || touch {t}; fi\n"
        );
    }
    // Volumes before the root turns read-only: a bind mount takes its source mount's
    // flags, and the sources live under host directories bound at the top.
    for (i, (_, target, ro)) in binds.iter().enumerate() {
        let t = q(target);
        inner += &format!("mount --bind /.holdfast-volumes/{i} {t}\n");
        if *ro {
            inner += &format!("mount -o remount,bind,ro {t}\n");
        }
    }
    // The staging mounts were only a way in; the container sees the volumes at their paths.
    inner += "for v in /.holdfast-volumes/*; do [ -e \"$v\" ] || continue; umount \"$v\"; \
               if [ -d \"$v\" ]; then rmdir \"$v\"; else rm -f \"$v\"; fi; done; rmdir /.holdfast-volumes\n";
    if launch.security.read_only_root {
        // Every host directory bound at the top (except those a volume covers), and the
        // root itself.
        let covered: Vec<String> = binds
            .iter()
            .filter(|(_, t, _)| t.trim_end_matches('/').matches('/').count() == 1)
            .map(|(_, t, _)| t.trim_end_matches('/').trim_start_matches('/').to_owned())
            .collect();
        let skip = ["dev", "proc", "sys"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(covered)
            .collect::<Vec<_>>()
            .join("|");
        inner += &format!(
            "for d in /*; do n=\"${{d#/}}\"; case \"$n\" in {skip}) continue;; esac; \
             if [ -d \"$d\" ] && [ ! -L \"$d\" ] && mountpoint -q \"$d\"; then \
             mount -o remount,bind,ro \"$d\"; fi; done\n"
        );
        inner += "mount -o remount,ro /\n";
    }
    let sec = &launch.security;
    let mut priv_args: Vec<String> = Vec::new();
    if let Some(gid) = sec.gid {
        priv_args.push(format!("--regid={gid}"));
    }
    if let Some(uid) = sec.uid {
        priv_args.push(format!("--reuid={uid}"));
        if sec.gid.is_none() {
            priv_args.push(format!("--regid={uid}"));
        }
        priv_args.push("--clear-groups".into());
    }
    if let Some(caps) = &sec.caps {
        let list: String = std::iter::once("-all".to_owned())
            .chain(caps.iter().map(|c| format!("+{c}")))
            .collect::<Vec<_>>()
            .join(",");
        priv_args.push(format!("--bounding-set={list}"));
        priv_args.push(format!("--inh-caps={list}"));
        if sec.uid.is_some_and(|u| u != 0) {
            priv_args.push(format!("--ambient-caps={list}"));
        }
    }
    if sec.no_new_privs {
        priv_args.push("--no-new-privs".into());
    }
    let workdir = launch.working_dir.clone().unwrap_or_else(|| "/".into());
    inner += &format!(
        "exec setpriv {} -- env -C {} -- {}\n",
        priv_args.join(" "),
        q(&workdir),
        launch
            .argv
            .iter()
            .map(|a| q(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    s += &format!("exec chroot {r} /bin/sh -c {}\n", q(&inner));
    s
}

/// Read a termination message as the kubelet does: the file, capped; with
/// `FallbackToLogsOnError`, the log's tail when the file is empty and the container failed.
pub fn termination_message(
    file: &Path,
    log: &Path,
    fallback_to_logs: bool,
    failed: bool,
) -> String {
    let read_tail = |p: &Path, limit: usize| -> String {
        let bytes = std::fs::read(p).unwrap_or_default();
        let start = bytes.len().saturating_sub(limit);
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    };
    let bytes = std::fs::read(file).unwrap_or_default();
    let capped = &bytes[..bytes.len().min(TERMINATION_MESSAGE_LIMIT)];
    let msg = String::from_utf8_lossy(capped).into_owned();
    if msg.is_empty() && fallback_to_logs && failed {
        // The kubelet's fallback: the last 80 lines, at most 2048 bytes.
        let tail = read_tail(log, 2048);
        let lines: Vec<&str> = tail.lines().collect();
        return lines[lines.len().saturating_sub(80)..].join("\n");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Capabilities, PodSecurityContext, PodSpec, SecurityContext, VolumeMount,
    };

    fn pod() -> Pod {
        Pod {
            spec: Some(PodSpec {
                security_context: Some(PodSecurityContext {
                    run_as_user: Some(1000),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn holdfast_images_run_the_binary_under_test() {
        for image in [
            "ghcr.io/holdfast-io/holdfast:0.1.0",
            "holdfast",
            "holdfast@sha256:abc",
            "localhost:5000/holdfast:dev",
        ] {
            assert!(is_holdfast_image(image), "{image}");
        }
        assert!(!is_holdfast_image("ghcr.io/holdfast-io/holdfast-helper:1"));
        assert!(!is_holdfast_image("postgres:16"));
        let c = |command: Option<Vec<&str>>, args: Vec<&str>, image: &str| Container {
            name: "c".into(),
            image: Some(image.into()),
            command: command.map(|c| c.into_iter().map(String::from).collect()),
            args: Some(args.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        let h = "ghcr.io/holdfast-io/holdfast:1";
        assert_eq!(argv(&c(None, vec!["job"], h)).unwrap(), [IMAGE_BIN, "job"]);
        assert_eq!(
            argv(&c(
                Some(vec!["/usr/local/bin/holdfast", "job"]),
                vec!["x"],
                h
            ))
            .unwrap(),
            [IMAGE_BIN, "job", "x"]
        );
        assert_eq!(
            argv(&c(Some(vec!["/tools/helper"]), vec![], h)).unwrap(),
            ["/tools/helper"],
            "other programs of the holdfast image are taken as given"
        );
        assert_eq!(
            argv(&c(Some(vec!["sh", "-c"]), vec!["echo hi"], "busybox")).unwrap(),
            ["sh", "-c", "echo hi"]
        );
        assert!(argv(&c(None, vec!["pg_dumpall"], "postgres:16")).is_err());
    }

    #[test]
    fn the_security_context_becomes_setpriv_arguments() {
        let c = Container {
            name: "c".into(),
            image: Some("holdfast".into()),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    add: Some(vec!["DAC_READ_SEARCH".into()]),
                }),
                ..Default::default()
            }),
            volume_mounts: Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/holdfast/sources/uploads".into(),
                read_only: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let volumes = BTreeMap::from([("data".to_owned(), PathBuf::from("/pv/1"))]);
        let l = plan(&pod(), &c, &volumes, vec![], Path::new("/b/holdfast")).unwrap();
        assert_eq!(
            l.security.uid,
            Some(1000),
            "from the pod's security context"
        );
        assert_eq!(
            l.security.caps.as_deref(),
            Some(&["dac_read_search".to_owned()][..])
        );
        let s = script(&l, Path::new("/state/root"), Path::new("/state/term"));
        assert!(s.contains("--reuid=1000"), "{s}");
        assert!(s.contains("--bounding-set=-all,+dac_read_search"), "{s}");
        assert!(s.contains("--ambient-caps=-all,+dac_read_search"), "{s}");
        assert!(s.contains("--no-new-privs"), "{s}");
        assert!(s.contains("exec chroot '/state/root' /bin/sh -c"), "{s}");
        assert!(
            s.contains("mount -o remount,bind,ro '\\''/holdfast/sources/uploads'\\''"),
            "{s}"
        );
        assert!(s.contains("mount -o remount,ro /"), "{s}");
        // Sources are staged from outside the new root, then bound at their paths inside.
        assert!(
            s.contains("mount --bind '/state/term' '/state/root'/.holdfast-volumes/2"),
            "{s}"
        );
        assert!(
            s.contains("mount --bind /.holdfast-volumes/2 '\\''/dev/termination-log'\\''"),
            "{s}"
        );
        // The binary under test is in the image, out of reach of any volume.
        assert!(
            s.contains("mount --bind '/b/holdfast' '/state/root'/.holdfast-volumes/1"),
            "{s}"
        );
        assert!(
            s.contains("mount -o remount,bind,ro '\\''/.holdfast-image/holdfast'\\''"),
            "{s}"
        );
        assert!(
            !s.contains("PASS"),
            "the environment is never in the script"
        );

        let default_caps = Container {
            name: "c".into(),
            image: Some("holdfast".into()),
            ..Default::default()
        };
        let l = plan(
            &Pod::default(),
            &default_caps,
            &BTreeMap::new(),
            vec![],
            Path::new("/b"),
        )
        .unwrap();
        assert_eq!(
            l.security.caps.as_ref().map(Vec::len),
            Some(DEFAULT_CAPS.len())
        );
        let privileged = Container {
            security_context: Some(SecurityContext {
                privileged: Some(true),
                ..Default::default()
            }),
            ..default_caps
        };
        let l = plan(
            &Pod::default(),
            &privileged,
            &BTreeMap::new(),
            vec![],
            Path::new("/b"),
        )
        .unwrap();
        assert_eq!(l.security.caps, None);
    }

    #[test]
    fn termination_messages_are_capped_and_fall_back_to_logs_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let (file, log) = (dir.path().join("t"), dir.path().join("log"));
        std::fs::write(&file, "x".repeat(10_000)).unwrap();
        std::fs::write(&log, "line\n".repeat(500)).unwrap();
        assert_eq!(
            termination_message(&file, &log, true, true).len(),
            TERMINATION_MESSAGE_LIMIT
        );
        std::fs::write(&file, "").unwrap();
        let fallback = termination_message(&file, &log, true, true);
        assert_eq!(fallback.lines().count(), 80);
        assert_eq!(
            termination_message(&file, &log, true, false),
            "",
            "only on error"
        );
        assert_eq!(
            termination_message(&file, &log, false, true),
            "",
            "only when asked"
        );
    }
}

//! A pod's volumes as host directories, the way the kubelet would provide them: emptyDir (a
//! directory of the pod), persistentVolumeClaim (its bound PV's hostPath or local path),
//! secret, configMap, downwardAPI and projected volumes (files written from the API, service
//! account tokens from the TokenRequest API), hostPath. Anything else is refused.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount,
    Volume,
};
use kube::Api;
use kube::api::PostParams;

use super::env::PodData;

/// Why a volume is not ready.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Will likely resolve itself (a claim not bound yet, a Secret not created yet).
    #[error("{0}")]
    NotReady(String),
    /// The volume cannot be set up as asked (a Secret item naming a key the Secret does not
    /// have): the pod waits, and a kubelet reports it as a `FailedMount` Event.
    #[error("{0}")]
    MountFailed(String),
    /// The agent cannot provide this kind of volume.
    #[error("{0}")]
    Unsupported(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VolumeError {
    let what = what.into();
    move |source| VolumeError::Io { what, source }
}

/// Write `files` (name → content) into `dir`, each with `mode`.
fn write_files(dir: &Path, files: &[(String, Vec<u8>)], mode: u32) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
    for (name, content) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent.display().to_string()))?;
        }
        std::fs::write(&path, content).map_err(io(path.display().to_string()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io(path.display().to_string()))?;
    }
    Ok(())
}

/// The files of a key-value source, honouring `items`.
fn select(
    values: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
) -> Vec<(String, Vec<u8>)> {
    match items {
        None => values.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(items) => items
            .iter()
            .filter_map(|i| values.get(&i.key).map(|v| (i.path.clone(), v.clone())))
            .collect(),
    }
}

fn config_bytes(m: &BTreeMap<String, String>) -> BTreeMap<String, Vec<u8>> {
    m.iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect()
}

fn downward(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
) -> Result<Vec<(String, Vec<u8>)>, VolumeError> {
    let mut out = Vec::new();
    for i in items {
        let Some(f) = &i.field_ref else {
            return Err(VolumeError::Unsupported(format!(
                "downwardAPI item {}: only fieldRef is emulated",
                i.path
            )));
        };
        let m = &pod.metadata;
        let value = match f.field_path.as_str() {
            "metadata.name" => m.name.clone().unwrap_or_default(),
            "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
            "metadata.uid" => m.uid.clone().unwrap_or_default(),
            "metadata.labels" | "metadata.annotations" => {
                let map = if f.field_path == "metadata.labels" {
                    m.labels.clone()
                } else {
                    m.annotations.clone()
                };
                map.unwrap_or_default()
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}\n"))
                    .collect()
            }
            other => {
                return Err(VolumeError::Unsupported(format!(
                    "downwardAPI fieldRef {other} is not emulated"
                )));
            }
        };
        out.push((i.path.clone(), value.into_bytes()));
    }
    Ok(out)
}

/// Provides a pod's volumes.
pub struct Volumes<'a> {
    pub client: &'a kube::Client,
    pub pod: &'a Pod,
    pub namespace: &'a str,
    /// The pod's own directory on the host.
    pub pod_dir: &'a Path,
    pub data: &'a PodData,
}

impl std::fmt::Debug for Volumes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volumes")
            .field("pod_dir", &self.pod_dir)
            .finish_non_exhaustive()
    }
}

impl Volumes<'_> {
    /// Every volume of the pod, by name, as a host path.
    pub async fn prepare(&self) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
        let mut out = BTreeMap::new();
        let volumes = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        for v in &volumes {
            out.insert(v.name.clone(), self.volume(v).await?);
        }
        Ok(out)
    }

    async fn volume(&self, v: &Volume) -> Result<PathBuf, VolumeError> {
        let dir = self.pod_dir.join("volumes").join(&v.name);
        if v.empty_dir.is_some() {
            std::fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
            // World-writable, as the kubelet makes it, whatever user the containers run as.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(io(dir.display().to_string()))?;
            return Ok(dir);
        }
        if let Some(c) = &v.persistent_volume_claim {
            return self.claim(&c.claim_name).await;
        }
        if let Some(h) = &v.host_path {
            let path = PathBuf::from(&h.path);
            if h.type_.as_deref() == Some("DirectoryOrCreate") {
                std::fs::create_dir_all(&path).map_err(io(h.path.clone()))?;
            }
            return Ok(path);
        }
        if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let files = match self.data.secrets.get(&name) {
                Some(values) => {
                    // As a kubelet: an item naming a key the Secret lacks fails the mount.
                    if s.optional != Some(true)
                        && let Some(missing) = s
                            .items
                            .iter()
                            .flatten()
                            .find(|i| !values.contains_key(&i.key))
                    {
                        return Err(VolumeError::MountFailed(format!(
                            "MountVolume.SetUp failed for volume {:?} : references non-existent secret key: {}",
                            v.name, missing.key
                        )));
                    }
                    select(values, s.items.as_ref())
                }
                None if s.optional == Some(true) => Vec::new(),
                None => return Err(VolumeError::NotReady(format!("secret {name:?} not found"))),
            };
            write_files(&dir, &files, s.default_mode.unwrap_or(0o644) as u32)?;
            return Ok(dir);
        }
        if let Some(m) = &v.config_map {
            let files = match self.data.config_maps.get(&m.name) {
                Some(values) => select(&config_bytes(values), m.items.as_ref()),
                None if m.optional == Some(true) => Vec::new(),
                None => {
                    return Err(VolumeError::NotReady(format!(
                        "configmap {:?} not found",
                        m.name
                    )));
                }
            };
            write_files(&dir, &files, m.default_mode.unwrap_or(0o644) as u32)?;
            return Ok(dir);
        }
        if let Some(d) = &v.downward_api {
            let files = downward(self.pod, d.items.as_deref().unwrap_or_default())?;
            write_files(&dir, &files, d.default_mode.unwrap_or(0o644) as u32)?;
            return Ok(dir);
        }
        if let Some(p) = &v.projected {
            let mut files = Vec::new();
            for src in p.sources.iter().flatten() {
                if let Some(t) = &src.service_account_token {
                    let token = self.token(t.audience.clone(), t.expiration_seconds).await?;
                    files.push((t.path.clone(), token.into_bytes()));
                } else if let Some(m) = &src.config_map {
                    match self.data.config_maps.get(&m.name) {
                        Some(values) => {
                            files.extend(select(&config_bytes(values), m.items.as_ref()))
                        }
                        None if m.optional == Some(true) => {}
                        None => {
                            return Err(VolumeError::NotReady(format!(
                                "configmap {:?} not found",
                                m.name
                            )));
                        }
                    }
                } else if let Some(s) = &src.secret {
                    match self.data.secrets.get(&s.name) {
                        Some(values) => files.extend(select(values, s.items.as_ref())),
                        None if s.optional == Some(true) => {}
                        None => {
                            return Err(VolumeError::NotReady(format!(
                                "secret {:?} not found",
                                s.name
                            )));
                        }
                    }
                } else if let Some(d) = &src.downward_api {
                    files.extend(downward(self.pod, d.items.as_deref().unwrap_or_default())?);
                } else {
                    return Err(VolumeError::Unsupported(format!(
                        "projected volume {}: a source other than serviceAccountToken, \
                         configMap, secret or downwardAPI",
                        v.name
                    )));
                }
            }
            write_files(&dir, &files, p.default_mode.unwrap_or(0o644) as u32)?;
            return Ok(dir);
        }
        Err(VolumeError::Unsupported(format!(
            "volume {}: only emptyDir, persistentVolumeClaim (hostPath or local PVs), hostPath, \
             secret, configMap, downwardAPI and projected volumes are emulated",
            v.name
        )))
    }

    async fn claim(&self, claim: &str) -> Result<PathBuf, VolumeError> {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), self.namespace);
        let pvc = pvcs
            .get_opt(claim)
            .await
            .map_err(|source| VolumeError::Api {
                what: format!("reading persistentvolumeclaim {claim}"),
                source,
            })?
            .ok_or_else(|| {
                VolumeError::NotReady(format!("persistentvolumeclaim {claim:?} not found"))
            })?;
        let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let volume = pvc.spec.as_ref().and_then(|s| s.volume_name.clone());
        let (true, Some(volume)) = (bound, volume) else {
            return Err(VolumeError::NotReady(format!(
                "persistentvolumeclaim {claim:?} is not bound yet"
            )));
        };
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv = pvs.get(&volume).await.map_err(|source| VolumeError::Api {
            what: format!("reading persistentvolume {volume}"),
            source,
        })?;
        let spec = pv.spec.unwrap_or_default();
        let path = spec
            .host_path
            .map(|h| h.path)
            .or(spec.local.map(|l| l.path))
            .ok_or_else(|| {
                VolumeError::Unsupported(format!(
                    "persistentvolume {volume} is neither hostPath nor local: the agent mounts \
                     only host directories"
                ))
            })?;
        let path = PathBuf::from(path);
        if !path.is_dir() {
            return Err(VolumeError::NotReady(format!(
                "the directory {} of persistentvolume {volume} does not exist",
                path.display()
            )));
        }
        Ok(path)
    }

    /// A token for the pod's service account, bound to the pod (TokenRequest API).
    async fn token(
        &self,
        audience: Option<String>,
        expiration: Option<i64>,
    ) -> Result<String, VolumeError> {
        let spec = self.pod.spec.as_ref();
        let sa = spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), self.namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience.into_iter().collect(),
                expiration_seconds: expiration.or(Some(3607)),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: self.pod.metadata.name.clone(),
                    uid: self.pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let out = api
            .create_token_request(&sa, &PostParams::default(), &request)
            .await
            .map_err(|source| VolumeError::Api {
                what: format!("requesting a token for serviceaccount {sa}"),
                source,
            })?;
        Ok(out.status.map(|s| s.token).unwrap_or_default())
    }
}

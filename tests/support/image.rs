//! The operator image for the e2e tests: built with `scripts/image.sh` (what `make image`
//! runs), its root filesystem exported from the OCI layout the build writes, and run with
//! chroot as a kubelet would run it (the image's user, a read-only root, mounts over it).
//! Built once per test process and shared by the `image` and `chart` tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// One image build: its work dir (context, OCI layout), manifest digest and sizes.
pub struct Build {
    pub dir: PathBuf,
    pub digest: String,
    /// Bytes of the root filesystem, and of its compressed layers.
    pub sizes: (u64, u64),
    pub output: String,
}

pub fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(REPO).join("target/image-e2e").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the image work dir");
    dir
}

/// The repository the tests tag the image with (never pushed anywhere but a test registry).
pub const TEST_IMAGE: &str = "localhost/rollguard-e2e";

/// Runs `scripts/image.sh` into `dir`.
pub fn build_image(dir: &Path) -> Build {
    let out = Command::new(Path::new(REPO).join("scripts/image.sh"))
        .env("IMAGE_BUILD_DIR", dir)
        .env("IMAGE", TEST_IMAGE)
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/image.sh");
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "scripts/image.sh failed:\n{output}");
    let digest = std::fs::read_to_string(dir.join("digest"))
        .expect("the digest file")
        .trim()
        .to_string();
    assert!(
        output.contains(&format!("digest:   {digest}")),
        "the digest is printed:\n{output}"
    );
    let sizes: Vec<u64> = std::fs::read_to_string(dir.join("size"))
        .expect("the size file")
        .split_whitespace()
        .map(|s| s.parse().expect("a byte count"))
        .collect();
    Build {
        dir: dir.to_path_buf(),
        digest,
        sizes: (sizes[0], sizes[1]),
        output,
    }
}

impl Build {
    /// A build that `scripts/image.sh` already made into `dir` (e.g. `make image-push`'s).
    pub fn load(dir: &Path) -> Build {
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.join(f).display()))
        };
        let sizes: Vec<u64> = read("size")
            .split_whitespace()
            .map(|s| s.parse().expect("a byte count"))
            .collect();
        Build {
            dir: dir.to_path_buf(),
            digest: read("digest").trim().to_string(),
            sizes: (sizes[0], sizes[1]),
            output: String::new(),
        }
    }
}

/// The image, built once per test process.
pub fn image() -> &'static Build {
    static IMAGE: OnceLock<Build> = OnceLock::new();
    IMAGE.get_or_init(|| build_image(&work_dir("a")))
}

pub fn blob(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("algorithm:hex");
    layout.join("blobs").join(alg).join(hex)
}

pub fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("reading a blob")).expect("JSON blob")
}

/// The image's manifest and config from the OCI layout.
pub fn manifest_and_config(b: &Build) -> (Value, Value) {
    let layout = b.dir.join("oci");
    let manifest = json_file(&blob(&layout, &b.digest));
    let config = json_file(&blob(
        &layout,
        manifest["config"]["digest"]
            .as_str()
            .expect("config digest"),
    ));
    (manifest, config)
}

/// Exports the image's root filesystem: its layers, in order, unpacked into a fresh dir.
pub fn export_rootfs(b: &Build, name: &str) -> PathBuf {
    let root = work_dir(name);
    let (manifest, _) = manifest_and_config(b);
    for layer in manifest["layers"].as_array().expect("layers") {
        let file = blob(
            &b.dir.join("oci"),
            layer["digest"].as_str().expect("digest"),
        );
        let st = Command::new("tar")
            .args(["-xzpf"])
            .arg(&file)
            .arg("-C")
            .arg(&root)
            .arg("--numeric-owner")
            .status()
            .expect("running tar");
        assert!(st.success(), "unpacking {}", file.display());
    }
    root
}

pub fn git_head() -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(REPO)
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The command that runs `argv` from `root` as `user`, with the root read-only, and `binds`
/// (host dir -> absolute path in the image) mounted writable over it, in a private mount
/// namespace; the process keeps the PID (unshare and chroot exec it).
pub fn chroot_command(
    root: &Path,
    user: &str,
    binds: &[(&Path, &str)],
    argv: &[String],
) -> Command {
    let mut script = String::from(
        "set -e; r=$1; shift; mount --bind \"$r\" \"$r\"; mount -o remount,ro,bind \"$r\"; ",
    );
    for (i, _) in binds.iter().enumerate() {
        script += &format!("mount --bind \"${}\" \"$r${}\"; ", 2 * i + 1, 2 * i + 2);
    }
    script += &format!(
        "shift {}; exec chroot --userspec={user} \"$r\" \"$@\"",
        2 * binds.len()
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        &script,
        "sh",
    ])
    .arg(root);
    for (host, inside) in binds {
        cmd.arg(host).arg(inside);
    }
    cmd.args(argv).env_clear();
    cmd
}

/// The image config's entrypoint, user and environment.
pub fn entrypoint_user_env(config: &Value) -> (Vec<String>, String, Vec<(String, String)>) {
    let c = &config["config"];
    let entrypoint = c["Entrypoint"]
        .as_array()
        .expect("an Entrypoint")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect();
    let user = c["User"].as_str().expect("a User").to_string();
    let env = c["Env"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|s| s.as_str()?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    (entrypoint, user, env)
}

/// Kills the chrooted operator when the test ends, however it ends.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The command that runs a pod's `container` from the image's root filesystem `root` the way
/// a kubelet would: the image's entrypoint with the container's args, the image's environment
/// and the container's (the downward API's `metadata.name`/`metadata.namespace` resolved to
/// `pod`/`namespace`), the in-cluster ServiceAccount mount (`token`, the cluster CA, the
/// namespace) and a writable `/tmp` (the chart's emptyDir), as the container's `runAsUser`
/// (else the image's user), on a read-only root. `work` holds the mounted files.
#[allow(clippy::too_many_arguments)]
pub fn container_command(
    b: &Build,
    root: &Path,
    work: &Path,
    container: &k8s_openapi::api::core::v1::Container,
    pod: &str,
    namespace: &str,
    token: &str,
    api_server: &http::Uri,
) -> Command {
    let (_, config) = manifest_and_config(b);
    let (entrypoint, image_user, image_env) = entrypoint_user_env(&config);
    let sa_mount = "/var/run/secrets/kubernetes.io/serviceaccount";
    // The mount points a kubelet mounts over (the image itself stays as built).
    std::fs::create_dir_all(root.join(&sa_mount[1..])).expect("the SA mount point");
    let sa_dir = work.join("serviceaccount");
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&sa_dir).expect("the SA dir");
    std::fs::create_dir_all(&tmp).expect("the tmp dir");
    std::fs::write(sa_dir.join("token"), token).expect("token");
    let ca = std::env::var("ROLLGUARD_CA_FILE").expect("ROLLGUARD_CA_FILE");
    std::fs::copy(ca, sa_dir.join("ca.crt")).expect("ca.crt");
    std::fs::write(sa_dir.join("namespace"), namespace).expect("namespace");
    let user = container
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .map(|u| format!("{u}:{u}"))
        .unwrap_or(image_user);
    let mut argv = entrypoint;
    argv.extend(container.args.clone().unwrap_or_default());
    let mut cmd = chroot_command(
        root,
        &user,
        &[(sa_dir.as_path(), sa_mount), (tmp.as_path(), "/tmp")],
        &argv,
    );
    cmd.envs(image_env)
        .env(
            "KUBERNETES_SERVICE_HOST",
            api_server.host().expect("a host"),
        )
        .env(
            "KUBERNETES_SERVICE_PORT",
            api_server.port_u16().unwrap_or(443).to_string(),
        );
    for e in container.env.clone().unwrap_or_default() {
        let value = match e.value_from.and_then(|f| f.field_ref).map(|f| f.field_path) {
            Some(p) if p == "metadata.name" => pod.to_string(),
            Some(p) if p == "metadata.namespace" => namespace.to_string(),
            _ => e.value.unwrap_or_default(),
        };
        cmd.env(e.name, value);
    }
    cmd
}

/// A registry (Debian's `docker-registry`, the CNCF distribution registry) on 127.0.0.1, plain
/// HTTP, storing in a temporary dir; stopped when dropped.
pub struct Registry {
    pub addr: String,
    _proc: Running,
}

impl Registry {
    pub fn start(name: &str) -> Registry {
        let dir = work_dir(&format!("registry-{name}"));
        let port = super::free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: \"{addr}\"}}\n",
                dir.join("data").display()
            ),
        )
        .expect("the registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("the registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry (Debian's docker-registry package)");
        let proc = Running(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not listen on {addr}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Registry { addr, _proc: proc }
    }
}

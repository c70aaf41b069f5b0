//! The real `edge-agent` binary, under `strace`, loads and runs a model on ONNX Runtime and
//! neither talks to the network (ONNX Runtime's telemetry uploader resolves
//! `mobile.events.data.microsoft.com` unless it is switched off before the library loads) nor
//! writes a file outside its data directory (the same telemetry keeps a device id and an event
//! database under `~/.cache/Microsoft/DeveloperTools/` and a session file in the temp dir).

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use inference::test_support::{model_bytes, ort_library, program};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::process::Command;

use crate::support::{digits, mlp_request, ADMIN};

/// The variables with which ONNX Runtime switches its telemetry off by itself (CI markers, its
/// own test harness, the opt-outs): removed, so that the agent has to do it.
const TELEMETRY_SWITCHES: [&str; 17] = [
    "CI",
    "TF_BUILD",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "CIRCLECI",
    "TRAVIS",
    "JENKINS_URL",
    "CODEBUILD_BUILD_ID",
    "BUILDKITE",
    "TEAMCITY_VERSION",
    "APPVEYOR",
    "BITBUCKET_BUILD_NUMBER",
    "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
    "ORT_RUNNING_UNIT_TESTS",
    "ORT_DISABLE_TELEMETRY",
    "ORT_TELEMETRY_DISABLED",
    "XDG_CACHE_HOME",
];

const SYSCALLS: &str = "trace=connect,sendto,sendmsg,open,openat,openat2,creat,mkdir,mkdirat,\
rename,renameat,renameat2,link,linkat,symlink,symlinkat,unlink,unlinkat,rmdir,truncate";

#[tokio::test]
async fn the_agent_on_ort_neither_phones_home_nor_writes_outside_its_data_dir() {
    let test = "the_agent_on_ort_neither_phones_home_nor_writes_outside_its_data_dir";
    let Some(library) = ort_library(test) else {
        return;
    };
    let Some(strace) = program("strace", test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (home, data, tmp) = (root.join("home"), root.join("data"), root.join("tmp"));
    for d in [&home, &tmp] {
        std::fs::create_dir(d).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = root.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nort_library = \"{}\"\n\
             [[auth.tokens]]\nname = \"ci\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
            data.display(),
            library.display(),
            edge_agent::hash_token(ADMIN)
        ),
    )
    .unwrap();
    let trace = root.join("strace.out");

    let mut command = Command::new(strace);
    command
        .args(["-f", "-qq", "-y", "-s", "4096", "-e", SYSCALLS, "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(&root)
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for var in TELEMETRY_SWITCHES {
        command.env_remove(var);
    }
    let mut strace = command.spawn().unwrap();

    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &url).await;
    let form = Form::new()
        .part("model", Part::bytes(model_bytes("digits_mlp.onnx")))
        .text("config", r#"{"backend": "ort"}"#);
    let r = client
        .put(format!("{url}/v1/models/digits/versions/1"))
        .bearer_auth(ADMIN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = client
        .post(format!("{url}/v2/models/digits/infer"))
        .bearer_auth(ADMIN)
        .json(&mlp_request(&digits(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["outputs"][0]["shape"][0], 2, "{out}");

    // A graceful stop, so that strace writes out everything and exits with the agent.
    let agent = child_of(strace.id().expect("strace runs")).expect("the traced agent's pid");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &agent.to_string()])
        .status()
        .expect("running kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), strace.wait())
        .await
        .expect("the agent stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "strace/agent exited with {status}");

    let text = std::fs::read_to_string(&trace).unwrap();
    let seen = text.lines().count();
    assert!(
        text.contains("openat(") && text.contains(data.to_str().unwrap()),
        "the trace holds no file access of the agent; is strace working?"
    );
    let violations: Vec<&str> = text
        .lines()
        .filter(|line| network_violation(line) || write_outside(line, &root, &data).is_some())
        .collect();
    assert!(
        violations.is_empty(),
        "the agent reached the network or wrote outside {} ({} of {seen} traced calls):\n{}",
        data.display(),
        violations.len(),
        violations.join("\n")
    );
    let home_files: Vec<PathBuf> = walk(&home);
    assert!(
        home_files.is_empty(),
        "files appeared in HOME: {home_files:?}"
    );
    let tmp_files: Vec<PathBuf> = walk(&tmp);
    assert!(
        tmp_files.is_empty(),
        "files appeared in TMPDIR: {tmp_files:?}"
    );
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{url}/v2/health/ready")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the agent did not become ready under strace");
}

/// The pid of the (one) child of `parent`, from `/proc/*/stat`.
fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// The text between the syscall's `(` and its result, when the line is a call to `name`.
fn call<'a>(line: &'a str, names: &[&str]) -> Option<(&'a str, &'a str)> {
    // `<pid> <name>(<args>) = <result>`, or `... <unfinished ...>`; resumed halves are skipped.
    let rest = line.split_once(' ')?.1.trim_start();
    let (name, args) = rest.split_once('(')?;
    names.contains(&name).then_some((name, args))
}

/// A connection or datagram to anything but loopback, or to a DNS server anywhere.
fn network_violation(line: &str) -> bool {
    let Some((_, args)) = call(line, &["connect", "sendto", "sendmsg"]) else {
        return false;
    };
    if !(args.contains("sa_family=AF_INET") || args.contains("sa_family=AF_INET6")) {
        return false; // AF_UNIX (nscd), AF_NETLINK, or a connected socket's send
    }
    let port = after(args, "_port=htons(").and_then(|p| {
        p.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse::<u16>()
            .ok()
    });
    let addr = after(args, "inet_addr(\"")
        .or_else(|| after(args, "inet_pton(AF_INET6, \""))
        .and_then(|a| a.split('"').next())
        .unwrap_or("");
    let loopback = addr.starts_with("127.") || addr == "::1" || addr.starts_with("::ffff:127.");
    port == Some(53) || !loopback
}

fn after<'a>(s: &'a str, marker: &str) -> Option<&'a str> {
    s.find(marker).map(|i| &s[i + marker.len()..])
}

/// The first path a file-changing call names outside `data` (resolved against the agent's
/// working directory `cwd` or the `-y` decorated directory fd), if any.
fn write_outside(line: &str, cwd: &Path, data: &Path) -> Option<PathBuf> {
    const CHANGING: [&str; 17] = [
        "creat",
        "mkdir",
        "mkdirat",
        "rename",
        "renameat",
        "renameat2",
        "link",
        "linkat",
        "symlink",
        "symlinkat",
        "unlink",
        "unlinkat",
        "rmdir",
        "truncate",
        "open",
        "openat",
        "openat2",
    ];
    let (name, args) = call(line, &CHANGING)?;
    if name.starts_with("open") {
        let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"]
            .iter()
            .any(|f| args.contains(f));
        if !writes {
            return None;
        }
    }
    paths(args, cwd)
        .into_iter()
        .find(|p| !p.starts_with(data) && !ALLOWED_DEVICES.contains(&p.to_str().unwrap_or("")))
}

/// Devices any process may open for writing.
const ALLOWED_DEVICES: [&str; 1] = ["/dev/null"];

/// Every quoted path argument, made absolute: relative to the `-y` decoration of the fd
/// before it (`AT_FDCWD</cwd>`, `5</dir>`), else to `cwd`.
fn paths(args: &str, cwd: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut rest = args;
    while let Some(open) = rest.find('"') {
        let before = &rest[..open];
        let Some(len) = rest[open + 1..].find('"') else {
            break;
        };
        let quoted = &rest[open + 1..open + 1 + len];
        rest = &rest[open + 1 + len + 1..];
        let base = before
            .strip_suffix(">, ")
            .and_then(|b| b.rfind('<').map(|i| PathBuf::from(&b[i + 1..])))
            .unwrap_or_else(|| cwd.to_path_buf());
        let joined = base.join(quoted);
        let mut clean = PathBuf::new();
        for c in joined.components() {
            match c {
                Component::ParentDir => {
                    clean.pop();
                }
                Component::CurDir => {}
                other => clean.push(other),
            }
        }
        out.push(clean);
    }
    out
}

#[test]
fn the_trace_parser_sees_dns_and_writes() {
    let cwd = Path::new("/work");
    let data = Path::new("/work/data");
    assert!(network_violation(
        r#"5865  connect(8, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0"#
    ));
    assert!(network_violation(
        r#"5865  connect(8, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.53")}, 16) = 0"#
    ));
    assert!(network_violation(
        r#"7 connect(3, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2603:1030::1", &sin6_addr), sin6_scope_id=0}, 28 <unfinished ...>"#
    ));
    assert!(!network_violation(
        r#"7 connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}, 16) = 0"#
    ));
    assert!(!network_violation(
        r#"5865  connect(8, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT"#
    ));
    assert_eq!(
        write_outside(
            r#"9 mkdir("/home/u/.cache/Microsoft", 0700) = 0"#,
            cwd,
            data
        ),
        Some(PathBuf::from("/home/u/.cache/Microsoft"))
    );
    assert_eq!(
        write_outside(
            r#"9 openat(6</home/u/.onnxruntime>, "deviceid.tmp", O_WRONLY|O_CREAT|O_EXCL, 0600) = 7"#,
            cwd,
            data
        ),
        Some(PathBuf::from("/home/u/.onnxruntime/deviceid.tmp"))
    );
    assert_eq!(
        write_outside(
            r#"9 openat(AT_FDCWD</work>, "data/../x", O_RDWR|O_CREAT, 0644) = 3"#,
            cwd,
            data
        ),
        Some(PathBuf::from("/work/x"))
    );
    assert_eq!(
        write_outside(
            r#"9 openat(AT_FDCWD</work>, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3"#,
            cwd,
            data
        ),
        None
    );
    assert_eq!(
        write_outside(
            r#"9 renameat2(AT_FDCWD</work>, "data/blobs/t", AT_FDCWD</work>, "data/blobs/x", 0) = 0"#,
            cwd,
            data
        ),
        None
    );
}

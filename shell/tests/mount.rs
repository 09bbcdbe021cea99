//! `dbos mount`: real programs (bash, cp, tar, git, sqlite3, python3) work
//! through the FUSE mount, and what they did is in the history.
//!
//! Needs /dev/fuse and fusermount3 (package fuse3). Without /dev/fuse the
//! tests are skipped loudly, except under CI (env CI set) where they fail.

mod common;

use common::{expect_code, Shell};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// True when FUSE tests can run here; panics when they must but cannot.
fn fuse_available() -> bool {
    if !Path::new("/dev/fuse").exists() {
        if std::env::var_os("CI").is_some() {
            panic!("/dev/fuse absent under CI: the mount tests must run there");
        }
        eprintln!("SKIPPED: /dev/fuse absent; dbos mount tests did not run");
        return false;
    }
    let found = Command::new("sh")
        .args(["-c", "command -v fusermount3"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "fusermount3 missing: install the fuse3 package");
    true
}

fn is_mounted(mp: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mp.display().to_string();
    text.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == want))
}

/// A running `dbos mount`.
struct Mount {
    child: Option<Child>,
    mp: PathBuf,
    log: PathBuf,
}

impl Mount {
    /// Mount the shell's database at a fresh directory with extra args.
    fn start(sh: &Shell, extra: &[&str]) -> Mount {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let mp = sh.dir.path().join(format!("mnt{n}"));
        std::fs::create_dir(&mp).unwrap();
        let mp = mp.canonicalize().unwrap();
        let log = sh.dir.path().join(format!("mount{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_dbos"))
            .env_remove("DBOS_DB")
            .env("HOME", sh.dir.path())
            .args(["--db", &sh.db, "--user", "tester", "mount"])
            .arg(&mp)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start dbos mount");
        let mut m = Mount {
            child: Some(child),
            mp,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(&m.mp) {
            if let Some(st) = m.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("dbos mount exited early ({st}): {}", m.stderr());
            }
            assert!(Instant::now() < deadline, "not mounted: {}", m.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mp.join(rel)
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// SIGTERM; the mount must exit 0 and be gone.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        signal(child.id() as i32, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "dbos mount ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit {status}: {}", self.stderr());
        assert!(!is_mounted(&self.mp), "still mounted after SIGTERM");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if is_mounted(&self.mp) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.mp)
                .status();
        }
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Run a bash script in `dir`; it must succeed; its standard output.
/// Start `python3 -c PY PATH`, which holds a file open: wait until it
/// prints the line `ready` (it got that far), then leave it waiting on its
/// standard input (closing it lets the script go on).
fn python_holding(py: &str, path: &Path, ready: &str) -> std::process::Child {
    let mut child = Command::new("python3")
        .args(["-c", py])
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = vec![0u8; ready.len() + 1];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut line)
        .unwrap();
    assert_eq!(line, format!("{ready}\n").as_bytes());
    child
}

fn bash(dir: &Path, script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{script:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn write_read_append_and_the_log_names_the_writer() {
    if !fuse_available() {
        return;
    }
    let sh = Shell::new();
    sh.ok("mkdir /etc; echo old > /etc/hosts");
    let m = Mount::start(&sh, &[]);
    assert!(m.stderr().contains("mounted main at"), "{}", m.stderr());
    assert_eq!(
        std::fs::read_to_string(m.path("etc/hosts")).unwrap(),
        "old\n"
    );
    bash(&m.mp, "echo hello > notes.txt; echo world >> notes.txt");
    assert_eq!(
        std::fs::read_to_string(m.path("notes.txt")).unwrap(),
        "hello\nworld\n"
    );
    // A writer whose pid we know.
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys; f=open(sys.argv[1],'w'); f.write('127.0.0.1 db\\n'); f.close()",
        ])
        .arg(m.path("etc/hosts"))
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    assert_eq!(sh.ok("cat /notes.txt"), "hello\nworld\n");
    assert_eq!(sh.ok("cat /etc/hosts"), "127.0.0.1 db\n");
    let log = sh.ok("log");
    assert!(
        log.contains("mount: write /notes.txt by pid ") && log.contains("(bash -euo pipefail -c"),
        "{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains(&format!("mount: write /etc/hosts by pid {pid} (")))
        .unwrap_or_else(|| panic!("no write by pid {pid} in:\n{log}"));
    assert!(line.contains("python3 -c import sys"), "{line}");
    assert!(log.contains("mount: create /notes.txt by pid"), "{log}");
    let hist = sh.ok("history /etc/hosts");
    assert!(hist.contains("mount: write /etc/hosts"), "{hist}");
    // One close, one transaction: the plain write made no empty commit.
    let writes = log.matches("mount: write /notes.txt").count();
    assert_eq!(writes, 2, "{log}");
    m.stop();
}

#[test]
fn cp_tar_and_diff_see_the_same_tree() {
    if !fuse_available() {
        return;
    }
    let sh = Shell::new();
    let host = sh.dir.path().join("src");
    std::fs::create_dir_all(host.join("a/b")).unwrap();
    std::fs::write(host.join("top.txt"), "top\n").unwrap();
    std::fs::write(host.join("a/one.txt"), "one\n").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(host.join("a/b/big.bin"), &big).unwrap();
    std::fs::write(host.join("a/b/empty"), "").unwrap();
    std::os::unix::fs::symlink("../top.txt", host.join("a/link")).unwrap();
    let m = Mount::start(&sh, &[]);
    let dir = sh.dir.path();
    bash(dir, &format!("cp -r src {}/copy", m.mp.display()));
    bash(dir, &format!("diff -r src {}/copy", m.mp.display()));
    bash(dir, "tar cf host.tar -C src .");
    bash(
        dir,
        &format!(
            "mkdir {0}/untar && tar xf host.tar -C {0}/untar && diff -r src {0}/untar",
            m.mp.display()
        ),
    );
    assert_eq!(
        bash(dir, &format!("readlink {}/untar/a/link", m.mp.display())),
        "../top.txt\n"
    );
    m.stop();
    // The content is in the database, not only in the mount.
    assert_eq!(sh.ok("cat /untar/a/one.txt"), "one\n");
    assert_eq!(sh.ok("cat /copy/top.txt"), "top\n");
}

#[test]
fn git_works_inside_the_mount() {
    if !fuse_available() {
        return;
    }
    let sh = Shell::new();
    let m = Mount::start(&sh, &[]);
    let repo = m.path("repo");
    std::fs::create_dir(&repo).unwrap();
    bash(
        &repo,
        "git init -q . && echo 'hello' > README && mkdir src && echo 'fn main() {}' > src/main.rs \
         && git add -A && git -c user.name=T -c user.email=t@example.com commit -qm 'first commit' \
         && echo more >> README && git -c user.name=T -c user.email=t@example.com commit -qam second",
    );
    let log = bash(&repo, "git log --oneline");
    assert!(
        log.contains("first commit") && log.contains("second"),
        "{log}"
    );
    assert_eq!(bash(&repo, "git status --porcelain"), "");
    assert_eq!(bash(&repo, "git show HEAD~1:README"), "hello\n");
    m.stop();
    let hist = sh.ok("history /repo/README");
    assert!(hist.contains("mount: write /repo/README"), "{hist}");
}

#[test]
fn sqlite3_creates_and_reads_a_database_in_the_mount() {
    if !fuse_available() {
        return;
    }
    let sh = Shell::new();
    let m = Mount::start(&sh, &[]);
    let mut script = String::from("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\n");
    for i in 1..=100 {
        script.push_str(&format!("INSERT INTO t(v) VALUES ('row {i}');\n"));
    }
    let db = m.path("app.sqlite");
    let mut child = Command::new("sqlite3")
        .arg(&db)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    let out = bash(
        &m.mp,
        "sqlite3 app.sqlite 'SELECT count(*), min(id), max(id) FROM t; PRAGMA integrity_check;'",
    );
    assert_eq!(out, "100|1|100\nok\n");
    m.stop();
    // The database file is committed: a new mount reads the same rows.
    let m = Mount::start(&sh, &[]);
    let out = bash(
        &m.mp,
        "sqlite3 app.sqlite \"SELECT v FROM t WHERE id = 42\"",
    );
    assert_eq!(out, "row 42\n");
    m.stop();
}

#[test]
fn posix_operations_behave() {
    if !fuse_available() {
        return;
    }
    let sh = Shell::new();
    let m = Mount::start(&sh, &[]);
    let mp = &m.mp;
    // Atomic replace: write a temporary file, rename it over the target.
    bash(
        mp,
        "echo v1 > conf && echo v2 > conf.tmp && mv conf.tmp conf && test ! -e conf.tmp",
    );
    assert_eq!(std::fs::read_to_string(m.path("conf")).unwrap(), "v2\n");
    // mkdir, rmdir (refuses a non-empty directory), unlink.
    bash(mp, "mkdir -p d/e && echo x > d/e/f");
    let out = Command::new("rmdir").arg(m.path("d/e")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    bash(
        mp,
        "rm d/e/f && rmdir d/e && test ! -e d/e && ls d | wc -l | grep -qx 0",
    );
    // Symlinks.
    bash(
        mp,
        "ln -s conf link && test \"$(readlink link)\" = conf && test \"$(cat link)\" = v2",
    );
    // chmod, and the bits are kept by a later write.
    bash(mp, "chmod 640 conf && echo v3 > conf");
    assert_eq!(bash(mp, "stat -c %a conf"), "640\n");
    // truncate: shorter, then longer (zeros).
    bash(
        mp,
        "printf 'abcdef' > t && truncate -s 3 t && truncate -s 5 t",
    );
    assert_eq!(std::fs::read(m.path("t")).unwrap(), b"abc\0\0");
    // Sparse write past the end, and fsync commits while the file is open.
    let py = "import os,sys,time\n\
              fd=os.open(sys.argv[1], os.O_CREAT|os.O_WRONLY, 0o644)\n\
              os.pwrite(fd, b'end', 1<<20)\n\
              os.fsync(fd)\n\
              print('synced', flush=True)\n\
              sys.stdin.read()\n\
              os.close(fd)\n";
    let mut child = python_holding(py, &m.path("sparse"), "synced");
    // Still open, but fsynced: the shell sees it.
    let seen = sh.ok("cat /sparse");
    assert_eq!(seen.len(), (1 << 20) + 3);
    assert!(seen.ends_with("end"));
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let data = std::fs::read(m.path("sparse")).unwrap();
    assert_eq!(data.len(), (1 << 20) + 3);
    assert!(data[..1 << 20].iter().all(|b| *b == 0));
    assert_eq!(&data[1 << 20..], b"end");
    // Hard links are not supported.
    let out = Command::new("ln")
        .arg(m.path("conf"))
        .arg(m.path("hard"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    m.stop();
    assert_eq!(sh.ok("cat /conf"), "v3\n");
    let log = sh.ok("log");
    for op in [
        "mount: rename /conf.tmp -> /conf by",
        "mount: mkdir /d by",
        "mount: rmdir /d/e by",
        "mount: unlink /d/e/f by",
        "mount: symlink /link -> conf by",
        "mount: chmod 640 /conf by",
        "mount: write /sparse by",
    ] {
        assert!(log.contains(op), "{op:?} missing from:\n{log}");
    }
}

#[test]
fn as_of_mount_is_read_only_and_shows_the_past() {
    if !fuse_available() {
        return;
    }
    let sh = Shell::new();
    sh.ok("echo first > /f");
    let t = sh.ok("log -n 1");
    let tx = t.split_whitespace().next().unwrap().to_string();
    sh.ok("echo second > /f; mkdir /later");
    let head_before = sh.ok("log -n 1");
    let m = Mount::start(&sh, &["--as-of", &tx]);
    assert!(
        m.stderr().contains(&format!(
            "mounted main at {} (read-only as of {tx})",
            m.mp.display()
        )),
        "{}",
        m.stderr()
    );
    assert_eq!(std::fs::read_to_string(m.path("f")).unwrap(), "first\n");
    assert!(!m.path("later").exists());
    for (what, r) in [
        (
            "write",
            std::fs::OpenOptions::new()
                .write(true)
                .open(m.path("f"))
                .map(|_| ()),
        ),
        ("create", std::fs::write(m.path("new"), "x")),
        ("mkdir", std::fs::create_dir(m.path("dir"))),
        ("unlink", std::fs::remove_file(m.path("f"))),
    ] {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    }
    m.stop();
    assert_eq!(sh.ok("log -n 1"), head_before);
    assert_eq!(sh.ok("cat /f"), "second\n");
}

#[test]
fn branch_mount_writes_that_branch_only() {
    if !fuse_available() {
        return;
    }
    let sh = Shell::new();
    sh.ok("echo base > /f; branch exp");
    let m = Mount::start(&sh, &["--branch", "exp"]);
    assert!(m.stderr().contains("mounted exp at"), "{}", m.stderr());
    bash(&m.mp, "echo on-exp > f && echo new > g");
    m.stop();
    assert_eq!(sh.ok_on("exp", "cat /f"), "on-exp\n");
    assert_eq!(sh.ok_on("exp", "cat /g"), "new\n");
    assert_eq!(sh.ok("cat /f"), "base\n");
    expect_code(sh.run("cat /g"), 1, "cat /g on main");
    let log = sh.ok_on("exp", "log");
    assert!(log.contains("mount: write /f by"), "{log}");
}

#[test]
fn sigterm_commits_a_file_still_open() {
    if !fuse_available() {
        return;
    }
    let sh = Shell::new();
    let m = Mount::start(&sh, &[]);
    let py = "import os,sys\n\
              fd=os.open(sys.argv[1], os.O_CREAT|os.O_WRONLY, 0o644)\n\
              os.write(fd, b'pending data\\n')\n\
              print('written', flush=True)\n\
              sys.stdin.read()\n";
    let mut child = python_holding(py, &m.path("open.txt"), "written");
    m.stop();
    assert_eq!(sh.ok("cat /open.txt"), "pending data\n");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kill_9_loses_nothing_committed() {
    if !fuse_available() {
        return;
    }
    let sh = Shell::new();
    let mut m = Mount::start(&sh, &[]);
    bash(&m.mp, "mkdir keep && echo kept > keep/file");
    signal(m.pid(), libc::SIGKILL);
    let _ = m.child.take().unwrap().wait();
    assert_eq!(sh.ok("cat /keep/file"), "kept\n");
    let st = Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(&m.mp)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(!is_mounted(&m.mp));
    let log = sh.ok("history /keep/file");
    assert!(log.contains("mount: write /keep/file by"), "{log}");
}

#[test]
fn bad_mount_points_are_refused_with_the_reason() {
    let sh = Shell::new();
    let missing = sh.dir.path().join("nope");
    let r = sh.args(&["mount", missing.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(
        r.err.contains("nope") && r.err.contains("does not exist"),
        "{}",
        r.err
    );
    let file = sh.dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let r = sh.args(&["mount", file.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("not a directory"), "{}", r.err);
    let full = sh.dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), "x").unwrap();
    let r = sh.args(&["mount", full.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("not empty"), "{}", r.err);
    let empty = sh.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = sh.args(&["mount", empty.to_str().unwrap(), "--branch", "nosuch"]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("no such branch"), "{}", r.err);
}

#[test]
fn an_unlinked_open_file_stays_readable_and_is_not_resurrected() {
    if !fuse_available() {
        return;
    }
    let sh = Shell::new();
    sh.ok("echo committed > /kept");
    let m = Mount::start(&sh, &[]);
    let py = "import os,sys\n\
              p=sys.argv[1]\n\
              fd=os.open(p+'/gone', os.O_CREAT|os.O_RDWR, 0o644)\n\
              os.write(fd, b'scratch')\n\
              os.unlink(p+'/gone')\n\
              assert os.pread(fd, 100, 0) == b'scratch'\n\
              os.write(fd, b' more')\n\
              os.close(fd)\n\
              r=os.open(p+'/kept', os.O_RDONLY)\n\
              os.unlink(p+'/kept')\n\
              assert os.read(r, 100) == b'committed\\n', 'read after unlink'\n\
              os.close(r)\n";
    let out = Command::new("python3")
        .args(["-c", py])
        .arg(&m.mp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!m.path("gone").exists());
    // Another writer's change shows through the mount once the 1 s
    // attribute cache expires.
    sh.ok("echo from-shell > /shell.txt");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        std::fs::read_to_string(m.path("shell.txt")).unwrap(),
        "from-shell\n"
    );
    m.stop();
    expect_code(sh.run("cat /gone"), 1, "cat /gone");
    expect_code(sh.run("cat /kept"), 1, "cat /kept");
    let log = sh.ok("log");
    assert!(!log.contains("mount: write /gone"), "{log}");
}

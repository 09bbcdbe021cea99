//! Black-box tests of the file tree commands (rmdir, mv, cp, ln, chmod,
//! stat, tree, find) and the text filters (grep, head, tail, wc, sort):
//! output, exit statuses, error messages, and that a failed command leaves
//! the state unchanged.

mod common;

use common::{Run, Shell};

/// A fresh database, with checks stricter than `common::Shell`'s: `ok`
/// wants an empty stderr, `fails` a named error and an unchanged state.
struct Db {
    sh: Shell,
}

impl Db {
    fn new() -> Db {
        Db { sh: Shell::new() }
    }

    /// A database where `setup` has been run (and must have succeeded).
    fn with(setup: &str) -> Db {
        let db = Db::new();
        db.ok(setup);
        db
    }

    fn run(&self, script: &str) -> Run {
        self.sh.run(script)
    }

    /// Run a script that must succeed silently on stderr; its stdout.
    fn ok(&self, script: &str) -> String {
        let r = self.run(script);
        assert_eq!(
            r.code, 0,
            "{script:?} failed: stdout {:?} stderr {:?}",
            r.out, r.err
        );
        assert_eq!(r.err, "", "{script:?} wrote to stderr");
        r.out
    }

    /// Run a script that must fail with `code` and a stderr line starting
    /// with `dbos: CMD: ` and containing `msg`; also checks that the state
    /// (its log and its tree listing) is unchanged.
    fn fails(&self, script: &str, code: i32, cmd: &str, msg: &str) -> Run {
        let before = self.snapshot();
        let r = self.run(script);
        assert_eq!(
            r.code, code,
            "{script:?}: stdout {:?} stderr {:?}",
            r.out, r.err
        );
        let prefix = format!("dbos: {cmd}: ");
        assert!(
            r.err
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(msg)),
            "{script:?}: expected {prefix}...{msg}... on stderr, got {:?}",
            r.err
        );
        assert_eq!(self.snapshot(), before, "{script:?} changed the state");
        r
    }

    /// The log, every path of the tree and what `stat` says about each.
    fn snapshot(&self) -> String {
        let listing = self.ok("log; find /");
        let paths: Vec<&str> = listing.lines().filter(|l| l.starts_with('/')).collect();
        let stats = self.ok(&format!("stat {}", paths.join(" ")));
        format!("{listing}\n{stats}")
    }
}

fn lines(s: &[&str]) -> String {
    s.iter().map(|l| format!("{l}\n")).collect()
}

// ----- rmdir -----------------------------------------------------------------

#[test]
fn rmdir_removes_empty_directories() {
    let db = Db::with("mkdir -p /a /b/c");
    db.ok("rmdir /a /b/c");
    assert_eq!(db.ok("ls /"), "b\n");
    db.ok("mkdir -p /p/q/r; rmdir -p /p/q/r");
    assert_eq!(db.ok("ls /"), "b\n");
    db.ok("cd /b; mkdir x; rmdir x/");
    assert_eq!(db.ok("ls /b"), "");
}

#[test]
fn rmdir_errors() {
    let db = Db::with("mkdir -p /d/sub /e; echo hi > /f");
    db.fails("rmdir /d", 1, "rmdir", "/d: directory not empty");
    db.fails("rmdir /f", 1, "rmdir", "/f: not a directory");
    db.fails(
        "rmdir /nope",
        1,
        "rmdir",
        "/nope: no such file or directory",
    );
    // Atomic: /e is not removed when /d fails.
    db.fails("rmdir /e /d", 1, "rmdir", "directory not empty");
    db.fails("rmdir", 2, "rmdir", "missing operand");
    db.fails("rmdir -z /e", 2, "rmdir", "unexpected argument");
    assert!(db.ok("rmdir --help").contains("Usage: rmdir"));
}

// ----- mv --------------------------------------------------------------------

#[test]
fn mv_renames_and_moves_into_directories() {
    let db = Db::with("mkdir /d; echo one > /f; echo two > /g");
    db.ok("mv /f /h");
    assert_eq!(db.ok("ls /"), lines(&["d", "g", "h"]));
    assert_eq!(db.ok("cat /h"), "one\n");
    db.ok("mv /h /d");
    assert_eq!(db.ok("cat /d/h"), "one\n");
    // Replace a file.
    db.ok("mv /g /d/h");
    assert_eq!(db.ok("cat /d/h"), "two\n");
    assert_eq!(db.ok("ls /"), "d\n");
    // Several sources into a directory, relative paths.
    db.ok("mkdir /e; cd /d; echo x > a; echo y > b; mv a b ../e");
    assert_eq!(db.ok("ls /e"), lines(&["a", "b"]));
    // A directory moves with its content; a link to a directory is a directory.
    db.ok("ln -s /e /le; mv /d /le");
    assert_eq!(
        db.ok("find /e"),
        lines(&["/e", "/e/a", "/e/b", "/e/d", "/e/d/h"])
    );
}

#[test]
fn mv_errors_leave_state_unchanged() {
    let db = Db::with("mkdir -p /d/sub; echo one > /f; echo two > /g");
    db.fails("mv", 2, "mv", "missing file operand");
    db.fails(
        "mv /f",
        2,
        "mv",
        "missing destination file operand after '/f'",
    );
    db.fails("mv /nope /x", 1, "mv", "/nope: no such file or directory");
    db.fails("mv /f /g /h", 1, "mv", "target '/h' is not a directory");
    db.fails("mv /d /d/sub", 1, "mv", "into its own subdirectory");
    db.fails(
        "mv /f /nodir/x",
        1,
        "mv",
        "/nodir: no such file or directory",
    );
    db.fails("mv /d/sub /f", 1, "mv", "/f: not a directory");
    db.fails("mv /f /", 1, "mv", "same file");
    // Atomic: /f is not moved when the second source is missing.
    db.fails(
        "mv /f /nope /d",
        1,
        "mv",
        "/nope: no such file or directory",
    );
    assert_eq!(db.ok("cat /f"), "one\n");
}

// ----- cp --------------------------------------------------------------------

#[test]
fn cp_copies_files_and_directories() {
    let db = Db::with("mkdir -p /d/sub; echo one > /f; echo deep > /d/sub/x");
    db.ok("cp /f /g");
    assert_eq!(db.ok("cat /g"), "one\n");
    assert_eq!(db.ok("cat /f"), "one\n");
    db.ok("cp /f /g /d");
    assert_eq!(db.ok("ls /d"), lines(&["f", "g", "sub"]));
    // Overwrite, then check the source is untouched by later edits.
    db.ok("echo new > /g; cp /g /f; echo newer > /g");
    assert_eq!(db.ok("cat /f"), "new\n");
    db.ok("cp -r /d /e");
    assert_eq!(
        db.ok("find /e"),
        lines(&["/e", "/e/f", "/e/g", "/e/sub", "/e/sub/x"])
    );
    // Into an existing directory, then merging into the copy made there.
    db.ok("cp -R /d /e");
    db.ok("echo more > /d/sub/y; cp -r /d /e");
    assert_eq!(db.ok("ls /e/d/sub"), lines(&["x", "y"]));
    assert_eq!(db.ok("cat /e/d/sub/y"), "more\n");
    // Without -r a link is followed; with -r it is copied as a link.
    db.ok("ln -s /f /l; cp /l /copy; cp -r /l /lcopy");
    assert!(db.ok("stat /copy").contains("Type: file"));
    assert!(db.ok("stat /lcopy").contains("File: /lcopy -> /f"));
}

#[test]
fn cp_errors_leave_state_unchanged() {
    let db = Db::with("mkdir -p /d/sub; echo one > /f; echo two > /g");
    db.fails(
        "cp /d /x",
        1,
        "cp",
        "-r not specified; omitting directory '/d'",
    );
    db.fails("cp", 2, "cp", "missing file operand");
    db.fails("cp /f", 2, "cp", "missing destination file operand");
    db.fails("cp /nope /x", 1, "cp", "/nope: no such file or directory");
    db.fails("cp /f /f", 1, "cp", "same file");
    db.fails("cp -r /d /d/sub", 1, "cp", "into itself");
    db.fails("cp /f /g /x", 1, "cp", "target '/x' is not a directory");
    db.fails("cp -r /d/sub /f", 1, "cp", "cannot overwrite non-directory");
    // Atomic: /f is not copied when /d is refused.
    db.fails("cp /f /d /d/sub", 1, "cp", "omitting directory");
}

// ----- ln --------------------------------------------------------------------

#[test]
fn ln_makes_symbolic_links() {
    let db = Db::with("mkdir /d /e; echo one > /e/f");
    db.ok("ln -s /e/f /l");
    assert_eq!(db.ok("cat /l"), "one\n");
    assert!(db.ok("ls -l /").contains("l -> /e/f"));
    // Into a directory, named after the target; relative targets stay relative.
    db.ok("ln -s ../e/f /d");
    assert!(db.ok("ls -l /d").contains("f -> ../e/f"));
    assert_eq!(db.ok("cat /d/f"), "one\n");
    // One operand: in the working directory.
    db.ok("cd /e; ln -s /l");
    assert!(db.ok("stat /e/l").contains("File: /e/l -> /l"));
    // Dangling links are allowed; -f replaces.
    db.ok("ln -s /nowhere /dangling");
    db.ok("ln -sf /e/f /dangling");
    assert_eq!(db.ok("cat /dangling"), "one\n");
}

#[test]
fn ln_errors() {
    let db = Db::with("mkdir /d; echo one > /f; ln -s /f /l");
    db.fails("ln /f /g", 2, "ln", "hard links are not supported");
    db.fails("ln -s", 2, "ln", "missing file operand");
    db.fails("ln -s /f /l", 1, "ln", "/l: already exists");
    db.fails("ln -s /f /nodir/l", 1, "ln", "no such file or directory");
    db.fails("ln -s / /d", 1, "ln", "give LINKNAME");
    db.fails("ln -sf /f /", 1, "ln", "same file");
}

// ----- chmod -----------------------------------------------------------------

fn mode_of(db: &Db, path: &str) -> String {
    let out = db.ok(&format!("stat {path}"));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Mode: "))
        .expect("a Mode line")
        .to_string()
}

#[test]
fn chmod_octal_and_symbolic() {
    let db = Db::with("mkdir /d; echo x > /f; ln -s /f /l");
    db.ok("chmod 600 /f");
    assert_eq!(mode_of(&db, "/f"), "0600 (-rw-------)");
    db.ok("chmod 0750 /d");
    assert_eq!(mode_of(&db, "/d"), "0750 (drwxr-x---)");
    let cases = [
        ("644", "u+x", "0744 (-rwxr--r--)"),
        ("777", "go-w", "0755 (-rwxr-xr-x)"),
        ("777", "a=r", "0444 (-r--r--r--)"),
        ("644", "+x", "0755 (-rwxr-xr-x)"),
        ("640", "o=g", "0644 (-rw-r--r--)"),
        ("700", "g=u,o=", "0770 (-rwxrwx---)"),
        ("644", "a+X", "0644 (-rw-r--r--)"),
        ("744", "a+X", "0755 (-rwxr-xr-x)"),
        ("644", "-w", "0444 (-r--r--r--)"),
        ("644", "u+s,+t", "5644 (-rw-r--r--)"),
        ("755", "ug=rw", "0665 (-rw-rw-r-x)"),
    ];
    for (start, spec, want) in cases {
        db.ok(&format!("chmod {start} /f; chmod {spec} /f"));
        assert_eq!(mode_of(&db, "/f"), want, "chmod {spec} on {start}");
    }
    // X on a directory adds x; links are followed.
    db.ok("chmod 600 /d; chmod a+X /d");
    assert_eq!(mode_of(&db, "/d"), "0711 (drwx--x--x)");
    db.ok("chmod 640 /l");
    assert_eq!(mode_of(&db, "/f"), "0640 (-rw-r-----)");
    // -R changes everything below.
    db.ok("mkdir -p /r/s; echo y > /r/s/g; chmod -R go= /r");
    assert_eq!(mode_of(&db, "/r"), "0700 (drwx------)");
    assert_eq!(mode_of(&db, "/r/s/g"), "0600 (-rw-------)");
}

#[test]
fn chmod_errors_leave_state_unchanged() {
    let db = Db::with("echo x > /f; echo y > /g");
    db.fails("chmod", 2, "chmod", "missing operand");
    db.fails("chmod 644", 2, "chmod", "missing operand after '644'");
    db.fails("chmod 999 /f", 2, "chmod", "invalid mode");
    db.fails("chmod u+q /f", 2, "chmod", "invalid mode");
    db.fails("chmod u /f", 2, "chmod", "invalid mode");
    db.fails(
        "chmod 600 /nope",
        1,
        "chmod",
        "/nope: no such file or directory",
    );
    // Atomic: /f keeps its mode when /nope fails.
    db.fails("chmod 600 /f /nope /g", 1, "chmod", "/nope");
    assert_eq!(mode_of(&db, "/f"), "0644 (-rw-r--r--)");
}

// ----- stat ------------------------------------------------------------------

#[test]
fn stat_text_and_json() {
    let db = Db::with("mkdir /d; echo hello > /f; ln -s /f /l");
    let out = db.ok("stat /f");
    for want in [
        "  File: /f\n",
        "  Type: file\n",
        "  Size: 6\n",
        "  Mode: 0644 (-rw-r--r--)\n",
        "   Uid: ",
        "   Gid: ",
        "Modify: ",
        "Change: T",
        "by tester: mkdir /d; echo hello > /f; ln -s /f /l",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    assert!(db.ok("stat /d").contains("Type: dir"));
    let l = db.ok("stat /l");
    assert!(
        l.contains("File: /l -> /f") && l.contains("Type: symlink"),
        "{l}"
    );
    assert!(db.ok("stat -L /l").contains("Type: file"));
    // Uncommitted changes are shown as pending.
    assert!(db
        .ok("echo more >> /f; stat /f")
        .contains("Change: pending"));

    let j: serde_json::Value = serde_json::from_str(&db.ok("stat --format json /l")).expect("json");
    assert_eq!(j["type"], "symlink");
    assert_eq!(j["target"], "/f");
    assert_eq!(j["mode"], "0777");
    assert_eq!(j["pending"], false);
    assert!(j["last_change"]["id"].is_u64());
    let j: serde_json::Value =
        serde_json::from_str(&db.ok("stat --format json /f /d")).expect("json");
    assert_eq!(j.as_array().map(Vec::len), Some(2));
    assert_eq!(j[0]["size"], 11);
    assert_eq!(j[1]["type"], "dir");
}

#[test]
fn stat_as_of_and_errors() {
    let db = Db::with("echo v1 > /f");
    let log = db.ok("log -n 1");
    let first = log
        .split_whitespace()
        .next()
        .expect("a transaction")
        .to_string();
    db.ok("echo version2 > /f");
    let out = db.ok(&format!("stat --as-of {first} /f"));
    assert!(out.contains("Size: 3"), "{out}");
    assert!(out.contains(&format!("Change: {first} ")), "{out}");
    assert!(db.ok("stat /f").contains("Size: 9"));
    let r = db.fails(
        "stat /nope /f",
        1,
        "stat",
        "/nope: no such file or directory",
    );
    assert!(r.out.contains("File: /f"), "other operands are still shown");
    db.fails("stat", 2, "stat", "missing operand");
    db.fails("stat --as-of T999999 /f", 1, "stat", "");
    db.fails("stat --format yaml /f", 2, "stat", "invalid value");
}

// ----- tree ------------------------------------------------------------------

#[test]
fn tree_draws_the_tree() {
    let db = Db::with(
        "mkdir -p /a/b/c /e; echo 1 > /a/f; echo 2 > /a/b/g; ln -s /a/f /a/l; \
         ln -s ../a /e; echo h > /a/.hidden",
    );
    let want = "/\n\
├── a/\n\
│   ├── b/\n\
│   │   ├── c/\n\
│   │   └── g\n\
│   ├── f\n\
│   └── l -> /a/f\n\
└── e/\n\
\x20   └── a -> ../a\n\
\n\
4 directories, 4 files\n";
    assert_eq!(db.ok("tree /"), want);
    assert_eq!(db.ok("cd /; tree"), want.replacen('/', ".", 1));
    let all = db.ok("tree -a /a");
    assert!(all.starts_with("/a\n├── .hidden\n"), "{all}");
    assert!(all.ends_with("\n2 directories, 4 files\n"), "{all}");
    assert_eq!(
        db.ok("tree -L 1 /a"),
        "/a\n├── b/\n├── f\n└── l -> /a/f\n\n1 directory, 2 files\n"
    );
    assert_eq!(db.ok("tree /a/f"), "/a/f\n\n0 directories, 1 file\n");
    db.fails("tree /nope", 1, "tree", "/nope: no such file or directory");
}

#[test]
fn tree_as_of_a_past_moment() {
    let db = Db::with("mkdir /d; echo 1 > /d/old");
    let t = db.ok("log -n 1");
    let t = t.split_whitespace().next().expect("tx");
    db.ok("rm /d/old; echo 2 > /d/new");
    assert_eq!(
        db.ok(&format!("tree --as-of {t} /d")),
        "/d\n└── old\n\n0 directories, 1 file\n"
    );
    assert_eq!(db.ok("tree /d"), "/d\n└── new\n\n0 directories, 1 file\n");
}

// ----- find ------------------------------------------------------------------

#[test]
fn find_lists_and_filters() {
    let db = Db::with(
        "mkdir -p /a/b /a/c; echo 1 > /a/x.txt; echo 2 > /a/b/y.txt; echo 3 > /a/b/z.md; \
         ln -s /a/x.txt /a/link.txt",
    );
    assert_eq!(
        db.ok("find /a"),
        lines(&[
            "/a",
            "/a/b",
            "/a/b/y.txt",
            "/a/b/z.md",
            "/a/c",
            "/a/link.txt",
            "/a/x.txt"
        ])
    );
    assert_eq!(
        db.ok("find /a -name '*.txt'"),
        lines(&["/a/b/y.txt", "/a/link.txt", "/a/x.txt"])
    );
    assert_eq!(
        db.ok("find /a -name '*.txt' -type f"),
        lines(&["/a/b/y.txt", "/a/x.txt"])
    );
    assert_eq!(db.ok("find /a -type d"), lines(&["/a", "/a/b", "/a/c"]));
    assert_eq!(db.ok("find /a -type l"), "/a/link.txt\n");
    assert_eq!(db.ok("find /a -name 'Y*' "), "");
    assert_eq!(db.ok("find /a -iname 'Y*'"), "/a/b/y.txt\n");
    assert_eq!(db.ok("find /a -maxdepth 1 -type f"), "/a/x.txt\n");
    assert_eq!(
        db.ok("find /a -mindepth 2"),
        lines(&["/a/b/y.txt", "/a/b/z.md"])
    );
    // Relative paths are printed as given.
    assert_eq!(db.ok("cd /a; find . -name '?.md'"), "./b/z.md\n");
    assert_eq!(db.ok("cd /a; find b"), lines(&["b", "b/y.txt", "b/z.md"]));
    assert_eq!(db.ok("cd /a/b; find"), lines(&[".", "./y.txt", "./z.md"]));
    // Several starting points.
    assert_eq!(db.ok("find /a/b /a/c -type d"), lines(&["/a/b", "/a/c"]));
}

#[test]
fn find_as_of_help_and_errors() {
    let db = Db::with("mkdir /d; echo 1 > /d/old");
    let t = db.ok("log -n 1");
    let t = t.split_whitespace().next().expect("tx").to_string();
    db.ok("rm /d/old");
    assert_eq!(db.ok(&format!("find --as-of {t} /d -type f")), "/d/old\n");
    assert_eq!(db.ok(&format!("find /d --as-of={t} -name old")), "/d/old\n");
    assert_eq!(db.ok("find /d -type f"), "");
    let help = db.ok("find --help");
    assert!(
        help.contains("-name GLOB") && help.contains("-type"),
        "{help}"
    );
    db.fails("find /d -bogus", 2, "find", "unknown predicate '-bogus'");
    db.fails("find /d -name", 2, "find", "missing argument to '-name'");
    db.fails("find /d -type x", 2, "find", "unknown argument to -type");
    db.fails("find /d -maxdepth z", 2, "find", "non-negative number");
    db.fails("find -name x /d", 2, "find", "paths must precede");
    let r = db.fails(
        "find /nope /d",
        1,
        "find",
        "/nope: no such file or directory",
    );
    assert_eq!(r.out, "/d\n");
}

// ----- grep ------------------------------------------------------------------

const FRUIT: &str = "cat > /f <<EOF
banana
apple
10 cherry
2 date
Apple pie
apple
EOF
";

#[test]
fn grep_options_and_statuses() {
    let db = Db::with(FRUIT);
    let r = db.run("grep apple /f");
    assert_eq!((r.code, r.out.as_str()), (0, "apple\napple\n"));
    let r = db.run("grep zzz /f");
    assert_eq!((r.code, r.out.as_str(), r.err.as_str()), (1, "", ""));
    assert_eq!(
        db.ok("grep -i APPLE /f"),
        lines(&["apple", "Apple pie", "apple"])
    );
    assert_eq!(db.ok("grep -n apple /f"), "2:apple\n6:apple\n");
    assert_eq!(db.ok("grep -v a /f"), lines(&["10 cherry", "Apple pie"]));
    assert_eq!(db.ok("grep -c apple /f"), "2\n");
    assert_eq!(db.ok("grep -ivc apple /f"), "3\n");
    assert_eq!(db.ok("grep -q apple /f"), "");
    assert_eq!(db.run("grep -q zzz /f").code, 1);
    // Substring, not a regular expression.
    assert_eq!(db.run("grep 'a.p' /f").code, 1);
    db.ok("echo 'a.p' > /g");
    assert_eq!(db.ok("grep 'a.p' /g"), "a.p\n");
    // Several files: name prefixes.
    assert_eq!(db.ok("grep -n date /f /g /f"), "/f:4:2 date\n/f:4:2 date\n");
    assert_eq!(db.ok("grep -c a /f /g"), "/f:4\n/g:1\n");
    assert_eq!(db.ok("grep -l date /f /g"), "/f\n");
    // A pattern starting with '-'.
    db.ok("echo 'x -v y' > /h");
    assert_eq!(db.ok("grep -- -v /h"), "x -v y\n");
}

#[test]
fn grep_errors() {
    let db = Db::with(FRUIT);
    db.fails("grep", 2, "grep", "missing PATTERN");
    db.fails("grep -Z x /f", 2, "grep", "unexpected argument");
    let r = db.fails(
        "grep x /nope",
        2,
        "grep",
        "/nope: no such file or directory",
    );
    assert_eq!(r.out, "");
    // An error wins over a match (POSIX), but other files are still read.
    let r = db.fails("grep date /nope /f", 2, "grep", "/nope");
    assert_eq!(r.out, "/f:2 date\n");
    let r = db.run("grep -q date /nope /f");
    assert_eq!(r.code, 0, "-q with a match is success");
}

#[test]
fn grep_reads_stdin_and_past_states() {
    let db = Db::with(FRUIT);
    assert_eq!(db.ok("cat /f | grep -n date"), "4:2 date\n");
    assert_eq!(db.ok("grep -c e < /f"), "5\n");
    assert_eq!(db.ok("cat /f | grep -c e - /f"), "-:5\n/f:5\n");
    assert_eq!(db.ok("grep x <<EOF\nax\nb\ncx\nEOF"), "ax\ncx\n");
    let t = db.ok("log -n 1");
    let t = t.split_whitespace().next().expect("tx").to_string();
    db.ok("echo nothing > /f");
    assert_eq!(db.ok(&format!("grep --as-of {t} -c apple /f")), "2\n");
    assert_eq!(db.run("grep apple /f").code, 1);
}

// ----- head and tail ---------------------------------------------------------

#[test]
fn head_and_tail() {
    let db = Db::with(
        "echo 1 > /n; echo 2 >> /n; echo 3 >> /n; echo 4 >> /n; echo 5 >> /n; \
         echo 6 >> /n; echo 7 >> /n; echo 8 >> /n; echo 9 >> /n; echo 10 >> /n; \
         echo 11 >> /n; echo 12 >> /n; echo -n end > /nonl; echo a > /s",
    );
    let all: Vec<String> = (1..=12).map(|i| i.to_string()).collect();
    let first: Vec<&str> = all.iter().map(String::as_str).collect();
    assert_eq!(db.ok("head /n"), lines(&first[..10]));
    assert_eq!(db.ok("tail /n"), lines(&first[2..]));
    assert_eq!(db.ok("head -n 3 /n"), "1\n2\n3\n");
    assert_eq!(db.ok("head -3 /n"), "1\n2\n3\n");
    assert_eq!(db.ok("head -n3 /n"), "1\n2\n3\n");
    assert_eq!(db.ok("tail -n 2 /n"), "11\n12\n");
    assert_eq!(db.ok("tail -2 /n"), "11\n12\n");
    assert_eq!(db.ok("tail -n +11 /n"), "11\n12\n");
    assert_eq!(db.ok("head -n 0 /n"), "");
    assert_eq!(db.ok("head -n 100 /s"), "a\n");
    assert_eq!(db.ok("head -c 4 /n"), "1\n2\n");
    assert_eq!(db.ok("tail -c 3 /n"), "12\n");
    // A last line without newline is kept as is.
    assert_eq!(db.ok("tail -n 1 /nonl"), "end");
    assert_eq!(db.ok("head -n 1 /nonl"), "end");
    // Several files get headers.
    assert_eq!(db.ok("head -n 1 /n /s"), "==> /n <==\n1\n\n==> /s <==\na\n");
    // Standard input.
    assert_eq!(db.ok("cat /n | head -n 2"), "1\n2\n");
    assert_eq!(db.ok("cat /n | tail -1"), "12\n");
    assert_eq!(db.ok("tail -n 1 < /n"), "12\n");
}

#[test]
fn head_and_tail_errors() {
    let db = Db::with("echo a > /s");
    db.fails("head -n x /s", 2, "head", "invalid value");
    db.fails("tail -n x /s", 2, "tail", "invalid number of lines");
    let r = db.fails(
        "head /nope /s",
        1,
        "head",
        "/nope: no such file or directory",
    );
    assert_eq!(r.out, "==> /s <==\na\n");
    db.fails("tail /nope", 1, "tail", "/nope: no such file or directory");
    db.fails("head /", 1, "head", "is a directory");
}

// ----- wc --------------------------------------------------------------------

#[test]
fn wc_counts() {
    let db = Db::with(FRUIT);
    assert_eq!(db.ok("wc /f"), "      6       9      46 /f\n");
    assert_eq!(db.ok("wc -l /f"), "6 /f\n");
    assert_eq!(db.ok("wc -w /f"), "9 /f\n");
    assert_eq!(db.ok("wc -c /f"), "46 /f\n");
    assert_eq!(db.ok("wc -lw /f"), "      6       9 /f\n");
    assert_eq!(db.ok("cat /f | wc -l"), "6\n");
    assert_eq!(db.ok("cat /f | wc"), "      6       9      46\n");
    assert_eq!(db.ok("wc -l /f /f"), "6 /f\n6 /f\n12 total\n");
    assert_eq!(db.ok("echo -n 'a  b' | wc"), "      0       2       4\n");
    assert_eq!(db.ok("wc -l < /f"), "6\n");
    // As in POSIX wc, the total covers the files that could be read.
    let r = db.fails(
        "wc -l /nope /f",
        1,
        "wc",
        "/nope: no such file or directory",
    );
    assert_eq!(r.out, "6 /f\n6 total\n");
    db.fails("wc -x", 2, "wc", "unexpected argument");
}

// ----- sort ------------------------------------------------------------------

#[test]
fn sort_orders_lines() {
    let db = Db::with(FRUIT);
    assert_eq!(
        db.ok("sort /f"),
        lines(&[
            "10 cherry",
            "2 date",
            "Apple pie",
            "apple",
            "apple",
            "banana"
        ])
    );
    assert_eq!(
        db.ok("sort -r /f"),
        lines(&[
            "banana",
            "apple",
            "apple",
            "Apple pie",
            "2 date",
            "10 cherry"
        ])
    );
    assert_eq!(
        db.ok("sort -n /f"),
        lines(&[
            "Apple pie",
            "apple",
            "apple",
            "banana",
            "2 date",
            "10 cherry"
        ])
    );
    assert_eq!(
        db.ok("sort -u /f"),
        lines(&["10 cherry", "2 date", "Apple pie", "apple", "banana"])
    );
    assert_eq!(
        db.ok("sort -rnu /f"),
        lines(&["10 cherry", "2 date", "banana"])
    );
    db.ok("cat > /g <<EOF\nb\n-3\n1.5\na\nEOF");
    assert_eq!(db.ok("sort -n /g"), lines(&["-3", "a", "b", "1.5"]));
    assert_eq!(
        db.ok("sort /g /g | sort -u"),
        lines(&["-3", "1.5", "a", "b"])
    );
    assert_eq!(db.ok("cat /g | sort"), lines(&["-3", "1.5", "a", "b"]));
    let r = db.fails(
        "sort /nope /g",
        1,
        "sort",
        "/nope: no such file or directory",
    );
    assert_eq!(r.out, lines(&["-3", "1.5", "a", "b"]));
    db.fails("sort -q", 2, "sort", "unexpected argument");
}

// ----- pipelines and redirections --------------------------------------------

#[test]
fn pipelines_and_redirections() {
    let db = Db::with(FRUIT);
    assert_eq!(
        db.ok("cat /f | grep a | sort | head -n 2"),
        "2 date\napple\n"
    );
    assert_eq!(db.ok("cat /f | grep -i apple | sort -u | wc -l"), "2\n");
    db.ok("grep a /f > /out");
    assert_eq!(
        db.ok("cat /out"),
        lines(&["banana", "apple", "2 date", "apple"])
    );
    db.ok("sort /out | tail -n 1 >> /out");
    assert_eq!(db.ok("tail -n 2 /out"), "apple\nbanana\n");
    db.ok("find / -type f | sort -r > /list");
    assert_eq!(db.ok("cat /list"), lines(&["/out", "/f"]));
    // A status of 1 from grep still runs the || branch.
    assert_eq!(db.ok("grep zzz /f || echo none"), "none\n");
    assert_eq!(db.ok("grep -q apple /f && echo found"), "found\n");
}

#[test]
fn failed_commands_in_a_line_are_undone() {
    let db = Db::with("mkdir /d; echo x > /f");
    // The line commits what succeeded, nothing of the failed mv.
    let r = db.run("touch /t; mv /f /nope /d");
    assert_eq!(r.code, 1);
    assert_eq!(db.ok("ls /"), lines(&["d", "f", "t"]));
    assert_eq!(db.ok("ls /d"), "");
}

#[test]
fn every_command_has_help() {
    let db = Db::new();
    for cmd in [
        "rmdir", "mv", "cp", "ln", "chmod", "stat", "tree", "find", "grep", "head", "tail", "wc",
        "sort",
    ] {
        let out = db.ok(&format!("{cmd} --help"));
        assert!(out.contains("Usage:"), "{cmd} --help: {out}");
        assert!(db.ok(&format!("help {cmd}")).contains(cmd), "help {cmd}");
    }
    assert!(db
        .ok("grep --help")
        .contains("regular expressions are not supported"));
}

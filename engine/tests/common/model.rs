//! The in-memory model of the engine shared by the model-based test
//! (`model.rs`) and the load test (`load.rs`): file-tree and config
//! operations, a plain `BTreeMap` state they apply to, and the comparison of
//! an engine view with such a state.

use dbos_engine::{ChunkRef, Entry, KeyRange, Space, Txn, VPath};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

/// Longest symlink target the engine accepts.
pub const MAX_PATH: usize = 4096;

// ----- content --------------------------------------------------------------

/// File content in the model: shared bytes plus their BLAKE3 digest.
#[derive(Clone)]
pub struct Blob {
    pub bytes: Arc<Vec<u8>>,
    pub digest: [u8; 32],
}

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Blob {
        let digest = *blake3::hash(&bytes).as_bytes();
        Blob {
            bytes: Arc::new(bytes),
            digest,
        }
    }
}

impl PartialEq for Blob {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.bytes.len() == other.bytes.len()
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bytes.len() <= 16 {
            write!(f, "{:?}", String::from_utf8_lossy(&self.bytes))
        } else {
            write!(
                f,
                "<{} bytes {}>",
                self.bytes.len(),
                dbos_engine::hex(&self.digest[..4])
            )
        }
    }
}

/// What to write: literal bytes, or generated from a seed (random bytes that
/// do not compress, or text that does).
#[derive(Clone)]
pub enum Data {
    Literal(Vec<u8>),
    Gen { seed: u64, len: usize, text: bool },
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Data::Literal(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Data::Gen { seed, len, text } => {
                write!(f, "Gen{{seed: {seed}, len: {len}, text: {text}}}")
            }
        }
    }
}

impl Data {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Data::Literal(b) => b.clone(),
            Data::Gen { seed, len, text } => {
                // xorshift64*: fast even in debug builds.
                let mut x = seed | 1;
                let mut next = move || {
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
                };
                let mut out = Vec::with_capacity(len + 64);
                if *text {
                    let mut line = 0u64;
                    while out.len() < *len {
                        let r = next();
                        out.extend_from_slice(
                            format!("line {line} value {} seed {seed}\n", r % 1000).as_bytes(),
                        );
                        line += 1;
                    }
                } else {
                    while out.len() < *len {
                        out.extend_from_slice(&next().to_le_bytes());
                    }
                }
                out.truncate(*len);
                out
            }
        }
    }
}

// ----- operations -----------------------------------------------------------

#[derive(Clone, Debug)]
pub enum FsOp<P = String> {
    Write { path: P, data: Data, append: bool },
    Truncate { path: P, len: u64 },
    Touch { path: P },
    Mkdir { path: P, parents: bool, mode: u32 },
    Remove { path: P, recursive: bool },
    Rmdir { path: P },
    Rename { from: P, to: P },
    Copy { from: P, to: P, recursive: bool },
    Symlink { target: String, path: P },
    Chmod { path: P, mode: u32 },
    ConfigSet { key: String, value: String },
    ConfigUnset { key: String },
}

impl<P> FsOp<P> {
    /// The same operation with its paths mapped by `f`.
    pub fn map<Q>(&self, mut f: impl FnMut(&P) -> Q) -> FsOp<Q> {
        match self {
            FsOp::Write { path, data, append } => FsOp::Write {
                path: f(path),
                data: data.clone(),
                append: *append,
            },
            FsOp::Truncate { path, len } => FsOp::Truncate {
                path: f(path),
                len: *len,
            },
            FsOp::Touch { path } => FsOp::Touch { path: f(path) },
            FsOp::Mkdir {
                path,
                parents,
                mode,
            } => FsOp::Mkdir {
                path: f(path),
                parents: *parents,
                mode: *mode,
            },
            FsOp::Remove { path, recursive } => FsOp::Remove {
                path: f(path),
                recursive: *recursive,
            },
            FsOp::Rmdir { path } => FsOp::Rmdir { path: f(path) },
            FsOp::Rename { from, to } => FsOp::Rename {
                from: f(from),
                to: f(to),
            },
            FsOp::Copy {
                from,
                to,
                recursive,
            } => FsOp::Copy {
                from: f(from),
                to: f(to),
                recursive: *recursive,
            },
            FsOp::Symlink { target, path } => FsOp::Symlink {
                target: target.clone(),
                path: f(path),
            },
            FsOp::Chmod { path, mode } => FsOp::Chmod {
                path: f(path),
                mode: *mode,
            },
            FsOp::ConfigSet { key, value } => FsOp::ConfigSet {
                key: key.clone(),
                value: value.clone(),
            },
            FsOp::ConfigUnset { key } => FsOp::ConfigUnset { key: key.clone() },
        }
    }
}

pub fn vp(s: &str) -> VPath {
    VPath::parse(s).expect("generated paths are valid")
}

/// Run one operation on an engine transaction.
pub fn apply_engine(tx: &mut Txn<'_>, op: &FsOp, bytes: &[u8]) -> dbos_engine::Result<()> {
    match op {
        FsOp::Write { path, append, .. } => tx.write_file(&vp(path), bytes, *append),
        FsOp::Truncate { path, len } => tx.truncate(&vp(path), *len),
        FsOp::Touch { path } => tx.touch(&vp(path)),
        FsOp::Mkdir {
            path,
            parents,
            mode,
        } => tx.mkdir(&vp(path), *parents, *mode),
        FsOp::Remove { path, recursive } => tx.remove(&vp(path), *recursive),
        FsOp::Rmdir { path } => tx.rmdir(&vp(path)),
        FsOp::Rename { from, to } => tx.rename(&vp(from), &vp(to)),
        FsOp::Copy {
            from,
            to,
            recursive,
        } => tx.copy(&vp(from), &vp(to), *recursive),
        FsOp::Symlink { target, path } => tx.symlink(target, &vp(path)),
        FsOp::Chmod { path, mode } => tx.chmod(&vp(path), *mode),
        FsOp::ConfigSet { key, value } => tx.config_set(key, value),
        FsOp::ConfigUnset { key } => tx.config_unset(key),
    }
}

// ----- the model ------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Dir { mode: u32 },
    File { blob: Blob, mode: u32 },
    Symlink { target: String, mode: u32 },
}

/// A key of versioned state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    File(String),
    Config(String),
}

/// What a key holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Node(Node),
    Value(String),
}

/// The whole state of one branch at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub files: BTreeMap<String, Node>,
    pub config: BTreeMap<String, String>,
}

pub type MResult = Result<(), &'static str>;

pub fn parent(p: &str) -> Option<&str> {
    if p == "/" {
        return None;
    }
    match p.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&p[..i]),
        None => None,
    }
}

/// True when `p` is `base` or lies below it.
pub fn is_under(p: &str, base: &str) -> bool {
    base == "/" || p == base || (p.starts_with(base) && p.as_bytes().get(base.len()) == Some(&b'/'))
}

pub fn valid_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 255
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/@".contains(c))
}

impl State {
    pub fn initial() -> State {
        let mut s = State::default();
        s.files.insert("/".to_string(), Node::Dir { mode: 0o755 });
        s
    }

    pub fn get(&self, key: &Key) -> Option<Val> {
        match key {
            Key::File(p) => self.files.get(p).cloned().map(Val::Node),
            Key::Config(k) => self.config.get(k).cloned().map(Val::Value),
        }
    }

    /// `p` and everything below it, sorted.
    pub fn subtree(&self, p: &str) -> Vec<String> {
        self.files
            .keys()
            .filter(|k| is_under(k, p))
            .cloned()
            .collect()
    }

    pub fn has_children(&self, p: &str) -> bool {
        self.files.keys().any(|k| k != p && is_under(k, p))
    }

    pub fn require_parent_dir(&self, p: &str) -> MResult {
        match parent(p) {
            None => Err("root has no parent"),
            Some(par) => match self.files.get(par) {
                Some(Node::Dir { .. }) => Ok(()),
                Some(_) => Err("parent is not a directory"),
                None => Err("parent does not exist"),
            },
        }
    }

    pub fn mkdir(&mut self, t: &mut Vec<Key>, p: &str, parents: bool, mode: u32) -> MResult {
        match self.files.get(p) {
            Some(Node::Dir { .. }) if parents => return Ok(()),
            Some(_) => return Err("exists"),
            None => {}
        }
        if parents {
            if let Some(par) = parent(p) {
                self.mkdir(t, par, true, mode)?;
            }
        } else {
            self.require_parent_dir(p)?;
        }
        self.files.insert(p.to_string(), Node::Dir { mode });
        t.push(Key::File(p.to_string()));
        Ok(())
    }

    pub fn remove(&mut self, t: &mut Vec<Key>, p: &str, recursive: bool) -> MResult {
        if p == "/" {
            return Err("root");
        }
        match self.files.get(p) {
            None => Err("not found"),
            Some(Node::Dir { .. }) => {
                if self.has_children(p) && !recursive {
                    return Err("directory not empty");
                }
                for k in self.subtree(p) {
                    self.files.remove(&k);
                    t.push(Key::File(k));
                }
                Ok(())
            }
            Some(_) => {
                self.files.remove(p);
                t.push(Key::File(p.to_string()));
                Ok(())
            }
        }
    }

    /// Apply one operation; on error the caller discards `self` and `t`.
    pub fn apply(&mut self, t: &mut Vec<Key>, op: &FsOp, bytes: &[u8]) -> MResult {
        match op {
            FsOp::Write { path, append, .. } => {
                self.require_parent_dir(path)?;
                let (mode, data) = match self.files.get(path.as_str()) {
                    Some(Node::Dir { .. }) => return Err("is a directory"),
                    Some(Node::Symlink { .. }) => return Err("is a symlink"),
                    Some(Node::File { blob, mode }) => {
                        if *append {
                            let mut d = blob.bytes.to_vec();
                            d.extend_from_slice(bytes);
                            (*mode, d)
                        } else {
                            (*mode, bytes.to_vec())
                        }
                    }
                    None => (0o644, bytes.to_vec()),
                };
                let blob = Blob::new(data);
                self.files.insert(path.clone(), Node::File { blob, mode });
                t.push(Key::File(path.clone()));
                Ok(())
            }
            FsOp::Truncate { path, len } => match self.files.get(path.as_str()) {
                Some(Node::File { blob, mode }) => {
                    let mut d = blob.bytes.to_vec();
                    d.resize(*len as usize, 0);
                    let node = Node::File {
                        blob: Blob::new(d),
                        mode: *mode,
                    };
                    self.files.insert(path.clone(), node);
                    t.push(Key::File(path.clone()));
                    Ok(())
                }
                Some(_) => Err("not a regular file"),
                None => Err("not found"),
            },
            FsOp::Touch { path } => {
                if !self.files.contains_key(path.as_str()) {
                    self.require_parent_dir(path)?;
                    let node = Node::File {
                        blob: Blob::new(Vec::new()),
                        mode: 0o644,
                    };
                    self.files.insert(path.clone(), node);
                }
                t.push(Key::File(path.clone()));
                Ok(())
            }
            FsOp::Mkdir {
                path,
                parents,
                mode,
            } => self.mkdir(t, path, *parents, *mode),
            FsOp::Remove { path, recursive } => self.remove(t, path, *recursive),
            FsOp::Rmdir { path } => match self.files.get(path.as_str()) {
                Some(Node::Dir { .. }) => self.remove(t, path, false),
                Some(_) => Err("not a directory"),
                None => Err("not found"),
            },
            FsOp::Rename { from, to } => {
                if from == "/" || to == "/" {
                    return Err("root");
                }
                let Some(src) = self.files.get(from.as_str()).cloned() else {
                    return Err("not found");
                };
                if from == to {
                    return Ok(());
                }
                let src_dir = matches!(src, Node::Dir { .. });
                if src_dir && is_under(to, from) {
                    return Err("move into itself");
                }
                self.require_parent_dir(to)?;
                match (self.files.get(to.as_str()), src_dir) {
                    (None, _) => {}
                    (Some(Node::Dir { .. }), true) => {
                        if self.has_children(to) {
                            return Err("destination not empty");
                        }
                    }
                    (Some(Node::Dir { .. }), false) => return Err("destination is a directory"),
                    (Some(_), true) => return Err("destination is not a directory"),
                    (Some(_), false) => {}
                }
                let moved: Vec<(String, Node)> = self
                    .subtree(from)
                    .into_iter()
                    .map(|k| {
                        let n = self.files.remove(&k).expect("listed");
                        (k, n)
                    })
                    .collect();
                for (k, n) in moved {
                    let dest = format!("{to}{}", &k[from.len()..]);
                    t.push(Key::File(k));
                    t.push(Key::File(dest.clone()));
                    self.files.insert(dest, n);
                }
                Ok(())
            }
            FsOp::Copy {
                from,
                to,
                recursive,
            } => {
                let Some(src) = self.files.get(from.as_str()).cloned() else {
                    return Err("not found");
                };
                let src_dir = matches!(src, Node::Dir { .. });
                if src_dir && !recursive {
                    return Err("is a directory");
                }
                if src_dir && is_under(to, from) {
                    return Err("copy into itself");
                }
                self.require_parent_dir(to)?;
                match self.files.get(to.as_str()) {
                    Some(Node::Dir { .. }) => return Err("destination is a directory"),
                    Some(_) if src_dir => return Err("destination exists"),
                    _ => {}
                }
                let copied: Vec<(String, Node)> = self
                    .subtree(from)
                    .into_iter()
                    .map(|k| {
                        let n = self.files[&k].clone();
                        (format!("{to}{}", &k[from.len()..]), n)
                    })
                    .collect();
                for (dest, n) in copied {
                    t.push(Key::File(dest.clone()));
                    self.files.insert(dest, n);
                }
                Ok(())
            }
            FsOp::Symlink { target, path } => {
                if target.is_empty() || target.contains('\0') || target.len() > MAX_PATH {
                    return Err("bad target");
                }
                self.require_parent_dir(path)?;
                if self.files.contains_key(path.as_str()) {
                    return Err("exists");
                }
                let node = Node::Symlink {
                    target: target.clone(),
                    mode: 0o777,
                };
                self.files.insert(path.clone(), node);
                t.push(Key::File(path.clone()));
                Ok(())
            }
            FsOp::Chmod { path, mode } => {
                let new = *mode & 0o7777;
                match self.files.get_mut(path.as_str()) {
                    None => return Err("not found"),
                    Some(Node::Dir { mode })
                    | Some(Node::File { mode, .. })
                    | Some(Node::Symlink { mode, .. }) => *mode = new,
                }
                t.push(Key::File(path.clone()));
                Ok(())
            }
            FsOp::ConfigSet { key, value } => {
                if !valid_config_key(key) || value.contains('\0') {
                    return Err("bad key or value");
                }
                self.config.insert(key.clone(), value.clone());
                t.push(Key::Config(key.clone()));
                Ok(())
            }
            FsOp::ConfigUnset { key } => {
                if !valid_config_key(key) {
                    return Err("bad key");
                }
                if self.config.remove(key).is_none() {
                    return Err("not set");
                }
                t.push(Key::Config(key.clone()));
                Ok(())
            }
        }
    }
}

// ----- comparing the engine with the model ----------------------------------

pub fn e2s(e: dbos_engine::Error) -> String {
    format!("engine error: {e} ({e:?})")
}

/// Does an engine entry match a model value? (File content by size and
/// digest; bytes are compared separately.)
pub fn entry_matches(e: Option<&Entry>, m: Option<&Val>) -> bool {
    match (e, m) {
        (None, None) => true,
        (Some(Entry::Value(v)), Some(Val::Value(w))) => v == w,
        (Some(e), Some(Val::Node(n))) => {
            let Some(meta) = e.meta() else {
                return false;
            };
            if meta.uid != 0 || meta.gid != 0 {
                return false;
            }
            match (e, n) {
                (Entry::Dir { meta }, Node::Dir { mode }) => meta.mode == *mode,
                (Entry::File { meta, content }, Node::File { blob, mode }) => {
                    meta.mode == *mode
                        && content.size == blob.bytes.len() as u64
                        && content.digest == blob.digest
                }
                (Entry::Symlink { meta, target }, Node::Symlink { target: t, mode }) => {
                    meta.mode == *mode && target == t
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// Compare a transaction or view with a model state: the whole tree (walked
/// from `/`), `stat` of every path of the name space, file bytes (read once
/// per distinct chunk list) and the config list.
pub fn compare_view(
    tx: &mut Txn<'_>,
    model: &State,
    universe: &[String],
    verified: &mut HashSet<Vec<ChunkRef>>,
) -> Result<(), String> {
    let walked = tx.walk(&VPath::root()).map_err(e2s)?;
    let mut seen = BTreeSet::new();
    for (p, e) in &walked {
        let m = model.files.get(p.as_str()).cloned().map(Val::Node);
        if !entry_matches(Some(e), m.as_ref()) {
            return Err(format!("walk: {p} is {e:?}, model has {m:?}"));
        }
        if !seen.insert(p.as_str().to_string()) {
            return Err(format!("walk lists {p} twice"));
        }
        if let (Entry::File { content, .. }, Some(Val::Node(Node::File { blob, .. }))) = (e, &m) {
            if !verified.contains(content.chunks.as_slice()) {
                let bytes = tx.read_file(p).map_err(e2s)?;
                if bytes != *blob.bytes {
                    return Err(format!(
                        "{p}: read {} bytes that differ from the model's {blob:?}",
                        bytes.len()
                    ));
                }
                verified.insert(content.chunks.to_vec());
            }
        }
    }
    let missing: Vec<&String> = model.files.keys().filter(|k| !seen.contains(*k)).collect();
    if !missing.is_empty() {
        return Err(format!("walk misses {missing:?}"));
    }
    for p in universe {
        let e = tx.stat(&vp(p)).map_err(e2s)?;
        let m = model.files.get(p).cloned().map(Val::Node);
        if !entry_matches(e.as_ref(), m.as_ref()) {
            return Err(format!("stat {p}: {e:?}, model has {m:?}"));
        }
    }
    let config = tx.config_list().map_err(e2s)?;
    let want: Vec<(String, String)> = model
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if config != want {
        return Err(format!("config list {config:?}, model has {want:?}"));
    }
    // Key ranges of the config space: from the start or a middle key,
    // ascending or descending, limited or not.
    let middle = want.get(want.len() / 2).map(|(k, _)| k.clone());
    for from in [None, middle] {
        for (limit, descending) in [(None, false), (Some(2), false), (Some(2), true)] {
            let range = KeyRange {
                from: from.clone(),
                limit,
                descending,
            };
            let got: Vec<(String, String)> = tx
                .list_space_range(Space::Config, &range)
                .map_err(e2s)?
                .into_iter()
                .map(|(k, e)| match e {
                    Entry::Value(v) => (k, v),
                    other => (k, format!("{other:?}")),
                })
                .collect();
            let mut expect: Vec<(String, String)> = want
                .iter()
                .filter(|(k, _)| from.as_ref().is_none_or(|f| k >= f))
                .cloned()
                .collect();
            if descending {
                expect.reverse();
            }
            expect.truncate(limit.unwrap_or(usize::MAX));
            if got != expect {
                return Err(format!(
                    "config range {range:?}: {got:?}, model has {expect:?}"
                ));
            }
        }
    }
    Ok(())
}

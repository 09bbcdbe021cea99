//! The PostgreSQL backend: one versioned state shared by many machines.
//!
//! The state table `versions` holds the newest version of each key on each
//! branch and is system-versioned by the `periods` extension: a replaced
//! version moves to `versions_history`. As-of reads by transaction id look at
//! both (`tx_id <= T`, newest first), with indexes on the history table.
//!
//! Commit order: a commit takes a session advisory lock *before* `BEGIN`,
//! so transaction ids, our recorded commit times and periods' system times
//! (which PostgreSQL takes at the start of a transaction) all follow commit
//! order. A lost connection rolls the transaction back and frees the lock.
//!
//! Round trips, not server work, dominate small commits, so a commit is two
//! pipelined round trips whatever its size (see `commit_tx`): the driver is
//! tokio-postgres on a private single-threaded runtime (`Conn`), which lets
//! several prepared statements go out before their answers come back; keys,
//! chunks and versions are written with one `unnest(...)` statement each.
//! The server still runs the statements one after the other, in order: the
//! lock is acquired before `BEGIN` is even read, so the transaction's start
//! time still follows the lock.

use super::{
    columns, corrupt, decode_version, Backend, BranchRecord, CommitMeta, CommitRequest, ImportItem,
    LogFilter, RawVersion, ShellLine, TagRecord, Write, IMPORT_UNFINISHED_US,
};
use crate::chain::writes_hash;
use crate::content::{decode_chunk, encode_manifest, EncodedChunk};
use crate::error::{Error, Result};
use crate::types::{
    BranchId, BranchInfo, ChunkId, ChunkRef, Entry, Hash, KeyRange, Lineage, LogEntry, Space,
    StoredLog, TxId, TxInfo, VersionRecord,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

/// Advisory lock key serialising commits ("dbos").
const COMMIT_LOCK: i64 = 0x6462_6f73;
/// Advisory lock key serialising migrations.
const MIGRATE_LOCK: i64 = 0x6462_6f74;

/// The PostgreSQL migrations built into this binary, in order.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "temporal_core",
        include_str!("../../../migrations/postgres/0001_temporal_core.sql"),
    ),
    (
        2,
        "shell_history",
        include_str!("../../../migrations/postgres/0002_shell_history.sql"),
    ),
    (
        3,
        "audit_reader",
        include_str!("../../../migrations/postgres/0003_audit_reader.sql"),
    ),
];

const VCOLS: &str = "tx_id, kind, mode, uid, gid, size, mtime_ns, digest, manifest, value";
const TX_COLS: &str =
    "id, branch_id, time_us, author, host, command, message, merge_branch_id, merge_tx, hash";
const BRANCH_COLS: &str = "id, name, parent_id, fork_tx, created_us";

/// Remembered absent keys, at most (then forgotten all at once).
const MISSING_KEYS_MAX: usize = 200_000;

/// The PostgreSQL backend.
pub struct PostgresBackend {
    pub(super) conn: Conn,
    pub(super) location: String,
    /// Key ids: a key, once interned, keeps its id forever.
    key_ids: HashMap<(Space, String), i64>,
    /// Keys found absent, each with the newest transaction id this
    /// connection had seen committed before it looked (see `known_missing`).
    missing: HashMap<(Space, String), TxId>,
    /// The newest transaction id this connection has seen committed.
    seen_head: TxId,
    /// Point reads at one lineage, carried over this connection's commits.
    reads: Option<ReadCache>,
}

/// Point reads remembered at most (then forgotten all at once).
const READ_CACHE_MAX: usize = 100_000;

/// The visible versions of keys in one lineage. What a lineage shows never
/// changes (history is append-only, and no transaction can commit with an
/// id at or below one already committed), so these are facts, not guesses.
/// After this connection commits T on branch B from snapshot T-1 (nobody
/// committed in between), B's lineage up to T shows exactly what it showed
/// up to T-1 plus T's writes, so the cache moves on to it (`advance`): a
/// single writer's next transaction reads what it just wrote without
/// asking the server.
struct ReadCache {
    lineage: Lineage,
    entries: HashMap<(Space, String), Option<VersionRecord>>,
}

type PgError = tokio_postgres::Error;
type Param<'a> = &'a (dyn ToSql + Sync);
type StepFuture<'a> = Pin<Box<dyn Future<Output = std::result::Result<Vec<Row>, PgError>> + 'a>>;

/// One step of a pipeline.
enum Step<'a> {
    /// A simple-protocol command without parameters (`BEGIN`, `COMMIT`).
    Simple(&'static str),
    /// A prepared statement and its parameters.
    Query(Statement, Vec<Param<'a>>),
}

/// A connection: tokio-postgres driven by its own single-threaded runtime,
/// so the backend stays synchronous yet can pipeline statements.
pub(super) struct Conn {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) client: Client,
    stmts: HashMap<String, Statement>,
    loc: String,
}

impl Conn {
    pub(super) fn err(&self) -> impl Fn(PgError) -> Error + '_ {
        pg_err(&self.loc)
    }

    /// The prepared statement for `sql`, prepared once per connection.
    fn stmt(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .rt
            .block_on(self.client.prepare(sql))
            .map_err(pg_err(&self.loc))?;
        self.stmts.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    pub(super) fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let s = self.stmt(sql)?;
        self.rt
            .block_on(self.client.query(&s, params))
            .map_err(pg_err(&self.loc))
    }

    /// The one `bigint` a `SELECT count(*) ...` returns.
    fn count(&mut self, sql: &str, params: &[Param<'_>]) -> Result<i64> {
        self.query(sql, params)?
            .first()
            .ok_or_else(|| corrupt(format!("no row from `{sql}`")))?
            .try_get(0)
            .map_err(pg_err(&self.loc))
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let s = self.stmt(sql)?;
        self.rt
            .block_on(self.client.execute(&s, params))
            .map_err(pg_err(&self.loc))
    }

    pub(super) fn batch(&mut self, sql: &str) -> Result<()> {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .map_err(pg_err(&self.loc))
    }

    /// Run `work` in a database transaction: committed when it succeeds,
    /// rolled back when it fails.
    fn in_tx<T>(&mut self, work: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        self.batch("BEGIN")?;
        match work(self) {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Send every step without waiting for answers in between, then collect
    /// each step's answer, in order. The server runs them one after the
    /// other, as if sent one by one. A step that fails before it is sent
    /// (the driver could not encode it, or the connection is gone) stops the
    /// steps after it from being sent: a `COMMIT` is never sent after a
    /// statement of its transaction that the server never saw.
    fn pipeline(&self, steps: &[Step<'_>]) -> Vec<Result<Vec<Row>>> {
        self.pipeline_sent(steps).0
    }

    /// `pipeline`, also telling how many steps were sent (the ones after
    /// are not).
    fn pipeline_sent(&self, steps: &[Step<'_>]) -> (Vec<Result<Vec<Row>>>, usize) {
        let client = &self.client;
        let mut futs: Vec<StepFuture<'_>> = steps
            .iter()
            .map(|s| -> StepFuture<'_> {
                match s {
                    Step::Simple(sql) => {
                        Box::pin(
                            async move { client.batch_execute(sql).await.map(|()| Vec::new()) },
                        )
                    }
                    Step::Query(st, params) => Box::pin(client.query(st, params)),
                }
            })
            .collect();
        let n = futs.len();
        let mut out: Vec<Option<std::result::Result<Vec<Row>, PgError>>> =
            (0..n).map(|_| None).collect();
        let mut started = 0usize;
        let mut stop = n;
        let mut sent = n;
        self.rt.block_on(std::future::poll_fn(|cx| {
            // Futures are polled in order; the first poll of a step sends it
            // (the connection task cannot run before this pass returns), so
            // an answer on the first poll is a failure that sent nothing.
            let mut i = 0;
            while i < stop {
                if out[i].is_none() {
                    let first = i >= started;
                    if let Poll::Ready(r) = futs[i].as_mut().poll(cx) {
                        if first && r.is_err() {
                            (stop, sent) = (i + 1, i);
                        }
                        out[i] = Some(r);
                    }
                    started = started.max(i + 1);
                }
                i += 1;
            }
            if out[..stop].iter().all(Option::is_some) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        let results = out
            .into_iter()
            .map(|r| match r {
                Some(r) => r.map_err(pg_err(&self.loc)),
                None => Err(Error::Database(format!(
                    "{}: statement not sent after an earlier failure",
                    self.loc
                ))),
            })
            .collect();
        (results, sent)
    }
}

pub(super) fn pg_err(location: &str) -> impl Fn(PgError) -> Error + '_ {
    move |e| {
        if e.is_closed() {
            // The server rolls back a transaction whose connection dies
            // before COMMIT (a loss during COMMIT is reported by `locked`).
            return Error::Database(format!(
                "{location}: connection to PostgreSQL lost; the transaction was rolled back"
            ));
        }
        match e.as_db_error() {
            Some(db) => Error::Database(format!("{location}: {}", db.message())),
            None => Error::Database(format!("{location}: {e}")),
        }
    }
}

/// `postgres://user@host:port/db`, never with a password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_string());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{}:{}/{}",
        config.get_user().unwrap_or(""),
        host,
        port,
        config.get_dbname().unwrap_or("")
    )
}

/// Look a password up in a `.pgpass` file (`host:port:db:user:password`,
/// `*` matching anything, `\:` and `\\` escaped).
fn pgpass_lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let port_s = port.to_string();
        let want = [host, port_s.as_str(), db, user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

fn raw_from_row(row: &Row, at: usize) -> std::result::Result<(TxId, i64, RawVersion), PgError> {
    Ok((
        row.try_get::<_, i64>(at)? as TxId,
        i64::from(row.try_get::<_, i16>(at + 1)?),
        RawVersion {
            mode: row.try_get::<_, i64>(at + 2)? as u32,
            uid: row.try_get::<_, i64>(at + 3)? as u32,
            gid: row.try_get::<_, i64>(at + 4)? as u32,
            size: row.try_get(at + 5)?,
            mtime_ns: row.try_get(at + 6)?,
            digest: row.try_get(at + 7)?,
            manifest: row.try_get(at + 8)?,
            value: row.try_get(at + 9)?,
        },
    ))
}

fn tx_from_row(row: &Row) -> std::result::Result<TxInfo, PgError> {
    let hash: Vec<u8> = row.try_get(9)?;
    let mut h = [0u8; 32];
    if hash.len() == 32 {
        h.copy_from_slice(&hash);
    }
    let mb: Option<i64> = row.try_get(7)?;
    let mt: Option<i64> = row.try_get(8)?;
    Ok(TxInfo {
        id: row.try_get::<_, i64>(0)? as TxId,
        branch_id: row.try_get(1)?,
        time_us: row.try_get(2)?,
        author: row.try_get(3)?,
        host: row.try_get(4)?,
        command: row.try_get(5)?,
        message: row.try_get(6)?,
        merge: mb.zip(mt.map(|t| t as TxId)),
        hash: h,
    })
}

fn branch_from_row(row: &Row) -> std::result::Result<BranchInfo, PgError> {
    Ok(BranchInfo {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        parent: row.try_get(2)?,
        fork_tx: row.try_get::<_, Option<i64>>(3)?.map(|t| t as TxId),
        created_us: row.try_get(4)?,
    })
}

/// SQL for the visible version of a key (`key` is an SQL expression, e.g.
/// `$1` or `k.id`) over a lineage of `depth` steps whose (branch, upto)
/// parameters start at `$first`.
fn point_read_sql(key: &str, depth: usize, first: usize) -> String {
    let parts: Vec<String> = (0..depth)
        .flat_map(|i| {
            let (b, t) = (first + 2 * i, first + 2 * i + 1);
            [
                format!(
                    "(SELECT {VCOLS} FROM versions WHERE key_id = {key} AND branch_id = ${b} AND tx_id <= ${t})"
                ),
                format!(
                    "(SELECT {VCOLS} FROM versions_history WHERE key_id = {key} AND branch_id = ${b} \
                     AND tx_id <= ${t} ORDER BY tx_id DESC LIMIT 1)"
                ),
            ]
        })
        .collect();
    format!(
        "SELECT {VCOLS} FROM ({}) v ORDER BY tx_id DESC LIMIT 1",
        parts.join(" UNION ALL ")
    )
}

fn lineage_params(lineage: &Lineage) -> Vec<i64> {
    lineage
        .steps
        .iter()
        .flat_map(|s| [s.branch, s.upto as i64])
        .collect()
}

impl PostgresBackend {
    /// Connect to `url` (`postgres://USER@HOST[:PORT]/DB` or a key-value
    /// string such as `host=... dbname=...`) and bring the schema up to date.
    /// The password comes from the string, `PGPASSWORD` or `~/.pgpass`, and
    /// never appears in messages.
    pub fn open(url: &str) -> Result<PostgresBackend> {
        let (url, tls) = super::pg_tls::split(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            Error::Database(format!("not a valid PostgreSQL connection string: {e}"))
        })?;
        if config.get_user().is_none() {
            if let Ok(u) = std::env::var("PGUSER").or_else(|_| std::env::var("USER")) {
                config.user(&u);
            }
        }
        let location = describe(&config);
        if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(&p);
            } else {
                let file = std::env::var_os("PGPASSFILE")
                    .map(std::path::PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass"))
                    });
                if let Some(text) = file.and_then(|f| std::fs::read_to_string(f).ok()) {
                    let host = match config.get_hosts().first() {
                        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                        _ => "localhost".to_string(),
                    };
                    let port = config.get_ports().first().copied().unwrap_or(5432);
                    if let Some(p) = pgpass_lookup(
                        &text,
                        &host,
                        port,
                        config.get_dbname().unwrap_or(""),
                        config.get_user().unwrap_or(""),
                    ) {
                        config.password(&p);
                    }
                }
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        // TLS over a Unix socket makes no sense (and has no host name to
        // check): like libpq, use it only over TCP.
        let mut tls = tls;
        if !config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, tokio_postgres::config::Host::Tcp(_)))
            && !config.get_hosts().is_empty()
        {
            tls.mode = super::pg_tls::SslMode::Disable;
        }
        config.ssl_mode(match tls.mode {
            super::pg_tls::SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            super::pg_tls::SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let connect_err = |e: PgError| {
            let reason = match e.as_db_error() {
                Some(db) => db.message().to_string(),
                None => {
                    // The driver's message is terse ("error performing TLS
                    // handshake"): add the causes.
                    let mut text = e.to_string();
                    let mut cause = std::error::Error::source(&e);
                    while let Some(c) = cause {
                        let more = c.to_string();
                        if !text.contains(&more) {
                            text = format!("{text}: {more}");
                        }
                        cause = c.source();
                    }
                    text
                }
            };
            Error::Database(format!(
                "cannot connect to PostgreSQL at {location}: {reason}"
            ))
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Database(format!("{location}: cannot start the driver: {e}")))?;
        // The connection task runs on this runtime whenever a query is
        // waited on (`block_on`); it ends when the backend is dropped.
        let client = match super::pg_tls::connector(&tls)? {
            Some(connector) => {
                let (client, connection) = rt
                    .block_on(config.connect(connector))
                    .map_err(connect_err)?;
                rt.spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            None => {
                let (client, connection) =
                    rt.block_on(config.connect(NoTls)).map_err(connect_err)?;
                rt.spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        let mut me = PostgresBackend {
            conn: Conn {
                rt,
                client,
                stmts: HashMap::new(),
                loc: location.clone(),
            },
            location,
            key_ids: HashMap::new(),
            missing: HashMap::new(),
            seen_head: 0,
            reads: None,
        };
        me.migrate()?;
        Ok(me)
    }

    pub(super) fn err(&self) -> impl Fn(PgError) -> Error + '_ {
        pg_err(&self.location)
    }

    fn migrate(&mut self) -> Result<()> {
        // The role `dbos_reader` (migration 0003) belongs to the whole
        // cluster, not to one database: when databases of one server
        // migrate at once, one may wait for another's uncommitted role and
        // then miss it ("already exists", or "does not exist" through a
        // catalog snapshot taken before the other committed). A new
        // transaction sees the committed role, so try again.
        let mut attempt = 0;
        loop {
            match self.migrate_once() {
                Err(Error::Database(m)) if attempt < 5 && m.contains("dbos_reader") => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
                }
                other => return other,
            }
        }
    }

    /// Apply the pending migrations in one transaction (see `migrate`).
    fn migrate_once(&mut self) -> Result<()> {
        let loc = self.location.clone();
        let latest = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
        self.conn.in_tx(|c| {
            c.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
            c.batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY, name text NOT NULL, applied_us bigint NOT NULL)",
            )?;
            let found: Option<i32> = c
                .query("SELECT max(version) FROM schema_migrations", &[])?
                .first()
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(c.err())?
                .flatten();
            let found = found.unwrap_or(0) as u32;
            if found > latest {
                return Err(Error::SchemaTooNew {
                    location: loc.clone(),
                    found,
                    supported: latest,
                });
            }
            for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
                c.rt.block_on(c.client.batch_execute(sql)).map_err(|err| {
                    let text = err
                        .as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| err.to_string());
                    // SQLSTATE 58P01 (undefined_file): the extension's control
                    // file is missing, i.e. the package is not installed.
                    let missing = err.code()
                        == Some(&tokio_postgres::error::SqlState::UNDEFINED_FILE)
                        || text.contains("is not available");
                    if missing && text.contains("extension") {
                        Error::Database(format!(
                            "{loc}: the periods extension is not installed on the server \
                             (Debian: apt install postgresql-15-periods): {text}"
                        ))
                    } else {
                        Error::Database(format!(
                            "{loc}: migration {version:04}_{name} failed: {text}"
                        ))
                    }
                })?;
                c.execute(
                    "INSERT INTO schema_migrations(version, name, applied_us) VALUES ($1, $2, $3)",
                    &[
                        &(*version as i32),
                        name,
                        &chrono::Utc::now().timestamp_micros(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    pub(super) fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        self.conn.query(sql, params)
    }

    /// Remember that transaction `id` is committed.
    fn saw(&mut self, id: TxId) {
        self.seen_head = self.seen_head.max(id);
    }

    /// Remember that a key is absent: every transaction this connection
    /// had seen committed before it looked (`bound`) came before the key.
    fn note_missing(&mut self, space: Space, path: &str, bound: TxId) {
        if self.missing.len() >= MISSING_KEYS_MAX {
            self.missing.clear();
        }
        self.missing.insert((space, path.to_string()), bound);
    }

    fn note_key(&mut self, space: Space, path: String, id: i64) {
        self.missing.remove(&(space, path.clone()));
        self.key_ids.insert((space, path), id);
    }

    /// True when the key can have no version visible in `lineage`, without
    /// asking the server. A key is interned in the commit that first writes
    /// it, after its parent directory's key (keys are never removed), so a
    /// key (or an ancestor's key) found absent at a moment when transaction
    /// `bound` was known committed has no version with an id up to `bound`:
    /// the commit creating it takes the commit lock after `bound`'s commit
    /// released it. Every step of a lineage reads ids up to its first.
    fn known_missing(&self, space: Space, path: &str, lineage: &Lineage) -> bool {
        if self.missing.is_empty() {
            return false;
        }
        let upto = lineage.steps.iter().map(|s| s.upto).max().unwrap_or(0);
        let absent = |p: &str| {
            self.missing
                .get(&(space, p.to_string()))
                .is_some_and(|bound| *bound >= upto)
        };
        if absent(path) {
            return true;
        }
        if space != Space::File {
            return false;
        }
        let mut p = path;
        while p != "/" {
            let cut = p.rfind('/').unwrap_or(0);
            p = if cut == 0 { "/" } else { &p[..cut] };
            if self.key_ids.contains_key(&(space, p.to_string())) {
                return false;
            }
            if absent(p) {
                return true;
            }
        }
        false
    }

    fn key_id(&mut self, space: Space, path: &str) -> Result<Option<i64>> {
        if let Some(id) = self.key_ids.get(&(space, path.to_string())) {
            return Ok(Some(*id));
        }
        let bound = self.seen_head;
        let rows = self.query(
            "SELECT id FROM keys WHERE space = $1 AND path = $2",
            &[&space.as_str(), &path],
        )?;
        let id: Option<i64> = match rows.first() {
            Some(r) => Some(r.try_get(0).map_err(self.err())?),
            None => None,
        };
        match id {
            Some(id) => self.note_key(space, path.to_string(), id),
            None => self.note_missing(space, path, bound),
        }
        Ok(id)
    }

    fn read_by_key(&mut self, key: i64, lineage: &Lineage) -> Result<Option<VersionRecord>> {
        let sql = point_read_sql("$1", lineage.steps.len(), 2);
        let mut p: Vec<i64> = vec![key];
        p.extend(lineage_params(lineage));
        let refs: Vec<Param<'_>> = p.iter().map(|v| v as Param<'_>).collect();
        let rows = self.query(&sql, &refs)?;
        match rows.first() {
            Some(r) => {
                let (tx, kind, raw) = raw_from_row(r, 0).map_err(self.err())?;
                Ok(Some(decode_version(tx, kind, raw)?))
            }
            None => Ok(None),
        }
    }

    /// A key's id and its visible version in one round trip.
    fn read_by_path(
        &mut self,
        lineage: &Lineage,
        space: Space,
        path: &str,
    ) -> Result<Option<VersionRecord>> {
        let inner = point_read_sql("k.id", lineage.steps.len(), 3);
        let sql = format!(
            "SELECT k.id, v.* FROM keys k LEFT JOIN LATERAL ({inner}) v ON true \
             WHERE k.space = $1 AND k.path = $2"
        );
        let p = lineage_params(lineage);
        let space_name = space.as_str();
        let mut refs: Vec<Param<'_>> = vec![&space_name, &path];
        refs.extend(p.iter().map(|v| v as Param<'_>));
        let bound = self.seen_head;
        let rows = self.query(&sql, &refs)?;
        let Some(r) = rows.first() else {
            self.note_missing(space, path, bound);
            return Ok(None);
        };
        let id: i64 = r.try_get(0).map_err(self.err())?;
        let found: Option<i64> = r.try_get(1).map_err(self.err())?;
        let out = match found {
            Some(_) => {
                let (tx, kind, raw) = raw_from_row(r, 1).map_err(self.err())?;
                Some(decode_version(tx, kind, raw)?)
            }
            None => None,
        };
        self.note_key(space, path.to_string(), id);
        Ok(out)
    }

    /// Existing keys selected by `filter` (an SQL condition on `k` using
    /// `$1`), each with its visible version, in one round trip.
    fn existing_where(
        &mut self,
        filter: &str,
        arg: Param<'_>,
        lineage: &Lineage,
        name_col: &str,
    ) -> Result<Vec<(String, VersionRecord)>> {
        let inner = point_read_sql("k.id", lineage.steps.len(), 2);
        let sql = format!(
            "SELECT k.{name_col}, v.* FROM keys k CROSS JOIN LATERAL ({inner}) v WHERE {filter} AND v.kind <> 0"
        );
        let p = lineage_params(lineage);
        let mut refs: Vec<Param<'_>> = vec![arg];
        refs.extend(p.iter().map(|v| v as Param<'_>));
        let rows = self.query(&sql, &refs)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let name: String = r.try_get(0).map_err(self.err())?;
            let (tx, kind, raw) = raw_from_row(r, 1).map_err(self.err())?;
            out.push((name, decode_version(tx, kind, raw)?));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// Intern keys, one depth of the tree at a time: `$3` names each key's
/// parent directory (NULL: none), found among the keys, so a level sees the
/// one before (statements of a pipeline run in order). A key whose parent
/// is missing gets no parent id, which its space forbids for files below
/// the root only in our own code: the versions statement then fails on
/// its children, never silently.
const KEYS_SQL: &str = "INSERT INTO keys(space, path, parent_id, name) \
     SELECT q.space, q.path, \
     (SELECT p.id FROM keys p WHERE p.space = 'file' AND p.path = q.parent), q.name \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS q(space, path, parent, name) \
     WHERE q.parent IS NULL OR EXISTS (SELECT 1 FROM keys p WHERE p.space = 'file' AND p.path = q.parent) \
     ON CONFLICT (space, path) DO NOTHING RETURNING id, space, path";

/// Store chunks and give the ids of every chunk named in `$5`: the new ones
/// from the insert, the others (stored before, or by someone else) looked
/// up; the statement's snapshot does not see its own inserts, so no chunk
/// comes back twice.
const CHUNKS_SQL: &str = "WITH ins AS (INSERT INTO chunks(hash, size, codec, data) \
     SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::smallint[], $4::bytea[]) \
     ON CONFLICT (hash) DO NOTHING RETURNING id, hash) \
     SELECT id, hash FROM ins \
     UNION ALL SELECT c.id, c.hash FROM \
     (SELECT q.hash FROM unnest($5::bytea[]) AS q(hash) EXCEPT SELECT hash FROM ins) m \
     JOIN chunks c ON c.hash = m.hash";

/// The head (id, time, hash; NULLs when there is none), the transaction's
/// start time, and the first key read or written (`$1`, `$2`), or child of
/// a listed directory (`$5`), with a version on branch `$3` newer than the
/// snapshot `$4`. The state table holds each key's newest version per
/// branch, so a newer version than the snapshot is found there. The check
/// runs only when the head moved past the snapshot.
const HEAD_SQL: &str = "SELECT h.id, h.time_us, h.hash, \
     (extract(epoch FROM transaction_timestamp()) * 1000000)::bigint, c.path, c.tx_id \
     FROM (SELECT 1) AS one \
     LEFT JOIN (SELECT id, time_us, hash FROM transactions ORDER BY id DESC LIMIT 1) h ON true \
     LEFT JOIN LATERAL (\
       (SELECT k.path, v.tx_id FROM unnest($1::text[], $2::text[]) AS q(space, path) \
        JOIN keys k ON k.space = q.space AND k.path = q.path \
        JOIN versions v ON v.key_id = k.id \
        WHERE h.id > $4 AND v.branch_id = $3 AND v.tx_id > $4 LIMIT 1) \
       UNION ALL \
       (SELECT k.path, v.tx_id FROM keys d JOIN keys k ON k.parent_id = d.id \
        JOIN versions v ON v.key_id = k.id \
        WHERE h.id > $4 AND d.space = 'file' AND d.path = ANY($5::text[]) \
        AND v.branch_id = $3 AND v.tx_id > $4 LIMIT 1) \
       LIMIT 1) c ON true";

/// Parameters of one `versions_sql` statement.
const VERSION_PARAMS: usize = 14;

/// Insert versions, one row per element of the arrays from `$first` on:
/// key id (NULL: looked up by space and path; a key that does not exist
/// fails the statement, `key_id` being NOT NULL), space, path, branch,
/// transaction, then the columns. With `upsert` the row replaces the key's
/// version on its branch (periods moves the replaced row to history);
/// without, the keys must be new (interned by this very transaction), which
/// spares the conflict check.
fn versions_sql(first: usize, upsert: bool) -> String {
    let p = |i: usize| format!("${}", first + i);
    let mut sql = format!(
        "INSERT INTO versions(key_id, branch_id, tx_id, kind, mode, uid, gid, size, mtime_ns, digest, manifest, value) \
         SELECT COALESCE(q.key_id, (SELECT k.id FROM keys k WHERE k.space = q.space AND k.path = q.path)), \
         q.branch_id, q.tx_id, q.kind, q.mode, q.uid, q.gid, q.size, q.mtime_ns, q.digest, q.manifest, q.value \
         FROM unnest({}::bigint[], {}::text[], {}::text[], {}::bigint[], {}::bigint[], {}::smallint[], \
         {}::bigint[], {}::bigint[], {}::bigint[], {}::bigint[], {}::bigint[], {}::bytea[], {}::bytea[], {}::text[]) \
         AS q(key_id, space, path, branch_id, tx_id, kind, mode, uid, gid, size, mtime_ns, digest, manifest, value)",
        p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10), p(11), p(12), p(13)
    );
    if upsert {
        sql.push_str(
            " ON CONFLICT (key_id, branch_id) DO UPDATE SET tx_id = EXCLUDED.tx_id, kind = EXCLUDED.kind, \
             mode = EXCLUDED.mode, uid = EXCLUDED.uid, gid = EXCLUDED.gid, size = EXCLUDED.size, \
             mtime_ns = EXCLUDED.mtime_ns, digest = EXCLUDED.digest, manifest = EXCLUDED.manifest, \
             value = EXCLUDED.value",
        );
    }
    sql
}

/// A commit's rows in one statement: the versions of keys it interned
/// (`$1`..), of the others (`$15`..), its log rows in order (`$29`..`$33`)
/// and its transaction row (`$34`..`$43`).
fn data_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "WITH vn AS ({}), vu AS ({}), \
             l AS (INSERT INTO log_entries(branch_id, tx_id, time_us, source, severity, message, process_id) \
             SELECT $35, $34, q.time_us, q.source, q.severity, q.message, q.process_id \
             FROM unnest($29::bigint[], $30::text[], $31::smallint[], $32::text[], $33::bigint[]) \
             WITH ORDINALITY AS q(time_us, source, severity, message, process_id, ord) ORDER BY q.ord) \
             INSERT INTO transactions(id, branch_id, time_us, author, host, command, message, merge_branch_id, merge_tx, hash) \
             VALUES ($34, $35, $36, $37, $38, $39, $40, $41, $42, $43)",
            versions_sql(1, false),
            versions_sql(1 + VERSION_PARAMS, true)
        )
    })
}

const LOCK_SQL: &str = "SELECT pg_advisory_lock($1)";
/// A commit's transaction. Its statements have the same shape every time
/// and plan the same whatever their arrays hold, so they use their generic
/// plan from the first run: planning them afresh (the server's default for
/// a prepared statement's first five runs and whenever it guesses a custom
/// plan is cheaper) cost more than running them.
const BEGIN_SQL: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";
const UNLOCK_SQL: &str = "SELECT pg_advisory_unlock($1)";

/// Keys to intern at one depth of the tree, as statement arrays.
#[derive(Default)]
struct KeyLevel<'a> {
    spaces: Vec<&'static str>,
    paths: Vec<&'a str>,
    parents: Vec<Option<&'a str>>,
    names: Vec<&'a str>,
}

/// A key's parent directory (file keys but the root), its name and depth.
fn key_parts(space: Space, path: &str) -> (Option<&str>, &str, usize) {
    if space == Space::File && path != "/" {
        let cut = path.rfind('/').unwrap_or(0);
        let parent = if cut == 0 { "/" } else { &path[..cut] };
        (Some(parent), &path[cut + 1..], path.matches('/').count())
    } else {
        (None, if path == "/" { "" } else { path }, 0)
    }
}

/// The keys `writes` need that `known` does not vouch for, each with its
/// unknown ancestors, by depth (parents first).
fn plan_keys<'a>(
    writes: impl Iterator<Item = (Space, &'a str)>,
    known: impl Fn(Space, &str) -> bool,
) -> Vec<KeyLevel<'a>> {
    let mut levels: BTreeMap<usize, KeyLevel<'a>> = BTreeMap::new();
    let mut seen: HashSet<(Space, &str)> = HashSet::new();
    for (space, path) in writes {
        let mut path = path;
        loop {
            if known(space, path) || !seen.insert((space, path)) {
                break;
            }
            let (parent, name, depth) = key_parts(space, path);
            let l = levels.entry(depth).or_default();
            l.spaces.push(space.as_str());
            l.paths.push(path);
            l.parents.push(parent);
            l.names.push(name);
            match parent {
                Some(p) => path = p,
                None => break,
            }
        }
    }
    levels.into_values().collect()
}

/// Version rows as statement arrays (`versions_sql`'s parameters).
#[derive(Default)]
struct VersionRows<'a> {
    key_ids: Vec<Option<i64>>,
    spaces: Vec<&'static str>,
    paths: Vec<&'a str>,
    branches: Vec<i64>,
    txs: Vec<i64>,
    kinds: Vec<i16>,
    modes: Vec<i64>,
    uids: Vec<i64>,
    gids: Vec<i64>,
    sizes: Vec<i64>,
    mtimes: Vec<i64>,
    digests: Vec<Option<Vec<u8>>>,
    manifests: Vec<Option<Vec<u8>>>,
    values: Vec<Option<&'a str>>,
}

impl<'a> VersionRows<'a> {
    /// Add `w` as written by `tx` on `branch` (`key`: its key's id when
    /// known); `chunk_id` gives the ids of the chunks its content references.
    fn push(
        &mut self,
        key: Option<i64>,
        branch: BranchId,
        tx: TxId,
        w: &'a Write,
        mut chunk_id: impl FnMut(&ChunkRef) -> Result<ChunkId>,
    ) -> Result<()> {
        let c = columns(&w.entry);
        let manifest = match c.chunks {
            Some(chunks) => {
                let ids = chunks
                    .iter()
                    .map(&mut chunk_id)
                    .collect::<Result<Vec<_>>>()?;
                Some(encode_manifest(&ids))
            }
            None => None,
        };
        self.key_ids.push(key);
        self.spaces.push(w.space.as_str());
        self.paths.push(&w.path);
        self.branches.push(branch);
        self.txs.push(tx as i64);
        self.kinds.push(c.kind as i16);
        self.modes.push(i64::from(c.meta.mode));
        self.uids.push(i64::from(c.meta.uid));
        self.gids.push(i64::from(c.meta.gid));
        self.sizes.push(c.size as i64);
        self.mtimes.push(c.meta.mtime_ns);
        self.digests.push(c.digest);
        self.manifests.push(manifest);
        self.values.push(c.value);
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    fn params(&self) -> Vec<Param<'_>> {
        vec![
            &self.key_ids,
            &self.spaces,
            &self.paths,
            &self.branches,
            &self.txs,
            &self.kinds,
            &self.modes,
            &self.uids,
            &self.gids,
            &self.sizes,
            &self.mtimes,
            &self.digests,
            &self.manifests,
            &self.values,
        ]
    }
}

/// What a commit writes.
struct CommitJob<'a> {
    branch: BranchId,
    snapshot: TxId,
    reads: &'a [(Space, String)],
    listed_dirs: &'a [String],
    writes: &'a [Write],
    chunks: &'a [EncodedChunk],
    logs: &'a [LogEntry],
    meta: &'a CommitMeta,
    host: &'a str,
}

/// The distinct chunk hashes `writes` reference that are not stored yet.
fn pending_hashes(writes: &[Write]) -> Vec<Hash> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for w in writes {
        if let Some(Entry::File { content, .. }) = &w.entry {
            for c in content.chunks.iter() {
                if let ChunkRef::Pending(h) = c {
                    if seen.insert(*h) {
                        out.push(*h);
                    }
                }
            }
        }
    }
    out
}

/// The stored id of a chunk: its own, or the one its pending content got
/// when this commit stored it.
fn chunk_id(chunk_ids: &HashMap<Hash, ChunkId>, c: &ChunkRef) -> Result<ChunkId> {
    match c {
        ChunkRef::Stored(id) => Ok(*id),
        ChunkRef::Pending(h) => chunk_ids
            .get(h)
            .copied()
            .ok_or_else(|| corrupt("a pending chunk was never stored")),
    }
}

/// The transaction's metadata and hash once its id and time are known.
fn tx_info_for(job: &CommitJob<'_>, id: TxId, time_us: i64, prev_hash: &Hash) -> TxInfo {
    let mut info = TxInfo {
        id,
        branch_id: job.branch,
        time_us,
        author: job.meta.author.clone(),
        host: job.host.to_string(),
        command: job.meta.command.clone(),
        message: job.meta.message.clone(),
        merge: job.meta.merge,
        hash: [0u8; 32],
    };
    info.hash = writes_hash(prev_hash, &info, job.writes, job.logs);
    info
}

impl PostgresBackend {
    /// Carry the read cache over commit `id` of `job`, made right after its
    /// snapshot (see `ReadCache`).
    fn advance_reads(&mut self, job: &CommitJob<'_>, id: TxId, chunk_ids: &HashMap<Hash, ChunkId>) {
        let Some(mut cache) = self.reads.take() else {
            return;
        };
        let from = cache.lineage.steps.first();
        if from.map(|s| (s.branch, s.upto)) != Some((job.branch, job.snapshot))
            || cache.entries.len() + job.writes.len() > READ_CACHE_MAX
        {
            return;
        }
        for w in job.writes {
            // The version exactly as a read would give it back.
            let c = columns(&w.entry);
            let manifest = match c.chunks {
                Some(chunks) => {
                    let ids: Option<Vec<ChunkId>> = chunks
                        .iter()
                        .map(|r| match r {
                            ChunkRef::Stored(id) => Some(*id),
                            ChunkRef::Pending(h) => chunk_ids.get(h).copied(),
                        })
                        .collect();
                    match ids {
                        Some(ids) => Some(encode_manifest(&ids)),
                        None => return,
                    }
                }
                None => None,
            };
            let raw = RawVersion {
                mode: c.meta.mode,
                uid: c.meta.uid,
                gid: c.meta.gid,
                size: c.size as i64,
                mtime_ns: c.meta.mtime_ns,
                digest: c.digest,
                manifest,
                value: c.value.map(str::to_string),
            };
            let Ok(v) = decode_version(id, c.kind, raw) else {
                return;
            };
            cache.entries.insert((w.space, w.path.clone()), Some(v));
        }
        cache.lineage.steps[0].upto = id;
        self.reads = Some(cache);
    }

    /// Give up an open commit: roll back, and free the lock if held.
    fn release(&mut self, unlock: bool) {
        let mut steps = vec![Step::Simple("ROLLBACK")];
        if unlock {
            if let Ok(s) = self.conn.stmt(UNLOCK_SQL) {
                steps.push(Step::Query(s, vec![&COMMIT_LOCK]));
            }
        }
        let _ = self.conn.pipeline(&steps);
    }

    /// One commit in two pipelined round trips:
    ///
    /// 1. `pg_advisory_lock`, `BEGIN`, the keys not known to exist (a
    ///    statement per depth), the chunks, then the head (newest id, its
    ///    time and hash), the transaction's start time and the first
    ///    conflicting write since the snapshot;
    /// 2. with the id (head + 1), time (start time, never before the head's)
    ///    and hash computed here: versions, log rows and the transaction row
    ///    in one statement, `COMMIT`, `pg_advisory_unlock`.
    ///
    /// Any failure rolls everything back. With `begun`, the caller already
    /// holds the lock in an open transaction (bootstrap).
    fn commit_tx(&mut self, job: &CommitJob<'_>, begun: bool) -> Result<TxInfo> {
        let lock = self.conn.stmt(LOCK_SQL)?;
        let keys_st = self.conn.stmt(KEYS_SQL)?;
        let chunks_st = self.conn.stmt(CHUNKS_SQL)?;
        let head_st = self.conn.stmt(HEAD_SQL)?;
        let data_st = self.conn.stmt(data_sql())?;
        let unlock = self.conn.stmt(UNLOCK_SQL)?;

        let key_ids = &self.key_ids;
        let levels = plan_keys(
            job.writes.iter().map(|w| (w.space, w.path.as_str())),
            |s, p| key_ids.contains_key(&(s, p.to_string())),
        );
        let c_hashes: Vec<&[u8]> = job.chunks.iter().map(|c| &c.hash[..]).collect();
        let c_sizes: Vec<i64> = job.chunks.iter().map(|c| i64::from(c.size)).collect();
        let c_codecs: Vec<i16> = job.chunks.iter().map(|c| i16::from(c.codec)).collect();
        let c_data: Vec<&[u8]> = job.chunks.iter().map(|c| &c.data[..]).collect();
        let pending = pending_hashes(job.writes);
        let pending_refs: Vec<&[u8]> = pending.iter().map(|h| &h[..]).collect();
        let mut v_spaces: Vec<&str> = Vec::new();
        let mut v_paths: Vec<&str> = Vec::new();
        for (s, p) in job.reads {
            v_spaces.push(s.as_str());
            v_paths.push(p);
        }
        for w in job.writes {
            v_spaces.push(w.space.as_str());
            v_paths.push(&w.path);
        }
        let dirs: Vec<&str> = job.listed_dirs.iter().map(String::as_str).collect();
        let snapshot = job.snapshot as i64;

        let mut steps: Vec<Step<'_>> = Vec::new();
        if !begun {
            steps.push(Step::Query(lock, vec![&COMMIT_LOCK]));
            steps.push(Step::Simple(BEGIN_SQL));
        }
        let first_level = steps.len();
        for l in &levels {
            steps.push(Step::Query(
                keys_st.clone(),
                vec![&l.spaces, &l.paths, &l.parents, &l.names],
            ));
        }
        let chunks_at = (!c_hashes.is_empty() || !pending.is_empty()).then(|| {
            steps.push(Step::Query(
                chunks_st,
                vec![&c_hashes, &c_sizes, &c_codecs, &c_data, &pending_refs],
            ));
            steps.len() - 1
        });
        steps.push(Step::Query(
            head_st,
            vec![&v_spaces, &v_paths, &job.branch, &snapshot, &dirs],
        ));
        let head_at = steps.len() - 1;
        let results = self.conn.pipeline(&steps);
        drop(steps);
        let holds_lock = begun || results.first().is_some_and(|r| r.is_ok());
        let mut rows = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(v) => rows.push(v),
                Err(e) => {
                    self.release(holds_lock);
                    return Err(e);
                }
            }
        }

        // Keys interned: remembered once the commit is through.
        let mut new_keys = Vec::new();
        for r in rows[first_level..first_level + levels.len()]
            .iter()
            .flatten()
        {
            let got = (|| -> std::result::Result<(i64, String, String), PgError> {
                Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
            })();
            match got {
                Ok((id, space, path)) => {
                    if let Some(space) = Space::from_name(&space) {
                        new_keys.push((space, path, id));
                    }
                }
                Err(e) => {
                    self.release(true);
                    return Err(pg_err(&self.location)(e));
                }
            }
        }
        let mut chunk_ids: HashMap<Hash, ChunkId> = HashMap::new();
        if let Some(at) = chunks_at {
            for r in &rows[at] {
                let got = (|| -> std::result::Result<(i64, Vec<u8>), PgError> {
                    Ok((r.try_get(0)?, r.try_get(1)?))
                })();
                match got {
                    Ok((id, h)) => {
                        if let Ok(h) = Hash::try_from(h) {
                            chunk_ids.insert(h, id);
                        }
                    }
                    Err(e) => {
                        self.release(true);
                        return Err(pg_err(&self.location)(e));
                    }
                }
            }
        }
        // A chunk stored meanwhile by a transaction the statement's snapshot
        // did not see (a concurrent `store_chunks`): look it up again.
        let unknown: Vec<&[u8]> = pending
            .iter()
            .filter(|h| !chunk_ids.contains_key(*h))
            .map(|h| &h[..])
            .collect();
        if !unknown.is_empty() {
            match self.query(
                "SELECT id, hash FROM chunks WHERE hash = ANY($1::bytea[])",
                &[&unknown],
            ) {
                Ok(found) => {
                    for r in &found {
                        let id: Option<i64> = r.try_get(0).ok();
                        let h: Option<Vec<u8>> = r.try_get(1).ok();
                        if let (Some(id), Some(Ok(h))) = (id, h.map(Hash::try_from)) {
                            chunk_ids.insert(h, id);
                        }
                    }
                }
                Err(e) => {
                    self.release(true);
                    return Err(e);
                }
            }
        }

        let head = (|| -> Result<(TxId, i64, Hash, i64)> {
            let e = pg_err(&self.location);
            let r = rows[head_at]
                .first()
                .ok_or_else(|| corrupt("the head query returned no row"))?;
            if let (Some(path), Some(tx)) = (
                r.try_get::<_, Option<String>>(4).map_err(&e)?,
                r.try_get::<_, Option<i64>>(5).map_err(&e)?,
            ) {
                return Err(Error::Conflict {
                    path,
                    tx: tx as TxId,
                    snapshot: job.snapshot,
                });
            }
            let id: Option<i64> = r.try_get(0).map_err(&e)?;
            let time: Option<i64> = r.try_get(1).map_err(&e)?;
            let hash: Option<Vec<u8>> = r.try_get(2).map_err(&e)?;
            let started: i64 = r.try_get(3).map_err(&e)?;
            Ok((
                id.unwrap_or(0) as TxId,
                time.unwrap_or(0),
                hash.and_then(|h| h.try_into().ok()).unwrap_or([0u8; 32]),
                started,
            ))
        })();
        let (head, head_time, prev_hash, started) = match head {
            Ok(h) => h,
            Err(e) => {
                self.release(true);
                return Err(e);
            }
        };
        self.saw(head);
        let id = head + 1;
        // The transaction's start time (periods stamps versions with it),
        // taken after the commit lock, so it follows commit order.
        let info = tx_info_for(job, id, started.max(head_time), &prev_hash);

        // Versions of the keys this transaction interned need no conflict
        // check; the others replace the key's version on the branch.
        let fresh_ids: HashMap<(Space, &str), i64> = new_keys
            .iter()
            .map(|(s, p, id)| ((*s, p.as_str()), *id))
            .collect();
        let (mut fresh, mut versions) = (VersionRows::default(), VersionRows::default());
        for w in job.writes {
            let chunk = |c: &ChunkRef| chunk_id(&chunk_ids, c);
            let pushed = match fresh_ids.get(&(w.space, w.path.as_str())) {
                Some(key) => fresh.push(Some(*key), job.branch, id, w, chunk),
                None => {
                    let key = self.key_ids.get(&(w.space, w.path.clone())).copied();
                    versions.push(key, job.branch, id, w, chunk)
                }
            };
            if let Err(e) = pushed {
                self.release(true);
                return Err(e);
            }
        }
        let l_times: Vec<i64> = job.logs.iter().map(|l| l.time_us).collect();
        let l_sources: Vec<&str> = job.logs.iter().map(|l| l.source.as_str()).collect();
        let l_sev: Vec<i16> = job.logs.iter().map(|l| i16::from(l.severity)).collect();
        let l_msgs: Vec<&str> = job.logs.iter().map(|l| l.message.as_str()).collect();
        let l_procs: Vec<Option<i64>> = job
            .logs
            .iter()
            .map(|l| l.process_id.map(|p| p as i64))
            .collect();
        let tx_id = info.id as i64;
        let merge_branch = info.merge.map(|m| m.0);
        let merge_tx = info.merge.map(|m| m.1 as i64);
        let hash = &info.hash[..];
        let mut data = fresh.params();
        data.extend(versions.params());
        data.extend([
            &l_times as Param<'_>,
            &l_sources,
            &l_sev,
            &l_msgs,
            &l_procs,
            &tx_id,
            &info.branch_id,
            &info.time_us,
            &info.author,
            &info.host,
            &info.command,
            &info.message,
            &merge_branch,
            &merge_tx,
            &hash,
        ]);
        let steps = [
            Step::Query(data_st, data),
            Step::Simple("COMMIT"),
            Step::Query(unlock, vec![&COMMIT_LOCK]),
        ];
        let (results, sent) = self.conn.pipeline_sent(&steps);
        drop(steps);
        let mut results = results.into_iter();
        let mut next = || results.next().unwrap_or(Ok(Vec::new()));
        let (written, committed, unlocked) = (next(), next(), next());
        if written.is_err() || committed.is_err() {
            // A statement failed: the server rolled back at COMMIT (or
            // COMMIT was never sent). But once COMMIT went out on a
            // connection that then broke, nobody knows whether it arrived.
            let lost = sent >= 2 && self.conn.client.is_closed();
            self.release(unlocked.is_err());
            if lost {
                return Err(Error::Database(format!(
                    "{}: connection to PostgreSQL lost during COMMIT: the transaction may \
                     or may not have been applied; check `log` once the server is reachable",
                    self.location
                )));
            }
            return Err(match (written, committed) {
                (Err(e), _) | (_, Err(e)) => e,
                _ => corrupt("commit failed without an error"),
            });
        }
        if unlocked.is_err() {
            self.release(true);
        }
        if head == job.snapshot {
            self.advance_reads(job, id, &chunk_ids);
        }
        for (space, path, id) in new_keys {
            self.note_key(space, path, id);
        }
        self.saw(id);
        Ok(info)
    }
}

impl Backend for PostgresBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn head(&mut self) -> Result<TxId> {
        let rows = self.query("SELECT max(id) FROM transactions", &[])?;
        let v: Option<i64> = match rows.first() {
            Some(r) => r.try_get(0).map_err(self.err())?,
            None => None,
        };
        let head = v.unwrap_or(0) as TxId;
        self.saw(head);
        Ok(head)
    }

    fn branch_and_head(&mut self, name: &str) -> Result<(Option<BranchInfo>, TxId)> {
        let rows = self.query(
            &format!(
                "SELECT {BRANCH_COLS}, (SELECT max(id) FROM transactions) FROM (SELECT 1) AS one \
                 LEFT JOIN branches ON name = $1 AND deleted_us IS NULL"
            ),
            &[&name],
        )?;
        let r = rows
            .first()
            .ok_or_else(|| corrupt("the branch and head query returned no row"))?;
        let head: Option<i64> = r.try_get(5).map_err(self.err())?;
        let head = head.unwrap_or(0) as TxId;
        self.saw(head);
        let id: Option<i64> = r.try_get(0).map_err(self.err())?;
        let branch = match id {
            Some(_) => Some(branch_from_row(r).map_err(self.err())?),
            None => None,
        };
        Ok((branch, head))
    }

    fn bootstrap(&mut self, meta: &CommitMeta, host: &str, root: &Entry) -> Result<()> {
        let lock = self.conn.stmt(LOCK_SQL)?;
        let exists = self.conn.stmt("SELECT id FROM branches LIMIT 1")?;
        let results = self.conn.pipeline(&[
            Step::Query(lock, vec![&COMMIT_LOCK]),
            Step::Simple(BEGIN_SQL),
            Step::Query(exists, Vec::new()),
        ]);
        let holds_lock = results.first().is_some_and(|r| r.is_ok());
        let mut found = false;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(rows) => found |= i == 2 && !rows.is_empty(),
                Err(e) => {
                    self.release(holds_lock);
                    return Err(e);
                }
            }
        }
        if found {
            self.release(true);
            return Ok(());
        }
        let main = self.query(
            "INSERT INTO branches(name, parent_id, fork_tx, created_us) VALUES ('main', NULL, NULL, $1) RETURNING id",
            &[&chrono::Utc::now().timestamp_micros()],
        );
        let main: i64 = match main.and_then(|rows| {
            rows.first()
                .ok_or_else(|| corrupt("no id for the new main branch"))?
                .try_get(0)
                .map_err(self.err())
        }) {
            Ok(id) => id,
            Err(e) => {
                self.release(true);
                return Err(e);
            }
        };
        let writes = [Write {
            space: Space::File,
            path: "/".to_string(),
            entry: Some(root.clone()),
        }];
        let job = CommitJob {
            branch: main,
            snapshot: 0,
            reads: &[],
            listed_dirs: &[],
            writes: &writes,
            chunks: &[],
            logs: &[],
            meta,
            host,
        };
        self.commit_tx(&job, true)?;
        Ok(())
    }

    fn branches(&mut self) -> Result<Vec<BranchInfo>> {
        let rows = self.query(
            &format!("SELECT {BRANCH_COLS} FROM branches WHERE deleted_us IS NULL ORDER BY id"),
            &[],
        )?;
        rows.iter()
            .map(|r| branch_from_row(r).map_err(self.err()))
            .collect()
    }

    fn branch_by_name(&mut self, name: &str) -> Result<Option<BranchInfo>> {
        let rows = self.query(
            &format!("SELECT {BRANCH_COLS} FROM branches WHERE name = $1 AND deleted_us IS NULL"),
            &[&name],
        )?;
        rows.first()
            .map(|r| branch_from_row(r).map_err(self.err()))
            .transpose()
    }

    fn branch_by_id(&mut self, id: BranchId) -> Result<Option<BranchInfo>> {
        let rows = self.query(
            &format!("SELECT {BRANCH_COLS} FROM branches WHERE id = $1"),
            &[&id],
        )?;
        rows.first()
            .map(|r| branch_from_row(r).map_err(self.err()))
            .transpose()
    }

    fn create_branch(&mut self, name: &str, parent: BranchId, fork_tx: TxId) -> Result<BranchInfo> {
        let created = chrono::Utc::now().timestamp_micros();
        let rows = self.query(
            "INSERT INTO branches(name, parent_id, fork_tx, created_us) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
             (SELECT 1 FROM branches WHERE name = $1 AND deleted_us IS NULL) RETURNING id",
            &[&name, &parent, &(fork_tx as i64), &created],
        )?;
        let Some(r) = rows.first() else {
            return Err(Error::InvalidBranch {
                name: name.to_string(),
                reason: "a branch with that name already exists".to_string(),
            });
        };
        Ok(BranchInfo {
            id: r.try_get(0).map_err(self.err())?,
            name: name.to_string(),
            parent: Some(parent),
            fork_tx: Some(fork_tx),
            created_us: created,
        })
    }

    fn branch_head(&mut self, id: BranchId) -> Result<Option<TxId>> {
        let rows = self.query(
            "SELECT max(id) FROM transactions WHERE branch_id = $1",
            &[&id],
        )?;
        let v: Option<i64> = match rows.first() {
            Some(r) => r.try_get(0).map_err(self.err())?,
            None => None,
        };
        Ok(v.map(|v| v as TxId))
    }

    fn rename_branch(&mut self, id: BranchId, new_name: &str) -> Result<()> {
        let n = self.query(
            "UPDATE branches SET name = $1 WHERE id = $2 AND NOT EXISTS \
             (SELECT 1 FROM branches WHERE name = $1 AND deleted_us IS NULL) RETURNING id",
            &[&new_name, &id],
        )?;
        if n.is_empty() {
            return Err(Error::InvalidBranch {
                name: new_name.to_string(),
                reason: "a branch with that name already exists".to_string(),
            });
        }
        Ok(())
    }

    fn delete_branch(&mut self, id: BranchId) -> Result<()> {
        self.query(
            "UPDATE branches SET deleted_us = $1 WHERE id = $2 AND deleted_us IS NULL RETURNING id",
            &[&chrono::Utc::now().timestamp_micros(), &id],
        )?;
        Ok(())
    }

    fn last_merge(&mut self, into: BranchId, from: BranchId) -> Result<Option<(TxId, TxId)>> {
        let rows = self.query(
            "SELECT id, merge_tx FROM transactions WHERE branch_id = $1 AND merge_branch_id = $2 \
             ORDER BY id DESC LIMIT 1",
            &[&into, &from],
        )?;
        match rows.first() {
            Some(r) => Ok(Some((
                r.try_get::<_, i64>(0).map_err(self.err())? as TxId,
                r.try_get::<_, i64>(1).map_err(self.err())? as TxId,
            ))),
            None => Ok(None),
        }
    }

    fn merges_into(&mut self, branch: BranchId) -> Result<Vec<(TxId, BranchId, TxId)>> {
        let rows = self.query(
            "SELECT id, merge_branch_id, merge_tx FROM transactions \
             WHERE branch_id = $1 AND merge_branch_id IS NOT NULL ORDER BY id",
            &[&branch],
        )?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<_, i64>(0).map_err(self.err())? as TxId,
                    r.try_get(1).map_err(self.err())?,
                    r.try_get::<_, i64>(2).map_err(self.err())? as TxId,
                ))
            })
            .collect()
    }

    fn merged_upto(&mut self, branch: BranchId) -> Result<Option<TxId>> {
        let rows = self.query(
            "SELECT max(merge_tx) FROM transactions WHERE merge_branch_id = $1",
            &[&branch],
        )?;
        let v: Option<i64> = match rows.first() {
            Some(r) => r.try_get(0).map_err(self.err())?,
            None => None,
        };
        Ok(v.map(|v| v as TxId))
    }

    fn all_branches(&mut self) -> Result<Vec<BranchInfo>> {
        let rows = self.query(
            &format!("SELECT {BRANCH_COLS} FROM branches ORDER BY id"),
            &[],
        )?;
        rows.iter()
            .map(|r| branch_from_row(r).map_err(self.err()))
            .collect()
    }

    fn read(
        &mut self,
        lineage: &Lineage,
        space: Space,
        path: &str,
    ) -> Result<Option<VersionRecord>> {
        let key = (space, path.to_string());
        if let Some(c) = self.reads.as_ref().filter(|c| c.lineage == *lineage) {
            if let Some(v) = c.entries.get(&key) {
                return Ok(v.clone());
            }
        }
        let v = if let Some(k) = self.key_ids.get(&key) {
            let k = *k;
            self.read_by_key(k, lineage)?
        } else if self.known_missing(space, path, lineage) {
            None
        } else {
            self.read_by_path(lineage, space, path)?
        };
        let cache = match self.reads.take() {
            Some(c) if c.lineage == *lineage && c.entries.len() < READ_CACHE_MAX => c,
            _ => ReadCache {
                lineage: lineage.clone(),
                entries: HashMap::new(),
            },
        };
        let cache = self.reads.insert(cache);
        cache.entries.insert(key, v.clone());
        Ok(v)
    }

    fn children(&mut self, lineage: &Lineage, dir: &str) -> Result<Vec<(String, VersionRecord)>> {
        let Some(d) = self.key_id(Space::File, dir)? else {
            return Ok(Vec::new());
        };
        self.existing_where("k.parent_id = $1", &d, lineage, "name")
    }

    fn list_space(
        &mut self,
        lineage: &Lineage,
        space: Space,
    ) -> Result<Vec<(String, VersionRecord)>> {
        self.existing_where("k.space = $1", &space.as_str(), lineage, "path")
    }

    fn list_space_range(
        &mut self,
        lineage: &Lineage,
        space: Space,
        range: &KeyRange,
    ) -> Result<Vec<(String, VersionRecord)>> {
        // Byte order (COLLATE "C"), as keys sort everywhere else.
        let inner = point_read_sql("k.id", lineage.steps.len(), 3);
        let limit = match range.limit {
            Some(n) => format!(" LIMIT {n}"),
            None => String::new(),
        };
        let order = if range.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT k.path, v.* FROM keys k CROSS JOIN LATERAL ({inner}) v \
             WHERE k.space = $1 AND k.path COLLATE \"C\" >= $2 AND v.kind <> 0 \
             ORDER BY k.path COLLATE \"C\" {order}{limit}"
        );
        let space_name = space.as_str();
        let from = range.from.clone().unwrap_or_default();
        let p = lineage_params(lineage);
        let mut refs: Vec<Param<'_>> = vec![&space_name, &from];
        refs.extend(p.iter().map(|v| v as Param<'_>));
        let rows = self.query(&sql, &refs)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let key: String = r.try_get(0).map_err(self.err())?;
            let (tx, kind, raw) = raw_from_row(r, 1).map_err(self.err())?;
            out.push((key, decode_version(tx, kind, raw)?));
        }
        Ok(out)
    }

    fn history(
        &mut self,
        lineage: &Lineage,
        space: Space,
        path: &str,
    ) -> Result<Vec<VersionRecord>> {
        let Some(key) = self.key_id(space, path)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for step in &lineage.steps {
            let rows = self.query(
                &format!(
                    "SELECT {VCOLS} FROM (SELECT {VCOLS} FROM versions WHERE key_id = $1 AND branch_id = $2 AND tx_id <= $3 \
                     UNION ALL SELECT {VCOLS} FROM versions_history WHERE key_id = $1 AND branch_id = $2 AND tx_id <= $3) v \
                     ORDER BY tx_id DESC"
                ),
                &[&key, &step.branch, &(step.upto as i64)],
            )?;
            for r in &rows {
                let (tx, kind, raw) = raw_from_row(r, 0).map_err(self.err())?;
                out.push(decode_version(tx, kind, raw)?);
            }
        }
        Ok(out)
    }

    fn transactions(
        &mut self,
        lineage: &Lineage,
        before: Option<TxId>,
        limit: usize,
    ) -> Result<Vec<TxInfo>> {
        let mut out = Vec::new();
        for step in &lineage.steps {
            if out.len() >= limit {
                break;
            }
            let mut upto = step.upto;
            if let Some(b) = before {
                upto = upto.min(b.saturating_sub(1));
            }
            let rows = self.query(
                &format!(
                    "SELECT {TX_COLS} FROM transactions WHERE branch_id = $1 AND id <= $2 ORDER BY id DESC LIMIT $3"
                ),
                &[&step.branch, &(upto as i64), &((limit - out.len()).min(i64::MAX as usize) as i64)],
            )?;
            for r in &rows {
                out.push(tx_from_row(r).map_err(self.err())?);
            }
        }
        out.sort_by_key(|t| std::cmp::Reverse(t.id));
        out.truncate(limit);
        Ok(out)
    }

    fn tx_info(&mut self, id: TxId) -> Result<Option<TxInfo>> {
        let rows = self.query(
            &format!("SELECT {TX_COLS} FROM transactions WHERE id = $1"),
            &[&(id as i64)],
        )?;
        rows.first()
            .map(|r| tx_from_row(r).map_err(self.err()))
            .transpose()
    }

    fn tx_at_time(&mut self, time_us: i64) -> Result<Option<TxId>> {
        let rows = self.query(
            "SELECT max(id) FROM transactions WHERE time_us <= $1",
            &[&time_us],
        )?;
        let v: Option<i64> = match rows.first() {
            Some(r) => r.try_get(0).map_err(self.err())?,
            None => None,
        };
        Ok(v.map(|v| v as TxId))
    }

    fn tx_writes(&mut self, id: TxId) -> Result<Vec<Write>> {
        let rows = self.query(
            &format!(
                "SELECT k.space, k.path, v.* FROM (SELECT key_id, branch_id, {VCOLS} FROM versions WHERE tx_id = $1 \
                 UNION ALL SELECT key_id, branch_id, {VCOLS} FROM versions_history WHERE tx_id = $1) v \
                 JOIN keys k ON k.id = v.key_id \
                 WHERE v.branch_id = (SELECT branch_id FROM transactions WHERE id = $1) \
                 ORDER BY k.space, k.path"
            ),
            &[&(id as i64)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let space: String = r.try_get(0).map_err(self.err())?;
            let path: String = r.try_get(1).map_err(self.err())?;
            let (tx, kind, raw) = raw_from_row(r, 4).map_err(self.err())?;
            let space = Space::from_name(&space)
                .ok_or_else(|| corrupt(format!("unknown space {space}")))?;
            out.push(Write {
                space,
                path,
                entry: decode_version(tx, kind, raw)?.entry,
            });
        }
        Ok(out)
    }

    fn keys_written(
        &mut self,
        branch: BranchId,
        after: TxId,
        upto: TxId,
    ) -> Result<Vec<(Space, String)>> {
        let rows = self.query(
            "SELECT DISTINCT k.space, k.path FROM (SELECT key_id FROM versions WHERE branch_id = $1 AND tx_id > $2 AND tx_id <= $3 \
             UNION ALL SELECT key_id FROM versions_history WHERE branch_id = $1 AND tx_id > $2 AND tx_id <= $3) v \
             JOIN keys k ON k.id = v.key_id",
            &[&branch, &(after as i64), &(upto as i64)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let space: String = r.try_get(0).map_err(self.err())?;
            let path: String = r.try_get(1).map_err(self.err())?;
            let space = Space::from_name(&space)
                .ok_or_else(|| corrupt(format!("unknown space {space}")))?;
            out.push((space, path));
        }
        Ok(out)
    }

    fn read_chunk(&mut self, chunk: ChunkRef) -> Result<Vec<u8>> {
        let rows = match chunk {
            ChunkRef::Stored(id) => self.query(
                "SELECT hash, size, codec, data FROM chunks WHERE id = $1",
                &[&id],
            )?,
            ChunkRef::Pending(h) => self.query(
                "SELECT hash, size, codec, data FROM chunks WHERE hash = $1",
                &[&&h[..]],
            )?,
        };
        let r = rows
            .first()
            .ok_or_else(|| corrupt(format!("missing chunk {chunk:?}")))?;
        let hash: Vec<u8> = r.try_get(0).map_err(self.err())?;
        let size: i64 = r.try_get(1).map_err(self.err())?;
        let codec: i16 = r.try_get(2).map_err(self.err())?;
        let data: Vec<u8> = r.try_get(3).map_err(self.err())?;
        let hash: Hash = hash
            .try_into()
            .map_err(|_| corrupt("chunk hash of the wrong length"))?;
        decode_chunk(&hash, size as u32, codec as u8, &data)
    }

    fn store_chunks(&mut self, chunks: &[EncodedChunk]) -> Result<()> {
        let hashes: Vec<&[u8]> = chunks.iter().map(|c| &c.hash[..]).collect();
        let sizes: Vec<i64> = chunks.iter().map(|c| i64::from(c.size)).collect();
        let codecs: Vec<i16> = chunks.iter().map(|c| i16::from(c.codec)).collect();
        let data: Vec<&[u8]> = chunks.iter().map(|c| &c.data[..]).collect();
        self.conn.execute(
            "INSERT INTO chunks(hash, size, codec, data) \
             SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::smallint[], $4::bytea[]) \
             ON CONFLICT (hash) DO NOTHING",
            &[&hashes, &sizes, &codecs, &data],
        )?;
        Ok(())
    }

    fn commit(&mut self, req: CommitRequest) -> Result<TxInfo> {
        let job = CommitJob {
            branch: req.branch,
            snapshot: req.snapshot,
            reads: &req.reads,
            listed_dirs: &req.listed_dirs,
            writes: &req.writes,
            chunks: &req.chunks,
            logs: &req.logs,
            meta: &req.meta,
            host: &req.host,
        };
        self.commit_tx(&job, false)
    }

    fn logs(&mut self, lineage: &Lineage, filter: &LogFilter) -> Result<Vec<StoredLog>> {
        let limit = filter.limit.unwrap_or(usize::MAX).min(i64::MAX as usize);
        let mut out = Vec::new();
        for step in &lineage.steps {
            let rows = self.query(
                "SELECT id, tx_id, time_us, source, severity, message, process_id FROM log_entries \
                 WHERE branch_id = $1 AND tx_id <= $2 AND tx_id > $3 \
                 AND ($4::smallint IS NULL OR severity <= $4) AND ($5::text IS NULL OR source = $5) \
                 AND ($7::bigint IS NULL OR process_id = $7) ORDER BY id DESC LIMIT $6",
                &[
                    &step.branch,
                    &(step.upto as i64),
                    &(filter.after_tx.unwrap_or(0) as i64),
                    &filter.max_severity.map(i16::from),
                    &filter.source,
                    &(limit.saturating_sub(out.len()) as i64),
                    &filter.process_id.map(|p| p as i64),
                ],
            )?;
            for r in &rows {
                out.push(StoredLog {
                    id: r.try_get(0).map_err(self.err())?,
                    tx: r.try_get::<_, i64>(1).map_err(self.err())? as TxId,
                    entry: LogEntry {
                        time_us: r.try_get(2).map_err(self.err())?,
                        source: r.try_get(3).map_err(self.err())?,
                        severity: r.try_get::<_, i16>(4).map_err(self.err())? as u8,
                        message: r.try_get(5).map_err(self.err())?,
                        process_id: r
                            .try_get::<_, Option<i64>>(6)
                            .map_err(self.err())?
                            .map(|p| p as u64),
                    },
                });
            }
        }
        out.sort_by_key(|l| (l.tx, l.id));
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        Ok(out)
    }

    fn tag(&mut self, name: &str) -> Result<Option<(BranchId, TxId)>> {
        let rows = self.query(
            "SELECT branch_id, tx_id FROM tags WHERE name = $1",
            &[&name],
        )?;
        match rows.first() {
            Some(r) => Ok(Some((
                r.try_get(0).map_err(self.err())?,
                r.try_get::<_, i64>(1).map_err(self.err())? as TxId,
            ))),
            None => Ok(None),
        }
    }

    fn create_tag(&mut self, name: &str, branch: BranchId, tx: TxId) -> Result<()> {
        let rows = self.query(
            "INSERT INTO tags(name, branch_id, tx_id, created_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING RETURNING name",
            &[
                &name,
                &branch,
                &(tx as i64),
                &chrono::Utc::now().timestamp_micros(),
            ],
        )?;
        if rows.is_empty() {
            return Err(Error::InvalidBranch {
                name: name.to_string(),
                reason: "a tag with that name already exists".to_string(),
            });
        }
        Ok(())
    }

    fn tags(&mut self) -> Result<Vec<(String, BranchId, TxId)>> {
        let rows = self.query("SELECT name, branch_id, tx_id FROM tags ORDER BY name", &[])?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(self.err())?,
                    r.try_get(1).map_err(self.err())?,
                    r.try_get::<_, i64>(2).map_err(self.err())? as TxId,
                ))
            })
            .collect()
    }

    fn add_shell_history(&mut self, author: &str, branch: &str, line: &str) -> Result<()> {
        self.query(
            "INSERT INTO shell_history(time_us, author, branch, line) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&chrono::Utc::now().timestamp_micros(), &author, &branch, &line],
        )?;
        Ok(())
    }

    fn shell_history(&mut self, author: &str, limit: usize) -> Result<Vec<String>> {
        let rows = self.query(
            "SELECT line FROM (SELECT id, line FROM shell_history WHERE author = $1 ORDER BY id DESC LIMIT $2) h ORDER BY id",
            &[&author, &(limit.min(i64::MAX as usize) as i64)],
        )?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(self.err()))
            .collect()
    }

    fn export_branches(&mut self) -> Result<Vec<BranchRecord>> {
        self.copy_export_branches()
    }
    fn export_tags(&mut self) -> Result<Vec<TagRecord>> {
        self.copy_export_tags()
    }
    fn export_shell_history(&mut self, after: i64, limit: usize) -> Result<Vec<ShellLine>> {
        self.copy_export_shell_history(after, limit)
    }
    fn export_chunks(
        &mut self,
        after: ChunkId,
        limit: usize,
    ) -> Result<Vec<(ChunkId, EncodedChunk)>> {
        self.copy_export_chunks(after, limit)
    }
    fn import(&mut self, next: &mut dyn FnMut() -> Result<Option<ImportItem>>) -> Result<()> {
        self.copy_import(next)
    }
    fn import_finish(&mut self, branches: &[BranchRecord]) -> Result<()> {
        self.copy_import_finish(branches)
    }
    fn import_abort(&mut self) -> Result<()> {
        self.copy_import_abort()
    }
    fn dialect(&mut self) -> Result<crate::audit::Dialect> {
        self.audit_dialect()
    }
    fn query_readonly(
        &mut self,
        sql: &str,
        cancel: Option<fn() -> bool>,
    ) -> Result<crate::audit::SqlRows> {
        self.audit_query(sql, cancel)
    }
    fn stray_row(&mut self, from: TxId) -> Result<Option<(TxId, String)>> {
        self.audit_stray_row(from)
    }
    fn check_storage(&mut self) -> Result<Vec<String>> {
        self.storage_problems()
    }

    fn file_keys(&mut self) -> Result<Vec<super::KeyRow>> {
        self.audit_file_keys()
    }
}

// ----- whole-database copy (copy.rs): export rows, import them verbatim ----

/// Every table an import fills (`versions_history` is emptied with
/// `versions` by the periods extension).
const IMPORT_TABLES: &str =
    "versions, log_entries, tags, transactions, keys, chunks, shell_history, branches";
/// An import commits its batch once it holds this many rows ...
const IMPORT_BATCH_ROWS: usize = 5000;
/// ... or this many bytes of chunks.
const IMPORT_BATCH_BYTES: usize = 64 << 20;

/// An import batch: whole transactions, written with one statement per
/// table when the batch commits.
#[derive(Default)]
struct ImportBatch {
    txs: Vec<(TxInfo, Vec<Write>, Vec<StoredLog>)>,
    /// (branch, key) written in the batch: periods keeps one version of a
    /// row per database transaction, so a repeat starts a new batch.
    written: HashSet<(BranchId, Space, String)>,
    rows: usize,
    bytes: usize,
}

impl PostgresBackend {
    /// Store many chunks in one statement, remembering their ids.
    fn import_chunks(
        &mut self,
        chunks: &[EncodedChunk],
        ids: &mut HashMap<Hash, ChunkId>,
    ) -> Result<()> {
        let hashes: Vec<&[u8]> = chunks.iter().map(|c| &c.hash[..]).collect();
        let sizes: Vec<i64> = chunks.iter().map(|c| i64::from(c.size)).collect();
        let codecs: Vec<i16> = chunks.iter().map(|c| i16::from(c.codec)).collect();
        let data: Vec<&[u8]> = chunks.iter().map(|c| &c.data[..]).collect();
        let rows = self.query(
            "INSERT INTO chunks(hash, size, codec, data) \
             SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::smallint[], $4::bytea[]) \
             ON CONFLICT (hash) DO NOTHING RETURNING id, hash",
            &[&hashes, &sizes, &codecs, &data],
        )?;
        for r in &rows {
            let id: i64 = r.try_get(0).map_err(self.err())?;
            let h: Vec<u8> = r.try_get(1).map_err(self.err())?;
            let h: Hash = h
                .try_into()
                .map_err(|_| corrupt("chunk hash of the wrong length"))?;
            ids.insert(h, id);
        }
        Ok(())
    }

    /// Write a batch's transactions exactly as given: ids, times, hashes,
    /// versions (upserted, so periods moves the replaced ones to history)
    /// and log rows (with their ids), in one pipelined round trip.
    fn import_flush(
        &mut self,
        batch: &mut ImportBatch,
        known: &mut HashSet<(Space, String)>,
        chunk_ids: &mut HashMap<Hash, ChunkId>,
    ) -> Result<()> {
        let txs = std::mem::take(&mut batch.txs);
        batch.written.clear();
        (batch.rows, batch.bytes) = (0, 0);
        if txs.is_empty() {
            return Ok(());
        }
        let unknown: Vec<Vec<u8>> = txs
            .iter()
            .flat_map(|(_, w, _)| pending_hashes(w))
            .filter(|h| !chunk_ids.contains_key(h))
            .map(|h| h.to_vec())
            .collect();
        if !unknown.is_empty() {
            for r in self.query(
                "SELECT id, hash FROM chunks WHERE hash = ANY($1::bytea[])",
                &[&unknown],
            )? {
                let id: i64 = r.try_get(0).map_err(self.err())?;
                let h: Vec<u8> = r.try_get(1).map_err(self.err())?;
                if let Ok(h) = Hash::try_from(h) {
                    chunk_ids.insert(h, id);
                }
            }
        }
        let keys_st = self.conn.stmt(KEYS_SQL)?;
        let fresh_st = self.conn.stmt(&versions_sql(1, false))?;
        let versions_st = self.conn.stmt(&versions_sql(1, true))?;
        let logs_st = self.conn.stmt(
            "INSERT INTO log_entries(id, branch_id, tx_id, time_us, source, severity, message, process_id) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], \
             $6::smallint[], $7::text[], $8::bigint[])",
        )?;
        let txs_st = self.conn.stmt(&format!(
            "INSERT INTO transactions({TX_COLS}) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bytea[])"
        ))?;
        let levels = plan_keys(
            txs.iter()
                .flat_map(|(_, w, _)| w.iter().map(|w| (w.space, w.path.as_str()))),
            |s, p| known.contains(&(s, p.to_string())),
        );
        // Keys interned by this batch have no versions yet (the database
        // was empty and the lock is held): their rows need no conflict check.
        let interned: HashSet<(Space, &str)> = levels
            .iter()
            .flat_map(|l| l.spaces.iter().zip(&l.paths))
            .filter_map(|(s, p)| Some((Space::from_name(s)?, *p)))
            .collect();
        let (mut fresh, mut versions) = (VersionRows::default(), VersionRows::default());
        for (info, writes, _) in &txs {
            for w in writes {
                let chunk = |c: &ChunkRef| chunk_id(chunk_ids, c);
                let rows = if interned.contains(&(w.space, w.path.as_str())) {
                    &mut fresh
                } else {
                    &mut versions
                };
                rows.push(None, info.branch_id, info.id, w, chunk)?;
            }
        }
        let logs: Vec<(&TxInfo, &StoredLog)> = txs
            .iter()
            .flat_map(|(info, _, logs)| logs.iter().map(move |l| (info, l)))
            .collect();
        let l_ids: Vec<i64> = logs.iter().map(|(_, l)| l.id).collect();
        let l_branches: Vec<i64> = logs.iter().map(|(i, _)| i.branch_id).collect();
        let l_txs: Vec<i64> = logs.iter().map(|(i, _)| i.id as i64).collect();
        let l_times: Vec<i64> = logs.iter().map(|(_, l)| l.entry.time_us).collect();
        let l_sources: Vec<&str> = logs.iter().map(|(_, l)| l.entry.source.as_str()).collect();
        let l_sev: Vec<i16> = logs
            .iter()
            .map(|(_, l)| i16::from(l.entry.severity))
            .collect();
        let l_msgs: Vec<&str> = logs.iter().map(|(_, l)| l.entry.message.as_str()).collect();
        let l_procs: Vec<Option<i64>> = logs
            .iter()
            .map(|(_, l)| l.entry.process_id.map(|p| p as i64))
            .collect();
        let t_ids: Vec<i64> = txs.iter().map(|(i, _, _)| i.id as i64).collect();
        let t_branches: Vec<i64> = txs.iter().map(|(i, _, _)| i.branch_id).collect();
        let t_times: Vec<i64> = txs.iter().map(|(i, _, _)| i.time_us).collect();
        let t_authors: Vec<&str> = txs.iter().map(|(i, _, _)| i.author.as_str()).collect();
        let t_hosts: Vec<&str> = txs.iter().map(|(i, _, _)| i.host.as_str()).collect();
        let t_commands: Vec<&str> = txs.iter().map(|(i, _, _)| i.command.as_str()).collect();
        let t_messages: Vec<Option<&str>> =
            txs.iter().map(|(i, _, _)| i.message.as_deref()).collect();
        let t_mb: Vec<Option<i64>> = txs.iter().map(|(i, _, _)| i.merge.map(|m| m.0)).collect();
        let t_mt: Vec<Option<i64>> = txs
            .iter()
            .map(|(i, _, _)| i.merge.map(|m| m.1 as i64))
            .collect();
        let t_hashes: Vec<&[u8]> = txs.iter().map(|(i, _, _)| &i.hash[..]).collect();
        let mut steps: Vec<Step<'_>> = levels
            .iter()
            .map(|l| {
                Step::Query(
                    keys_st.clone(),
                    vec![&l.spaces, &l.paths, &l.parents, &l.names],
                )
            })
            .collect();
        if !fresh.is_empty() {
            steps.push(Step::Query(fresh_st, fresh.params()));
        }
        if !versions.is_empty() {
            steps.push(Step::Query(versions_st, versions.params()));
        }
        if !logs.is_empty() {
            steps.push(Step::Query(
                logs_st,
                vec![
                    &l_ids,
                    &l_branches,
                    &l_txs,
                    &l_times,
                    &l_sources,
                    &l_sev,
                    &l_msgs,
                    &l_procs,
                ],
            ));
        }
        steps.push(Step::Query(
            txs_st,
            vec![
                &t_ids,
                &t_branches,
                &t_times,
                &t_authors,
                &t_hosts,
                &t_commands,
                &t_messages,
                &t_mb,
                &t_mt,
                &t_hashes,
            ],
        ));
        for r in self.conn.pipeline(&steps) {
            r?;
        }
        for l in &levels {
            for (s, p) in l.spaces.iter().zip(&l.paths) {
                if let Some(s) = Space::from_name(s) {
                    known.insert((s, p.to_string()));
                }
            }
        }
        Ok(())
    }
}

impl PostgresBackend {
    fn copy_export_branches(&mut self) -> Result<Vec<BranchRecord>> {
        let rows = self.query(
            &format!("SELECT {BRANCH_COLS}, deleted_us FROM branches ORDER BY id"),
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(BranchRecord {
                    info: branch_from_row(r).map_err(self.err())?,
                    deleted_us: r.try_get(5).map_err(self.err())?,
                })
            })
            .collect()
    }

    fn copy_export_tags(&mut self) -> Result<Vec<TagRecord>> {
        let rows = self.query(
            "SELECT name, branch_id, tx_id, created_us FROM tags ORDER BY name",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(TagRecord {
                    name: r.try_get(0).map_err(self.err())?,
                    branch: r.try_get(1).map_err(self.err())?,
                    tx: r.try_get::<_, i64>(2).map_err(self.err())? as TxId,
                    created_us: r.try_get(3).map_err(self.err())?,
                })
            })
            .collect()
    }

    fn copy_export_shell_history(&mut self, after: i64, limit: usize) -> Result<Vec<ShellLine>> {
        let rows = self.query(
            "SELECT id, time_us, author, branch, line FROM shell_history WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &(limit.min(i64::MAX as usize) as i64)],
        )?;
        rows.iter()
            .map(|r| {
                Ok(ShellLine {
                    id: r.try_get(0).map_err(self.err())?,
                    time_us: r.try_get(1).map_err(self.err())?,
                    author: r.try_get(2).map_err(self.err())?,
                    branch: r.try_get(3).map_err(self.err())?,
                    line: r.try_get(4).map_err(self.err())?,
                })
            })
            .collect()
    }

    fn copy_export_chunks(
        &mut self,
        after: ChunkId,
        limit: usize,
    ) -> Result<Vec<(ChunkId, EncodedChunk)>> {
        let rows = self.query(
            "SELECT id, hash, size, codec, data FROM chunks WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &(limit.min(i64::MAX as usize) as i64)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get(0).map_err(self.err())?;
            let hash: Vec<u8> = r.try_get(1).map_err(self.err())?;
            let size: i64 = r.try_get(2).map_err(self.err())?;
            let codec: i16 = r.try_get(3).map_err(self.err())?;
            let hash: Hash = hash
                .try_into()
                .map_err(|_| corrupt(format!("chunk {id}: hash of the wrong length")))?;
            out.push((
                id,
                EncodedChunk {
                    hash,
                    size: size as u32,
                    codec: codec as u8,
                    data: r.try_get(4).map_err(self.err())?,
                },
            ));
        }
        Ok(out)
    }

    /// Holds the commit lock throughout, so nothing else commits meanwhile.
    fn copy_import(&mut self, next: &mut dyn FnMut() -> Result<Option<ImportItem>>) -> Result<()> {
        self.conn.execute(LOCK_SQL, &[&COMMIT_LOCK])?;
        let out = self.copy_import_locked(next);
        if out.is_err() {
            let _ = self.conn.batch("ROLLBACK");
        }
        let _ = self.conn.batch("RESET synchronous_commit");
        let _ = self.conn.execute(UNLOCK_SQL, &[&COMMIT_LOCK]);
        out
    }

    /// Batches of whole transactions, each batch one PostgreSQL transaction
    /// in which no (key, branch) is written twice: periods keeps a single
    /// version of a row per database transaction.
    fn copy_import_locked(
        &mut self,
        next: &mut dyn FnMut() -> Result<Option<ImportItem>>,
    ) -> Result<()> {
        let loc = self.location.clone();
        // Batches need not reach the disk one by one: the last one commits
        // synchronously, which flushes the write-ahead log of all before it.
        self.conn.batch("SET synchronous_commit = off")?;
        let mut known: HashSet<(Space, String)> = HashSet::new();
        let mut chunk_ids: HashMap<Hash, ChunkId> = HashMap::new();
        self.conn.batch("BEGIN")?;
        for table in IMPORT_TABLES.split(", ") {
            if !self
                .query(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])?
                .is_empty()
            {
                return Err(Error::Database(format!(
                    "{loc}: not empty (table {table} has rows); an import needs a new database"
                )));
            }
        }
        let mut batch = ImportBatch::default();
        let mut expected: TxId = 1;
        while let Some(item) = next()? {
            let repeats = match &item {
                ImportItem::Tx { info, writes, .. } => writes.iter().any(|w| {
                    batch
                        .written
                        .contains(&(info.branch_id, w.space, w.path.clone()))
                }),
                _ => false,
            };
            if repeats || batch.rows >= IMPORT_BATCH_ROWS || batch.bytes >= IMPORT_BATCH_BYTES {
                self.import_flush(&mut batch, &mut known, &mut chunk_ids)?;
                self.conn.batch("COMMIT; BEGIN")?;
            }
            match item {
                ImportItem::Branch(b) => {
                    self.conn.execute(
                        "INSERT INTO branches(id, name, parent_id, fork_tx, created_us, deleted_us) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        &[
                            &b.info.id,
                            &b.info.name,
                            &b.info.parent,
                            &b.info.fork_tx.map(|t| t as i64),
                            &b.info.created_us,
                            &IMPORT_UNFINISHED_US,
                        ],
                    )?;
                }
                ImportItem::Chunks(chunks) => {
                    batch.rows += chunks.len();
                    batch.bytes += chunks.iter().map(|c| c.data.len()).sum::<usize>();
                    self.import_chunks(&chunks, &mut chunk_ids)?;
                }
                ImportItem::Tx { info, writes, logs } if info.id == expected => {
                    expected += 1;
                    batch.rows += 1 + writes.len() + logs.len();
                    for w in &writes {
                        batch
                            .written
                            .insert((info.branch_id, w.space, w.path.clone()));
                    }
                    batch.txs.push((info, writes, logs));
                }
                ImportItem::Tx { info, .. } => {
                    return Err(corrupt(format!(
                        "import: T{} given where T{expected} was expected",
                        info.id
                    )))
                }
                ImportItem::Tag(t) => {
                    self.conn.execute(
                        "INSERT INTO tags(name, branch_id, tx_id, created_us) VALUES ($1, $2, $3, $4)",
                        &[&t.name, &t.branch, &(t.tx as i64), &t.created_us],
                    )?;
                }
                ImportItem::ShellLines(lines) => {
                    let ids: Vec<i64> = lines.iter().map(|l| l.id).collect();
                    let times: Vec<i64> = lines.iter().map(|l| l.time_us).collect();
                    let authors: Vec<&str> = lines.iter().map(|l| l.author.as_str()).collect();
                    let branches: Vec<&str> = lines.iter().map(|l| l.branch.as_str()).collect();
                    let texts: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
                    self.conn.execute(
                        "INSERT INTO shell_history(id, time_us, author, branch, line) \
                         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[])",
                        &[&ids, &times, &authors, &branches, &texts],
                    )?;
                }
            }
        }
        self.import_flush(&mut batch, &mut known, &mut chunk_ids)?;
        // Rows were given their ids: move the sequences past them.
        for table in ["branches", "log_entries", "shell_history"] {
            self.conn.batch(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
            ))?;
        }
        self.conn.batch("SET LOCAL synchronous_commit = on")?;
        self.conn.batch("COMMIT")?;
        Ok(())
    }

    fn copy_import_finish(&mut self, branches: &[BranchRecord]) -> Result<()> {
        self.conn.in_tx(|c| {
            for b in branches {
                let n = c.execute(
                    "UPDATE branches SET deleted_us = $2 WHERE id = $1 AND deleted_us = $3",
                    &[&b.info.id, &b.deleted_us, &IMPORT_UNFINISHED_US],
                )?;
                if n != 1 {
                    return Err(corrupt(format!(
                        "branch {} ({}) is not part of an unfinished import",
                        b.info.id, b.info.name
                    )));
                }
            }
            let left = c.count(
                "SELECT count(*) FROM branches WHERE deleted_us = $1",
                &[&IMPORT_UNFINISHED_US],
            )?;
            if left != 0 {
                return Err(corrupt(format!(
                    "{left} imported branches were not given to import_finish"
                )));
            }
            Ok(())
        })
    }

    fn copy_import_abort(&mut self) -> Result<()> {
        let loc = self.location.clone();
        self.conn.in_tx(|c| {
            let visible = c.count(
                "SELECT count(*) FROM branches WHERE deleted_us IS DISTINCT FROM $1",
                &[&IMPORT_UNFINISHED_US],
            )?;
            if visible != 0 {
                return Err(Error::Database(format!(
                "{loc}: not an unfinished import ({visible} usable branches); nothing was deleted"
            )));
            }
            c.batch(&format!("TRUNCATE {IMPORT_TABLES} RESTART IDENTITY"))
        })?;
        self.key_ids.clear();
        self.missing.clear();
        self.reads = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::pgpass_lookup;

    #[test]
    fn pgpass_matches_fields_and_wildcards() {
        let text =
            "# comment\nother:5432:db:u:nope\n*:5432:dbos:alice:s\\:ecret\n*:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, "h", 5432, "dbos", "alice").as_deref(),
            Some("s:ecret")
        );
        assert_eq!(
            pgpass_lookup(text, "other", 5432, "db", "u").as_deref(),
            Some("nope")
        );
        assert_eq!(
            pgpass_lookup(text, "x", 1, "y", "z").as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("h:1:d:u\n", "h", 1, "d", "u"), None);
    }
}

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
//! order. The lock is held for the few round trips of the commit; a lost
//! connection rolls the transaction back and frees the lock.

use super::{
    columns, corrupt, decode_version, Backend, BranchRecord, CommitMeta, CommitRequest, ImportItem,
    LogFilter, RawVersion, ShellLine, TagRecord, Write, IMPORT_UNFINISHED_US,
};
use crate::chain::{tx_hash, ChainWrite};
use crate::content::{decode_chunk, encode_manifest, EncodedChunk};
use crate::error::{Error, Result};
use crate::types::{
    BranchId, BranchInfo, ChunkId, ChunkRef, Entry, Hash, Lineage, LogEntry, Space, StoredLog,
    TxId, TxInfo, VersionRecord,
};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};
use std::collections::{HashMap, HashSet};

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

/// The PostgreSQL backend.
pub struct PostgresBackend {
    pub(super) client: Client,
    pub(super) location: String,
    stmts: HashMap<String, Statement>,
    key_ids: HashMap<(Space, String), i64>,
}

pub(super) fn pg_err(location: &str) -> impl Fn(postgres::Error) -> Error + '_ {
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
fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
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

fn raw_from_row(
    row: &Row,
    at: usize,
) -> std::result::Result<(TxId, i64, RawVersion), postgres::Error> {
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

fn tx_from_row(row: &Row) -> std::result::Result<TxInfo, postgres::Error> {
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

fn branch_from_row(row: &Row) -> std::result::Result<BranchInfo, postgres::Error> {
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
        let mut config: postgres::Config = url.parse().map_err(|e| {
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
                        Some(postgres::config::Host::Tcp(h)) => h.clone(),
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
            .any(|h| matches!(h, postgres::config::Host::Tcp(_)))
            && !config.get_hosts().is_empty()
        {
            tls.mode = super::pg_tls::SslMode::Disable;
        }
        config.ssl_mode(match tls.mode {
            super::pg_tls::SslMode::Disable => postgres::config::SslMode::Disable,
            super::pg_tls::SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        let connected = match super::pg_tls::connector(&tls)? {
            Some(connector) => config.connect(connector),
            None => config.connect(NoTls),
        };
        let client = connected.map_err(|e| {
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
        })?;
        let mut me = PostgresBackend {
            client,
            location,
            stmts: HashMap::new(),
            key_ids: HashMap::new(),
        };
        me.migrate()?;
        Ok(me)
    }

    fn err(&self) -> impl Fn(postgres::Error) -> Error + '_ {
        pg_err(&self.location)
    }

    fn migrate(&mut self) -> Result<()> {
        let loc = self.location.clone();
        let e = pg_err(&loc);
        let latest = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
        let mut tx = self.client.transaction().map_err(&e)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
            .map_err(&e)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, applied_us bigint NOT NULL)",
        )
        .map_err(&e)?;
        let found: Option<i32> = tx
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .map_err(&e)?
            .try_get(0)
            .map_err(&e)?;
        let found = found.unwrap_or(0) as u32;
        if found > latest {
            return Err(Error::SchemaTooNew {
                location: loc.clone(),
                found,
                supported: latest,
            });
        }
        for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
            tx.batch_execute(sql).map_err(|err| {
                let text = err
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| err.to_string());
                // SQLSTATE 58P01 (undefined_file): the extension's control
                // file is missing, i.e. the package is not installed.
                let missing = err.code() == Some(&postgres::error::SqlState::UNDEFINED_FILE)
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
            tx.execute(
                "INSERT INTO schema_migrations(version, name, applied_us) VALUES ($1, $2, $3)",
                &[
                    &(*version as i32),
                    name,
                    &chrono::Utc::now().timestamp_micros(),
                ],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
        Ok(())
    }

    fn stmt(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(pg_err(&self.location))?;
        self.stmts.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let s = self.stmt(sql)?;
        let loc = self.location.clone();
        self.client.query(&s, params).map_err(pg_err(&loc))
    }

    fn key_id(&mut self, space: Space, path: &str) -> Result<Option<i64>> {
        if let Some(id) = self.key_ids.get(&(space, path.to_string())) {
            return Ok(Some(*id));
        }
        let rows = self.query(
            "SELECT id FROM keys WHERE space = $1 AND path = $2",
            &[&space.as_str(), &path],
        )?;
        let id: Option<i64> = match rows.first() {
            Some(r) => Some(r.try_get(0).map_err(self.err())?),
            None => None,
        };
        if let Some(id) = id {
            self.key_ids.insert((space, path.to_string()), id);
        }
        Ok(id)
    }

    fn read_by_key(&mut self, key: i64, lineage: &Lineage) -> Result<Option<VersionRecord>> {
        let sql = point_read_sql("$1", lineage.steps.len(), 2);
        let mut p: Vec<i64> = vec![key];
        p.extend(lineage_params(lineage));
        let refs: Vec<&(dyn ToSql + Sync)> = p.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let rows = self.query(&sql, &refs)?;
        match rows.first() {
            Some(r) => {
                let (tx, kind, raw) = raw_from_row(r, 0).map_err(self.err())?;
                Ok(Some(decode_version(tx, kind, raw)?))
            }
            None => Ok(None),
        }
    }

    /// Existing keys selected by `filter` (an SQL condition on `k` using
    /// `$1`), each with its visible version, in one round trip.
    fn existing_where(
        &mut self,
        filter: &str,
        arg: &(dyn ToSql + Sync),
        lineage: &Lineage,
        name_col: &str,
    ) -> Result<Vec<(String, VersionRecord)>> {
        let inner = point_read_sql("k.id", lineage.steps.len(), 2);
        let sql = format!(
            "SELECT k.{name_col}, v.* FROM keys k CROSS JOIN LATERAL ({inner}) v WHERE {filter} AND v.kind <> 0"
        );
        let p = lineage_params(lineage);
        let mut refs: Vec<&(dyn ToSql + Sync)> = vec![arg];
        refs.extend(p.iter().map(|v| v as &(dyn ToSql + Sync)));
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

    /// Run `work` as one commit: session advisory lock, BEGIN, work,
    /// COMMIT, unlock.
    fn locked<T>(
        &mut self,
        work: impl FnOnce(&mut postgres::Transaction<'_>, &str) -> Result<T>,
    ) -> Result<T> {
        let loc = self.location.clone();
        self.client
            .execute("SELECT pg_advisory_lock($1)", &[&COMMIT_LOCK])
            .map_err(pg_err(&loc))?;
        let result = (|| {
            let mut tx = self.client.transaction().map_err(pg_err(&loc))?;
            let out = work(&mut tx, &loc)?;
            tx.commit().map_err(|e| {
                if e.is_closed() {
                    Error::Database(format!(
                        "{loc}: connection to PostgreSQL lost during COMMIT: the transaction may \
                         or may not have been applied; check `log` once the server is reachable"
                    ))
                } else {
                    pg_err(&loc)(e)
                }
            })?;
            Ok(out)
        })();
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&COMMIT_LOCK]);
        result
    }
}

/// Insert a transaction's row (commits and verbatim imports alike).
fn insert_tx_row(tx: &mut postgres::Transaction<'_>, loc: &str, info: &TxInfo) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO transactions({TX_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &[
            &(info.id as i64),
            &info.branch_id,
            &info.time_us,
            &info.author,
            &info.host,
            &info.command,
            &info.message,
            &info.merge.map(|m| m.0),
            &info.merge.map(|m| m.1 as i64),
            &&info.hash[..],
        ],
    )
    .map_err(pg_err(loc))?;
    Ok(())
}

/// Commit-time work inside the lock.
struct Committer<'a, 't> {
    tx: &'a mut postgres::Transaction<'t>,
    loc: &'a str,
    known: &'a HashMap<(Space, String), i64>,
    new_keys: HashMap<(Space, String), i64>,
    new_chunks: HashMap<Hash, ChunkId>,
}

impl Committer<'_, '_> {
    fn e(&self) -> impl Fn(postgres::Error) -> Error + '_ {
        pg_err(self.loc)
    }

    fn head(&mut self) -> Result<(TxId, i64, Hash)> {
        let rows = self
            .tx
            .query(
                "SELECT id, time_us, hash FROM transactions ORDER BY id DESC LIMIT 1",
                &[],
            )
            .map_err(pg_err(self.loc))?;
        Ok(match rows.first() {
            Some(r) => {
                let h: Vec<u8> = r.try_get(2).map_err(self.e())?;
                (
                    r.try_get::<_, i64>(0).map_err(self.e())? as TxId,
                    r.try_get(1).map_err(self.e())?,
                    h.try_into().unwrap_or([0u8; 32]),
                )
            }
            None => (0, 0, [0u8; 32]),
        })
    }

    fn key_id(&mut self, space: Space, path: &str) -> Result<Option<i64>> {
        let k = (space, path.to_string());
        if let Some(id) = self.known.get(&k).or_else(|| self.new_keys.get(&k)) {
            return Ok(Some(*id));
        }
        let rows = self
            .tx
            .query(
                "SELECT id FROM keys WHERE space = $1 AND path = $2",
                &[&space.as_str(), &path],
            )
            .map_err(pg_err(self.loc))?;
        match rows.first() {
            Some(r) => Ok(Some(r.try_get(0).map_err(self.e())?)),
            None => Ok(None),
        }
    }

    fn ensure_key(&mut self, space: Space, path: &str) -> Result<i64> {
        if let Some(id) = self.key_id(space, path)? {
            self.new_keys.insert((space, path.to_string()), id);
            return Ok(id);
        }
        let (parent_id, name) = if space == Space::File && path != "/" {
            let cut = path.rfind('/').unwrap_or(0);
            let parent = if cut == 0 { "/" } else { &path[..cut] };
            (Some(self.ensure_key(space, parent)?), &path[cut + 1..])
        } else {
            (None, if path == "/" { "" } else { path })
        };
        let rows = self
            .tx
            .query(
                "INSERT INTO keys(space, path, parent_id, name) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (space, path) DO NOTHING RETURNING id",
                &[&space.as_str(), &path, &parent_id, &name],
            )
            .map_err(pg_err(self.loc))?;
        let id = match rows.first() {
            Some(r) => r.try_get(0).map_err(self.e())?,
            None => self
                .key_id(space, path)?
                .ok_or_else(|| corrupt(format!("key {path} vanished during commit")))?,
        };
        self.new_keys.insert((space, path.to_string()), id);
        Ok(id)
    }

    fn insert_chunks(&mut self, chunks: &[EncodedChunk]) -> Result<()> {
        for c in chunks {
            let rows = self
                .tx
                .query(
                    "INSERT INTO chunks(hash, size, codec, data) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (hash) DO NOTHING RETURNING id",
                    &[
                        &&c.hash[..],
                        &i64::from(c.size),
                        &i16::from(c.codec),
                        &c.data,
                    ],
                )
                .map_err(pg_err(self.loc))?;
            if let Some(r) = rows.first() {
                let id: i64 = r.try_get(0).map_err(self.e())?;
                self.new_chunks.insert(c.hash, id);
            }
        }
        Ok(())
    }

    fn chunk_id(&mut self, chunk: &ChunkRef) -> Result<ChunkId> {
        match chunk {
            ChunkRef::Stored(id) => Ok(*id),
            ChunkRef::Pending(h) => {
                if let Some(id) = self.new_chunks.get(h) {
                    return Ok(*id);
                }
                let rows = self
                    .tx
                    .query("SELECT id FROM chunks WHERE hash = $1", &[&&h[..]])
                    .map_err(pg_err(self.loc))?;
                match rows.first() {
                    Some(r) => Ok(r.try_get(0).map_err(self.e())?),
                    None => Err(corrupt("a pending chunk was never stored")),
                }
            }
        }
    }

    fn upsert_version(&mut self, branch: BranchId, tx_id: TxId, w: &Write) -> Result<()> {
        let key = self.ensure_key(w.space, &w.path)?;
        let c = columns(&w.entry);
        let manifest = match c.chunks {
            Some(chunks) => {
                let mut ids = Vec::with_capacity(chunks.len());
                for r in chunks {
                    ids.push(self.chunk_id(r)?);
                }
                Some(encode_manifest(&ids))
            }
            None => None,
        };
        self.tx
            .execute(
                "INSERT INTO versions(key_id, branch_id, tx_id, kind, mode, uid, gid, size, mtime_ns, digest, manifest, value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (key_id, branch_id) DO UPDATE SET tx_id = EXCLUDED.tx_id, kind = EXCLUDED.kind, \
                 mode = EXCLUDED.mode, uid = EXCLUDED.uid, gid = EXCLUDED.gid, size = EXCLUDED.size, \
                 mtime_ns = EXCLUDED.mtime_ns, digest = EXCLUDED.digest, manifest = EXCLUDED.manifest, \
                 value = EXCLUDED.value",
                &[
                    &key,
                    &branch,
                    &(tx_id as i64),
                    &(c.kind as i16),
                    &i64::from(c.meta.mode),
                    &i64::from(c.meta.uid),
                    &i64::from(c.meta.gid),
                    &(c.size as i64),
                    &c.meta.mtime_ns,
                    &c.digest,
                    &manifest,
                    &c.value,
                ],
            )
            .map_err(pg_err(self.loc))?;
        Ok(())
    }

    fn write_tx(
        &mut self,
        head: (TxId, i64, Hash),
        branch: BranchId,
        meta: &CommitMeta,
        host: &str,
        writes: &[Write],
        logs: &[LogEntry],
    ) -> Result<TxInfo> {
        let (head, head_time, prev_hash) = head;
        let id = head + 1;
        // The transaction's start time (periods stamps versions with it),
        // taken after the commit lock, so it follows commit order.
        let started: i64 = self
            .tx
            .query_one(
                "SELECT (extract(epoch FROM transaction_timestamp()) * 1000000)::bigint",
                &[],
            )
            .map_err(pg_err(self.loc))?
            .try_get(0)
            .map_err(self.e())?;
        let time_us = started.max(head_time);
        for w in writes {
            self.upsert_version(branch, id, w)?;
        }
        for l in logs {
            self.tx
                .execute(
                    "INSERT INTO log_entries(branch_id, tx_id, time_us, source, severity, message, process_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &branch,
                        &(id as i64),
                        &l.time_us,
                        &l.source,
                        &i16::from(l.severity),
                        &l.message,
                        &l.process_id.map(|p| p as i64),
                    ],
                )
                .map_err(pg_err(self.loc))?;
        }
        let mut info = TxInfo {
            id,
            branch_id: branch,
            time_us,
            author: meta.author.clone(),
            host: host.to_string(),
            command: meta.command.clone(),
            message: meta.message.clone(),
            merge: meta.merge,
            hash: [0u8; 32],
        };
        let chain: Vec<ChainWrite<'_>> = writes
            .iter()
            .map(|w| ChainWrite {
                space: w.space,
                path: &w.path,
                entry: w.entry.as_ref(),
            })
            .collect();
        info.hash = tx_hash(&prev_hash, &info, &chain, logs);
        insert_tx_row(self.tx, self.loc, &info)?;
        Ok(info)
    }

    fn validate(&mut self, req: &CommitRequest) -> Result<()> {
        let mut spaces: Vec<&str> = Vec::new();
        let mut paths: Vec<&str> = Vec::new();
        for (s, p) in &req.reads {
            spaces.push(s.as_str());
            paths.push(p);
        }
        for w in &req.writes {
            spaces.push(w.space.as_str());
            paths.push(&w.path);
        }
        // The state table holds each key's newest version per branch, so a
        // newer version than the snapshot is found there.
        let rows = self
            .tx
            .query(
                "SELECT k.path, v.tx_id FROM unnest($1::text[], $2::text[]) AS q(space, path) \
                 JOIN keys k ON k.space = q.space AND k.path = q.path \
                 JOIN versions v ON v.key_id = k.id \
                 WHERE v.branch_id = $3 AND v.tx_id > $4 LIMIT 1",
                &[&spaces, &paths, &req.branch, &(req.snapshot as i64)],
            )
            .map_err(pg_err(self.loc))?;
        let dirs: Vec<&str> = req.listed_dirs.iter().map(String::as_str).collect();
        let rows = if rows.is_empty() && !dirs.is_empty() {
            self.tx
                .query(
                    "SELECT k.path, v.tx_id FROM keys d JOIN keys k ON k.parent_id = d.id \
                     JOIN versions v ON v.key_id = k.id \
                     WHERE d.space = 'file' AND d.path = ANY($1) AND v.branch_id = $2 AND v.tx_id > $3 LIMIT 1",
                    &[&dirs, &req.branch, &(req.snapshot as i64)],
                )
                .map_err(pg_err(self.loc))?
        } else {
            rows
        };
        if let Some(r) = rows.first() {
            let path: String = r.try_get(0).map_err(self.e())?;
            let tx: i64 = r.try_get(1).map_err(self.e())?;
            return Err(Error::Conflict {
                path,
                tx: tx as TxId,
                snapshot: req.snapshot,
            });
        }
        Ok(())
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
        Ok(v.unwrap_or(0) as TxId)
    }

    fn bootstrap(&mut self, meta: &CommitMeta, host: &str, root: &Entry) -> Result<()> {
        let known = std::mem::take(&mut self.key_ids);
        let out = self.locked(|tx, loc| {
            let exists = tx
                .query("SELECT id FROM branches LIMIT 1", &[])
                .map_err(pg_err(loc))?;
            if !exists.is_empty() {
                return Ok(());
            }
            let main: i64 = tx
                .query_one(
                    "INSERT INTO branches(name, parent_id, fork_tx, created_us) VALUES ('main', NULL, NULL, $1) RETURNING id",
                    &[&chrono::Utc::now().timestamp_micros()],
                )
                .map_err(pg_err(loc))?
                .try_get(0)
                .map_err(pg_err(loc))?;
            let mut c = Committer {
                tx,
                loc,
                known: &known,
                new_keys: HashMap::new(),
                new_chunks: HashMap::new(),
            };
            let head = c.head()?;
            let writes = [Write {
                space: Space::File,
                path: "/".to_string(),
                entry: Some(root.clone()),
            }];
            c.write_tx(head, main, meta, host, &writes, &[])?;
            Ok(())
        });
        self.key_ids = known;
        out
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
        let loc = self.location.clone();
        let rows = self
            .client
            .query(
                "INSERT INTO branches(name, parent_id, fork_tx, created_us) \
                 SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
                 (SELECT 1 FROM branches WHERE name = $1 AND deleted_us IS NULL) RETURNING id",
                &[&name, &parent, &(fork_tx as i64), &created],
            )
            .map_err(pg_err(&loc))?;
        let Some(r) = rows.first() else {
            return Err(Error::InvalidBranch {
                name: name.to_string(),
                reason: "a branch with that name already exists".to_string(),
            });
        };
        Ok(BranchInfo {
            id: r.try_get(0).map_err(pg_err(&loc))?,
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
        match self.key_id(space, path)? {
            Some(k) => self.read_by_key(k, lineage),
            None => Ok(None),
        }
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
        let loc = self.location.clone();
        let mut tx = self.client.transaction().map_err(pg_err(&loc))?;
        for c in chunks {
            tx.execute(
                "INSERT INTO chunks(hash, size, codec, data) VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING",
                &[&&c.hash[..], &i64::from(c.size), &i16::from(c.codec), &c.data],
            )
            .map_err(pg_err(&loc))?;
        }
        tx.commit().map_err(pg_err(&loc))?;
        Ok(())
    }

    fn commit(&mut self, req: CommitRequest) -> Result<TxInfo> {
        let known = std::mem::take(&mut self.key_ids);
        let mut new_keys = HashMap::new();
        let out = self.locked(|tx, loc| {
            let mut c = Committer {
                tx,
                loc,
                known: &known,
                new_keys: HashMap::new(),
                new_chunks: HashMap::new(),
            };
            let head = c.head()?;
            if req.snapshot < head.0 {
                c.validate(&req)?;
            }
            c.insert_chunks(&req.chunks)?;
            let info = c.write_tx(
                head,
                req.branch,
                &req.meta,
                &req.host,
                &req.writes,
                &req.logs,
            )?;
            new_keys = c.new_keys;
            Ok(info)
        });
        self.key_ids = known;
        if out.is_ok() {
            self.key_ids.extend(new_keys);
        }
        out
    }

    fn logs(&mut self, lineage: &Lineage, filter: &LogFilter) -> Result<Vec<StoredLog>> {
        let limit = filter.limit.unwrap_or(usize::MAX).min(i64::MAX as usize);
        let mut out = Vec::new();
        for step in &lineage.steps {
            let rows = self.query(
                "SELECT id, tx_id, time_us, source, severity, message, process_id FROM log_entries \
                 WHERE branch_id = $1 AND tx_id <= $2 AND tx_id > $3 \
                 AND ($4::smallint IS NULL OR severity <= $4) AND ($5::text IS NULL OR source = $5) \
                 ORDER BY id DESC LIMIT $6",
                &[
                    &step.branch,
                    &(step.upto as i64),
                    &(filter.after_tx.unwrap_or(0) as i64),
                    &filter.max_severity.map(i16::from),
                    &filter.source,
                    &(limit.saturating_sub(out.len()) as i64),
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

impl Committer<'_, '_> {
    /// Write one transaction exactly as given: id, time, hash, versions
    /// (upserted, so periods moves the replaced ones to history) and log
    /// rows (with their ids).
    fn import_tx(&mut self, info: &TxInfo, writes: &[Write], logs: &[StoredLog]) -> Result<()> {
        for w in writes {
            self.upsert_version(info.branch_id, info.id, w)?;
        }
        for l in logs {
            self.tx
                .execute(
                    "INSERT INTO log_entries(id, branch_id, tx_id, time_us, source, severity, message, process_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &l.id,
                        &info.branch_id,
                        &(info.id as i64),
                        &l.entry.time_us,
                        &l.entry.source,
                        &i16::from(l.entry.severity),
                        &l.entry.message,
                        &l.entry.process_id.map(|p| p as i64),
                    ],
                )
                .map_err(pg_err(self.loc))?;
        }
        insert_tx_row(self.tx, self.loc, info)?;
        Ok(())
    }

    /// Store many chunks in one statement, remembering their ids.
    fn import_chunks(&mut self, chunks: &[EncodedChunk]) -> Result<()> {
        let hashes: Vec<&[u8]> = chunks.iter().map(|c| &c.hash[..]).collect();
        let sizes: Vec<i64> = chunks.iter().map(|c| i64::from(c.size)).collect();
        let codecs: Vec<i16> = chunks.iter().map(|c| i16::from(c.codec)).collect();
        let data: Vec<&[u8]> = chunks.iter().map(|c| &c.data[..]).collect();
        let rows = self
            .tx
            .query(
                "INSERT INTO chunks(hash, size, codec, data) \
                 SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::smallint[], $4::bytea[]) \
                 ON CONFLICT (hash) DO NOTHING RETURNING id, hash",
                &[&hashes, &sizes, &codecs, &data],
            )
            .map_err(pg_err(self.loc))?;
        for r in &rows {
            let id: i64 = r.try_get(0).map_err(self.e())?;
            let h: Vec<u8> = r.try_get(1).map_err(self.e())?;
            let h: Hash = h
                .try_into()
                .map_err(|_| corrupt("chunk hash of the wrong length"))?;
            self.new_chunks.insert(h, id);
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
        let loc = self.location.clone();
        self.client
            .execute("SELECT pg_advisory_lock($1)", &[&COMMIT_LOCK])
            .map_err(pg_err(&loc))?;
        let out = self.copy_import_locked(next, &loc);
        let _ = self.client.batch_execute("RESET synchronous_commit");
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&COMMIT_LOCK]);
        out
    }

    /// Batches of whole transactions, each batch one PostgreSQL transaction
    /// in which no (key, branch) is written twice: periods keeps a single
    /// version of a row per database transaction.
    fn copy_import_locked(
        &mut self,
        next: &mut dyn FnMut() -> Result<Option<ImportItem>>,
        loc: &str,
    ) -> Result<()> {
        let e = pg_err(loc);
        // Batches need not reach the disk one by one: the last one commits
        // synchronously, which flushes the write-ahead log of all before it.
        self.client
            .batch_execute("SET synchronous_commit = off")
            .map_err(&e)?;
        let mut known: HashMap<(Space, String), i64> = HashMap::new();
        let mut chunk_ids: HashMap<Hash, ChunkId> = HashMap::new();
        let mut tx = self.client.transaction().map_err(&e)?;
        for table in IMPORT_TABLES.split(", ") {
            if !tx
                .query(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])
                .map_err(&e)?
                .is_empty()
            {
                return Err(Error::Database(format!(
                    "{loc}: not empty (table {table} has rows); an import needs a new database"
                )));
            }
        }
        let mut batch_keys: HashSet<(BranchId, Space, String)> = HashSet::new();
        let (mut rows, mut bytes) = (0usize, 0usize);
        let mut expected: TxId = 1;
        while let Some(item) = next()? {
            let repeats = match &item {
                ImportItem::Tx { info, writes, .. } => writes
                    .iter()
                    .any(|w| batch_keys.contains(&(info.branch_id, w.space, w.path.clone()))),
                _ => false,
            };
            if repeats || rows >= IMPORT_BATCH_ROWS || bytes >= IMPORT_BATCH_BYTES {
                tx.commit().map_err(&e)?;
                tx = self.client.transaction().map_err(&e)?;
                batch_keys.clear();
                (rows, bytes) = (0, 0);
            }
            let mut c = Committer {
                tx: &mut tx,
                loc,
                known: &known,
                new_keys: HashMap::new(),
                new_chunks: std::mem::take(&mut chunk_ids),
            };
            let done = match item {
                ImportItem::Branch(b) => c
                    .tx
                    .execute(
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
                    )
                    .map(|_| ())
                    .map_err(&e),
                ImportItem::Chunks(chunks) => {
                    rows += chunks.len();
                    bytes += chunks.iter().map(|c| c.data.len()).sum::<usize>();
                    c.import_chunks(&chunks)
                }
                ImportItem::Tx { info, writes, logs } if info.id == expected => {
                    expected += 1;
                    rows += 1 + writes.len() + logs.len();
                    for w in &writes {
                        batch_keys.insert((info.branch_id, w.space, w.path.clone()));
                    }
                    c.import_tx(&info, &writes, &logs)
                }
                ImportItem::Tx { info, .. } => Err(corrupt(format!(
                    "import: T{} given where T{expected} was expected",
                    info.id
                ))),
                ImportItem::Tag(t) => c
                    .tx
                    .execute(
                        "INSERT INTO tags(name, branch_id, tx_id, created_us) VALUES ($1, $2, $3, $4)",
                        &[&t.name, &t.branch, &(t.tx as i64), &t.created_us],
                    )
                    .map(|_| ())
                    .map_err(&e),
                ImportItem::ShellLines(lines) => lines.iter().try_for_each(|l| {
                    c.tx.execute(
                        "INSERT INTO shell_history(id, time_us, author, branch, line) VALUES ($1, $2, $3, $4, $5)",
                        &[&l.id, &l.time_us, &l.author, &l.branch, &l.line],
                    )
                    .map(|_| ())
                    .map_err(&e)
                }),
            };
            chunk_ids = std::mem::take(&mut c.new_chunks);
            let new_keys = std::mem::take(&mut c.new_keys);
            done?;
            known.extend(new_keys);
        }
        // Rows were given their ids: move the sequences past them.
        for table in ["branches", "log_entries", "shell_history"] {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                     COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
                ),
                &[],
            )
            .map_err(&e)?;
        }
        tx.batch_execute("SET LOCAL synchronous_commit = on")
            .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(())
    }

    fn copy_import_finish(&mut self, branches: &[BranchRecord]) -> Result<()> {
        let loc = self.location.clone();
        let e = pg_err(&loc);
        let mut tx = self.client.transaction().map_err(&e)?;
        for b in branches {
            let n = tx
                .execute(
                    "UPDATE branches SET deleted_us = $2 WHERE id = $1 AND deleted_us = $3",
                    &[&b.info.id, &b.deleted_us, &IMPORT_UNFINISHED_US],
                )
                .map_err(&e)?;
            if n != 1 {
                return Err(corrupt(format!(
                    "branch {} ({}) is not part of an unfinished import",
                    b.info.id, b.info.name
                )));
            }
        }
        let left: i64 = tx
            .query_one(
                "SELECT count(*) FROM branches WHERE deleted_us = $1",
                &[&IMPORT_UNFINISHED_US],
            )
            .map_err(&e)?
            .try_get(0)
            .map_err(&e)?;
        if left != 0 {
            return Err(corrupt(format!(
                "{left} imported branches were not given to import_finish"
            )));
        }
        tx.commit().map_err(&e)?;
        Ok(())
    }

    fn copy_import_abort(&mut self) -> Result<()> {
        let loc = self.location.clone();
        let e = pg_err(&loc);
        let mut tx = self.client.transaction().map_err(&e)?;
        let visible: i64 = tx
            .query_one(
                "SELECT count(*) FROM branches WHERE deleted_us IS DISTINCT FROM $1",
                &[&IMPORT_UNFINISHED_US],
            )
            .map_err(&e)?
            .try_get(0)
            .map_err(&e)?;
        if visible != 0 {
            return Err(Error::Database(format!(
                "{loc}: not an unfinished import ({visible} usable branches); nothing was deleted"
            )));
        }
        tx.batch_execute(&format!("TRUNCATE {IMPORT_TABLES} RESTART IDENTITY"))
            .map_err(&e)?;
        tx.commit().map_err(&e)?;
        self.key_ids.clear();
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

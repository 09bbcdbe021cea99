-- dbos temporal core (SQLite).
-- One temporal mechanism for every kind of state: a key (space + path) has row
-- versions, each stamped by the transaction that wrote it and the branch it was
-- written on. Nothing is ever updated or deleted in `versions`, `transactions`,
-- `chunks` or `log_entries`: a change is a new row.

-- Branches: a branch is a name, a parent and a fork point. Creating one copies
-- no rows; reads walk the lineage (branch, parent, grandparent...) with each
-- ancestor cut off at the fork point.
CREATE TABLE branches (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    parent_id   INTEGER REFERENCES branches(id),
    fork_tx     INTEGER,            -- last parent transaction visible on this branch
    created_us  INTEGER NOT NULL,   -- microseconds since the Unix epoch, UTC
    deleted_us  INTEGER             -- set when deleted; its transactions stay
);
CREATE UNIQUE INDEX branches_live_name ON branches(name) WHERE deleted_us IS NULL;

-- Transactions: ids are global and strictly increasing in commit order
-- (assigned under the write lock). `hash` chains every transaction to its
-- predecessor (id - 1) for tamper evidence.
CREATE TABLE transactions (
    id              INTEGER PRIMARY KEY,
    branch_id       INTEGER NOT NULL REFERENCES branches(id),
    time_us         INTEGER NOT NULL,
    author          TEXT NOT NULL,
    host            TEXT NOT NULL,
    command         TEXT NOT NULL,
    message         TEXT,
    merge_branch_id INTEGER,        -- set on merge transactions: the branch merged in
    merge_tx        INTEGER,        -- ... and the transaction of it that was merged
    hash            BLOB NOT NULL
);
CREATE INDEX transactions_branch ON transactions(branch_id, id);
CREATE INDEX transactions_time ON transactions(time_us, id);
CREATE INDEX transactions_merge ON transactions(merge_branch_id, branch_id, id)
    WHERE merge_branch_id IS NOT NULL;
-- The merges recorded on a branch (merge bases walk them).
CREATE INDEX transactions_merges_on ON transactions(branch_id, id)
    WHERE merge_branch_id IS NOT NULL;

-- Keys: the identity of a versioned thing. space is 'file', 'config' or
-- 'process'. Files form a tree through parent_id. Keys are interned once and
-- never removed; whether a key exists at a moment is decided by its versions.
CREATE TABLE keys (
    id        INTEGER PRIMARY KEY,
    space     TEXT NOT NULL,
    path      TEXT NOT NULL,
    parent_id INTEGER REFERENCES keys(id),
    name      TEXT NOT NULL
);
CREATE UNIQUE INDEX keys_space_path ON keys(space, path);
CREATE INDEX keys_parent ON keys(parent_id, name);

-- Versions: kind 0 = removed (tombstone), 1 = regular file, 2 = directory,
-- 3 = symlink (target in value), 4 = value (config text, process record JSON).
-- The primary key makes "latest version of key K on branch B at or before
-- transaction T" one B-tree seek.
CREATE TABLE versions (
    key_id    INTEGER NOT NULL REFERENCES keys(id),
    branch_id INTEGER NOT NULL REFERENCES branches(id),
    tx_id     INTEGER NOT NULL REFERENCES transactions(id),
    kind      INTEGER NOT NULL,
    mode      INTEGER NOT NULL DEFAULT 0,
    uid       INTEGER NOT NULL DEFAULT 0,
    gid       INTEGER NOT NULL DEFAULT 0,
    size      INTEGER NOT NULL DEFAULT 0,
    mtime_ns  INTEGER NOT NULL DEFAULT 0,
    digest    BLOB,                 -- BLAKE3 of the whole file content
    manifest  BLOB,                 -- encoded list of chunk ids
    value     TEXT,
    PRIMARY KEY (key_id, branch_id, tx_id)
) WITHOUT ROWID;
-- What a transaction, or a range of a branch's transactions, wrote (show,
-- diff, merge): proportional to the changes, not to the state.
CREATE INDEX versions_branch_tx ON versions(branch_id, tx_id);

-- Content-addressed chunks (content-defined chunking, zstd per chunk).
-- codec 0 = stored raw, 1 = zstd.
CREATE TABLE chunks (
    id    INTEGER PRIMARY KEY,
    hash  BLOB NOT NULL,
    size  INTEGER NOT NULL,
    codec INTEGER NOT NULL,
    data  BLOB NOT NULL
);
CREATE UNIQUE INDEX chunks_hash ON chunks(hash);

-- Append-only log rows, stamped by the transaction that stored them.
CREATE TABLE log_entries (
    id         INTEGER PRIMARY KEY,
    branch_id  INTEGER NOT NULL REFERENCES branches(id),
    tx_id      INTEGER NOT NULL REFERENCES transactions(id),
    time_us    INTEGER NOT NULL,
    source     TEXT NOT NULL,
    severity   INTEGER NOT NULL,
    message    TEXT NOT NULL,
    process_id INTEGER
);
CREATE INDEX log_entries_tx ON log_entries(branch_id, tx_id);

-- Named moments (tags).
CREATE TABLE tags (
    name       TEXT PRIMARY KEY,
    branch_id  INTEGER NOT NULL REFERENCES branches(id),
    tx_id      INTEGER NOT NULL,
    created_us INTEGER NOT NULL
);

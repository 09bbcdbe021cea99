-- dbos temporal core (PostgreSQL with the periods extension).
-- Same model as SQLite's: keys, and versions stamped by transaction and
-- branch. Here the state table `versions` holds the newest version of each
-- key on each branch and is SYSTEM VERSIONED by periods: every replaced
-- version moves to `versions_history` with its system time period, and
-- psql users get versions_with_history, versions__as_of(ts), etc.
-- Transaction ids and branches, which SQL:2011 system time cannot express,
-- are ordinary columns and tables beside it.
CREATE EXTENSION IF NOT EXISTS periods CASCADE;

CREATE TABLE branches (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    parent_id   bigint REFERENCES branches(id),
    fork_tx     bigint,
    created_us  bigint NOT NULL,
    deleted_us  bigint
);
CREATE UNIQUE INDEX branches_live_name ON branches(name) WHERE deleted_us IS NULL;

CREATE TABLE transactions (
    id              bigint PRIMARY KEY,
    branch_id       bigint NOT NULL REFERENCES branches(id),
    time_us         bigint NOT NULL,
    author          text NOT NULL,
    host            text NOT NULL,
    command         text NOT NULL,
    message         text,
    merge_branch_id bigint,
    merge_tx        bigint,
    hash            bytea NOT NULL
);
CREATE INDEX transactions_branch ON transactions(branch_id, id);
CREATE INDEX transactions_time ON transactions(time_us, id);
CREATE INDEX transactions_merge ON transactions(merge_branch_id, branch_id, id)
    WHERE merge_branch_id IS NOT NULL;
-- The merges recorded on a branch (merge bases walk them).
CREATE INDEX transactions_merges_on ON transactions(branch_id, id)
    WHERE merge_branch_id IS NOT NULL;

CREATE TABLE keys (
    id        bigserial PRIMARY KEY,
    space     text NOT NULL,
    path      text NOT NULL,
    parent_id bigint REFERENCES keys(id),
    name      text NOT NULL
);
CREATE UNIQUE INDEX keys_space_path ON keys(space, path);
CREATE INDEX keys_parent ON keys(parent_id, name);

CREATE TABLE versions (
    key_id    bigint NOT NULL REFERENCES keys(id),
    branch_id bigint NOT NULL REFERENCES branches(id),
    tx_id     bigint NOT NULL,
    kind      smallint NOT NULL,
    mode      bigint NOT NULL DEFAULT 0,
    uid       bigint NOT NULL DEFAULT 0,
    gid       bigint NOT NULL DEFAULT 0,
    size      bigint NOT NULL DEFAULT 0,
    mtime_ns  bigint NOT NULL DEFAULT 0,
    digest    bytea,
    manifest  bytea,
    value     text,
    PRIMARY KEY (key_id, branch_id)
);
SELECT periods.add_system_time_period('versions');
SELECT periods.add_system_versioning('versions');
CREATE INDEX versions_branch_tx ON versions(branch_id, tx_id);
-- periods creates the history table without indexes: as-of reads and
-- change-proportional diffs need these.
CREATE INDEX versions_history_key ON versions_history(key_id, branch_id, tx_id);
CREATE INDEX versions_history_branch_tx ON versions_history(branch_id, tx_id);

CREATE TABLE chunks (
    id    bigserial PRIMARY KEY,
    hash  bytea NOT NULL UNIQUE,
    size  bigint NOT NULL,
    codec smallint NOT NULL,
    data  bytea NOT NULL
);

CREATE TABLE log_entries (
    id         bigserial PRIMARY KEY,
    branch_id  bigint NOT NULL REFERENCES branches(id),
    tx_id      bigint NOT NULL REFERENCES transactions(id) DEFERRABLE INITIALLY DEFERRED,
    time_us    bigint NOT NULL,
    source     text NOT NULL,
    severity   smallint NOT NULL,
    message    text NOT NULL,
    process_id bigint
);
CREATE INDEX log_entries_tx ON log_entries(branch_id, tx_id);

CREATE TABLE tags (
    name       text PRIMARY KEY,
    branch_id  bigint NOT NULL REFERENCES branches(id),
    tx_id      bigint NOT NULL,
    created_us bigint NOT NULL
);

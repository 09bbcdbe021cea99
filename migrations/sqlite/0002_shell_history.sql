-- Interactive shell line history, per user, kept as rows for audit.
CREATE TABLE shell_history (
    id        INTEGER PRIMARY KEY,
    time_us   INTEGER NOT NULL,
    author    TEXT NOT NULL,
    branch    TEXT NOT NULL,
    line      TEXT NOT NULL
);
CREATE INDEX shell_history_author ON shell_history(author, id);

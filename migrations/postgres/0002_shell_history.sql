-- Interactive shell line history, per user, kept as rows for audit.
CREATE TABLE shell_history (
    id        bigserial PRIMARY KEY,
    time_us   bigint NOT NULL,
    author    TEXT NOT NULL,
    branch    TEXT NOT NULL,
    line      TEXT NOT NULL
);
CREATE INDEX shell_history_author ON shell_history(author, id);

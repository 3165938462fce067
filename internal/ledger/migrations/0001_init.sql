-- Targets: one per Ripio base URL + client id; rows of one are never skipped on another.
CREATE TABLE targets (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    target_id   INTEGER NOT NULL REFERENCES targets(id),
    source_file TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    outcome     TEXT NOT NULL DEFAULT 'running',
    options     TEXT NOT NULL DEFAULT '{}',
    counts      TEXT NOT NULL DEFAULT '{}',
    pid         INTEGER NOT NULL DEFAULT 0,
    host        TEXT NOT NULL DEFAULT ''
);

-- Rows with a customer key of their own.
CREATE TABLE rows (
    target_id        INTEGER NOT NULL REFERENCES targets(id),
    row_key          TEXT NOT NULL,
    email            TEXT NOT NULL,
    type             TEXT NOT NULL,
    customer_id_sent TEXT NOT NULL DEFAULT '',
    customer_id      TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    http_status      INTEGER NOT NULL DEFAULT 0,
    error_code       INTEGER NOT NULL DEFAULT 0,
    error_message    TEXT NOT NULL DEFAULT '',
    source_file      TEXT NOT NULL,
    source_line      INTEGER NOT NULL,
    fingerprint      TEXT NOT NULL,
    first_run        INTEGER NOT NULL,
    last_run         INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (target_id, row_key)
) WITHOUT ROWID;

-- Rows without a key of their own (invalid, duplicate), kept by file and line.
CREATE TABLE line_issues (
    target_id   INTEGER NOT NULL REFERENCES targets(id),
    source_file TEXT NOT NULL,
    source_line INTEGER NOT NULL,
    status      TEXT NOT NULL,
    email       TEXT NOT NULL,
    type        TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    reason      TEXT NOT NULL,
    run_id      INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (target_id, source_file, source_line)
) WITHOUT ROWID;

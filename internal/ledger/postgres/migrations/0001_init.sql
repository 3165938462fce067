-- The SQLite ledger's schema (internal/ledger/migrations, as of its 0004), in
-- PostgreSQL's types. Times are the database's clock (now()), so that every
-- process of a fleet reads one clock.

-- Targets: one per Ripio base URL + client id; rows of one are never skipped on another.
CREATE TABLE targets (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE
);

CREATE TABLE runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_id   bigint NOT NULL REFERENCES targets (id),
    source_file text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    outcome     text NOT NULL DEFAULT 'running',
    -- json, not jsonb: the options read back as they were written.
    options     json NOT NULL DEFAULT '{}',
    counts      jsonb NOT NULL DEFAULT '{}',
    pid         integer NOT NULL DEFAULT 0,
    host        text NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_target ON runs (target_id, id);

-- Rows with a customer key of their own. id is the order rows were first
-- written in (the file's): a range of ids is what a later worker can claim.
-- No index on status: Record changes status on every row, and an indexed
-- column changed makes every such update a new index entry in each index
-- (no HOT update); report, failures and recovery scan the target's rows,
-- which a status index would not spare when most rows are done anyway.
-- fillfactor leaves a page room for the updated version of its rows.
-- target_id references targets without a foreign key, here and in
-- line_issues: its check is a trigger and a locking read of targets for
-- every row inserted, 5 of a 256-row mark's 8 ms; targets are never
-- deleted, and only the store writes target ids.
CREATE TABLE rows (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_id        bigint NOT NULL,
    row_key          text NOT NULL,
    email            text NOT NULL,
    type             text NOT NULL,
    customer_id_sent text NOT NULL DEFAULT '',
    customer_id      text NOT NULL DEFAULT '',
    status           text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    http_status      integer NOT NULL DEFAULT 0,
    error_code       integer NOT NULL DEFAULT 0,
    error_message    text NOT NULL DEFAULT '',
    source_file      text NOT NULL,
    source_line      integer NOT NULL,
    fingerprint      text NOT NULL,
    -- Lower-cased by bulkcreate (Unicode), for rows keyed otherwise than by
    -- their email; '' for rows keyed by it, which stay out of its index.
    folded_email     text NOT NULL DEFAULT '',
    first_run        bigint NOT NULL,
    last_run         bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (target_id, row_key)
) WITH (fillfactor = 85);
CREATE INDEX rows_by_email ON rows (target_id, folded_email) WHERE folded_email <> '';

-- Rows without a key of their own (invalid, duplicate), kept by file and
-- line. email, type and customer_id are the fields as the file had them,
-- which may not be UTF-8 (that is why some are invalid): bytea keeps them
-- byte for byte, where text would refuse the row and stop the import.
CREATE TABLE line_issues (
    target_id   bigint NOT NULL,
    source_file text NOT NULL,
    source_line integer NOT NULL,
    status      text NOT NULL,
    email       bytea NOT NULL,
    type        bytea NOT NULL,
    customer_id bytea NOT NULL,
    reason      text NOT NULL,
    run_id      bigint NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (target_id, source_file, source_line)
);

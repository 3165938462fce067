-- Fleet mode: an import loads its rows to send as queued, in chunks; any
-- process working the target (a worker, or the import's own pool) claims a
-- chunk by lease, on the database's clock, and sends its rows.

-- A chunk is a claim's unit. fence grows by one on every claim: a write of
-- a worker names the chunk and the fence it claimed it with, and is refused
-- whole (fence_chunks) once another has claimed the chunk since.
-- lease_until is NULL while nobody ever held the chunk, or since its owner
-- gave it back. done: every row of it was taken to an outcome.
CREATE TABLE chunks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_id   bigint NOT NULL,
    run_id      bigint NOT NULL,
    owner       bigint NOT NULL DEFAULT 0, -- workers.id of the last claim; 0: never claimed
    fence       bigint NOT NULL DEFAULT 0,
    lease_until timestamptz,
    done        boolean NOT NULL DEFAULT false
);
-- Claims scan the open chunks of a target in order; done ones leave the index.
CREATE INDEX chunks_open ON chunks (target_id, id) WHERE NOT done;
CREATE INDEX chunks_by_run ON chunks (run_id);

-- The chunk that queued a row last; NULL for rows no fleet import loaded.
-- A row is owed work while its chunk is not done and its status is
-- queued, in_flight or in_doubt. Never updated after the row is queued, so
-- Record's updates stay HOT.
ALTER TABLE rows ADD COLUMN chunk_id bigint;
CREATE INDEX rows_by_chunk ON rows (chunk_id) WHERE chunk_id IS NOT NULL;

-- An import whose rows were all queued: the last chunk done ends it.
ALTER TABLE runs ADD COLUMN loaded_at timestamptz;

-- The processes that claim chunks, for report: no secret, only where they
-- run and how fast they send.
CREATE TABLE workers (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_id  bigint NOT NULL,
    host       text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz,
    requests   bigint NOT NULL DEFAULT 0,
    rate       double precision NOT NULL DEFAULT 0
);

-- fence_chunks refuses a commit that writes for a chunk claimed by another
-- since its writer claimed it: that writer no longer holds the chunk's rows.
CREATE FUNCTION fence_chunks(ids bigint[], fences bigint[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- FOR SHARE: a claim of one of these chunks waits for this commit, and
    -- a claim committed first is seen here.
    IF (SELECT count(*) FROM (SELECT 1 FROM chunks c JOIN unnest(ids, fences) AS u (id, f)
            ON c.id = u.id AND c.fence = u.f FOR SHARE OF c) AS held) <> cardinality(ids) THEN
        RAISE EXCEPTION 'a chunk of this write was claimed by another worker' USING ERRCODE = 'BC002';
    END IF;
END
$$;

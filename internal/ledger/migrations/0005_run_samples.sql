-- A run's time series for the run report: what the run did over each
-- stretch of time (5 s as sampled; coarser as a long run is compacted, see
-- Ledger.AppendSamples). Counters are the stretch's own, not running totals,
-- so adjacent samples merge by adding them. No foreign key on run_id: a
-- sample that cannot be written would fail the writer's whole batch, row
-- outcomes included.
CREATE TABLE run_samples (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL, -- start, Unix milliseconds
    span_ms    INTEGER NOT NULL,
    requests   INTEGER NOT NULL, -- create requests sent
    throttled  INTEGER NOT NULL, -- of them answered 429
    created    INTEGER NOT NULL, -- rows, as the run counts them
    exists_    INTEGER NOT NULL,
    rejected   INTEGER NOT NULL,
    failed     INTEGER NOT NULL,
    in_doubt   INTEGER NOT NULL,
    rows_done  INTEGER NOT NULL, -- rows finished, whatever their end
    rate_milli INTEGER NOT NULL  -- the client's rate limit in force, 1/1000 req/s; 0: none
);
CREATE INDEX run_samples_by_run ON run_samples (run_id, at_ms);

-- fence_runs refuses a commit that writes for a run no longer running: one
-- that another import, having taken the target after this run's lock
-- connection ended, marked crashed. Its rows in flight were made in doubt by
-- that import; writing over them again would record a lie.
CREATE FUNCTION fence_runs(ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM runs WHERE id = ANY (ids) AND outcome = 'running') <> cardinality(ids) THEN
        RAISE EXCEPTION 'a run of this write is no longer running' USING ERRCODE = 'BC001';
    END IF;
END
$$;

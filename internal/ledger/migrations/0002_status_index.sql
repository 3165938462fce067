-- report and failures read rows by status; resume reads them by key.
CREATE INDEX rows_by_status ON rows (target_id, status);
CREATE INDEX runs_by_target ON runs (target_id, id);

-- A worker's lease, so that report can tell one whose heartbeat stopped
-- (it died, or was cut off from the database) from one that is sending.
ALTER TABLE workers ADD COLUMN lease_seconds double precision NOT NULL DEFAULT 15;

-- When a chunk was last claimed, on the database's clock: with the lease
-- it took over (lease_until before the claim), how soon a dead worker's
-- chunk was taken. NULL while nobody ever claimed it.
ALTER TABLE chunks ADD COLUMN claimed_at timestamptz;

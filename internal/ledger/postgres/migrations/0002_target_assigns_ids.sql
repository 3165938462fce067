-- A target whose Create Customer answered with an id of its own (not the
-- customerId sent) assigns its ids: it does not refuse a second create of
-- one person, so the importer no longer re-sends its rows in doubt on its
-- own. When the first such answer was recorded; NULL while none was.
ALTER TABLE targets ADD COLUMN assigns_ids_since timestamptz;

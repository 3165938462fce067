-- Rows keyed otherwise than by their email (a customerId column, 'id:...')
-- carry their email lower-cased by bulkcreate (folded_email) and are indexed
-- by it: a later file keyed by email must see a customer that an earlier
-- file created under the partner's id, or it would send the same person
-- again under another id. The email is lower-cased as bulkcreate's keys are
-- (Unicode; bulkcreate_lower is Go's strings.ToLower, registered on the
-- ledger's connections), not by SQLite's lower(), which lowers ASCII letters
-- only. Rows keyed by email have their email in their key already and stay
-- out of the index: indexing every row's email would cost each new row a
-- page write.
ALTER TABLE rows ADD COLUMN folded_email TEXT NOT NULL DEFAULT '';
UPDATE rows SET folded_email = bulkcreate_lower(email) WHERE row_key GLOB 'id:*';
CREATE INDEX rows_by_email ON rows (target_id, folded_email) WHERE folded_email != '';

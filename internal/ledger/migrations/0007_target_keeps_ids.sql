-- A target whose Create Customer answered with the customerId sent, or
-- "already exists", keeps the ids it is sent: a second create of one
-- person is refused, so the importer re-sends rows in doubt there. When
-- the first such answer was recorded; '' while none was (then rows in
-- doubt from earlier runs are held until an answer shows it).
ALTER TABLE targets ADD COLUMN keeps_ids_since TEXT NOT NULL DEFAULT '';

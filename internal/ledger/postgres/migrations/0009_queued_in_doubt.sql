-- A row in doubt that an import with resendInDoubt queued (status queued,
-- so that its workers send it rather than hold it) keeps here that it may
-- have been created: if the import is stopped before the row is sent,
-- lookups read it in_doubt again, not failed.
ALTER TABLE rows ADD COLUMN queued_in_doubt boolean NOT NULL DEFAULT false;

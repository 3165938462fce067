-- How a fleet import's loading ended (Loaded's outcome: completed, or
-- interrupted when it stopped before the end of its file): the run ends
-- so once its last chunk is done. NULL until it is loaded.
ALTER TABLE runs ADD COLUMN load_outcome text;

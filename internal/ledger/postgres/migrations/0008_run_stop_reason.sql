-- Why a fleet import was stopped before its rows were all sent: its
-- --max-errors limit, reached by the rows of its chunks whichever process
-- sent them. NULL while it was not. Once set, no process claims the run's
-- chunks; the run ends aborted once none of them is held, its rows not sent
-- left queued for a later import of the file.
ALTER TABLE runs ADD COLUMN stop_reason text;

-- One rate budget per target, shared by every process that sends to it:
-- a GCRA schedule (tat, the theoretical arrival time of the next free
-- departure slot) and the adaptive law's state (package ratelimit's State),
-- times on the database's clock so that every process reads one clock.
-- ceiling is the fleet's most requests per second (import --rps); NULL: none.
-- rate, lim, margin and since are NULL until a process published the law's
-- state (its first 429). reserved counts every slot ever reserved, from
-- which a process reads its share of the fleet's sending; version moves
-- with every change but a reservation, so that a reservation computed from
-- an older state is refused.
CREATE TABLE budgets (
    target_id    bigint PRIMARY KEY REFERENCES targets (id),
    ceiling      double precision,
    rate         double precision,
    lim          double precision,
    margin       double precision,
    since        timestamptz,
    paused_until timestamptz,
    tat          timestamptz NOT NULL DEFAULT now(),
    reserved     bigint NOT NULL DEFAULT 0,
    version      bigint NOT NULL DEFAULT 0
);

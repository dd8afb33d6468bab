-- Scheduled openings and their draws. At the opening, whoever waited in the pre-queue is placed
-- in the order of HMAC-SHA256(seed, token); the seed stays here, secret, until then (a Redis
-- loss cannot lose it), and only its SHA-256 (the commitment) is public before.
CREATE TABLE concert_draws (
    id          bigserial PRIMARY KEY,
    concert_id  bigint NOT NULL CONSTRAINT concert_draws_concert_fkey REFERENCES concerts (id),
    opens_at    timestamptz NOT NULL,
    seed        bytea NOT NULL CONSTRAINT concert_draws_seed_check CHECK (length(seed) = 32),
    commitment  text NOT NULL,
    drawn_at    timestamptz,
    -- The drawn tokens' HMACs, 32 bytes each, in ascending order: rank n is bytes 32(n-1)..32n.
    hmacs       bytea,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- At most one opening waits per concert.
CREATE UNIQUE INDEX concert_draws_pending_key ON concert_draws (concert_id) WHERE drawn_at IS NULL;
CREATE INDEX concert_draws_concert_idx ON concert_draws (concert_id, id);

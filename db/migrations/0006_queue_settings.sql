-- The operator's live settings of each concert's queue. Redis holds the copy every process
-- reads; this is the source of truth that restores it if Redis comes back empty.
CREATE TABLE queue_settings (
    concert_id  bigint PRIMARY KEY CONSTRAINT queue_settings_concert_fkey REFERENCES concerts (id),
    admit_rate  double precision CONSTRAINT queue_settings_admit_rate_check CHECK (admit_rate >= 0),
    max_active  integer CONSTRAINT queue_settings_max_active_check CHECK (max_active >= 0),
    paused      boolean,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

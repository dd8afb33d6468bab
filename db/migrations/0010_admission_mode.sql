-- How each concert's admitter chooses its rate: 'fixed' (the configured admit_rate) or
-- 'inventory' (no faster than the seats left can serve and the booking API can take, with the
-- configured rate as the upper bound). NULL: the default, fixed.
ALTER TABLE queue_settings
    ADD COLUMN admission_mode text
        CONSTRAINT queue_settings_admission_mode_check CHECK (admission_mode IN ('fixed', 'inventory'));

-- Inventory-aware admission and the operators' console count each concert's ended tokens by
-- reason every tick: an index keeps that from reading every concert's history.
CREATE INDEX waiting_token_concert_reason_idx ON waiting_token (concert_id, reason);

-- Seats on sale per date, kept in step with every change of a seat by triggers, so that nobody
-- counts seats to know it: the sold-out state, the dates list and seat-map versions read these.
-- In stripes (by backend), so that concurrent holds on one date seldom touch the same row; a
-- date's figures are the sums over its stripes. `version` only grows: any change of any seat of
-- the date raises it.
CREATE TABLE schedule_stock (
    schedule_id  bigint NOT NULL
                 CONSTRAINT schedule_stock_schedule_fkey REFERENCES concert_schedules (id),
    stripe       smallint NOT NULL,
    available    bigint NOT NULL DEFAULT 0,
    version      bigint NOT NULL DEFAULT 0,
    CONSTRAINT schedule_stock_pkey PRIMARY KEY (schedule_id, stripe)
);

INSERT INTO schedule_stock (schedule_id, stripe, available, version)
SELECT schedule_id, 0, count(*) FILTER (WHERE status = 'AVAILABLE'), 1
FROM concert_seats GROUP BY schedule_id;

CREATE FUNCTION schedule_stock_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO schedule_stock AS st (schedule_id, stripe, available, version)
        SELECT schedule_id, pg_backend_pid() % 16, count(*) FILTER (WHERE status = 'AVAILABLE'), 1
        FROM new_seats GROUP BY schedule_id
        ON CONFLICT (schedule_id, stripe) DO UPDATE
        SET available = st.available + EXCLUDED.available, version = st.version + 1;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO schedule_stock AS st (schedule_id, stripe, available, version)
        SELECT schedule_id, pg_backend_pid() % 16, -count(*) FILTER (WHERE status = 'AVAILABLE'), 1
        FROM old_seats GROUP BY schedule_id
        ON CONFLICT (schedule_id, stripe) DO UPDATE
        SET available = st.available + EXCLUDED.available, version = st.version + 1;
    ELSE
        INSERT INTO schedule_stock AS st (schedule_id, stripe, available, version)
        SELECT schedule_id, pg_backend_pid() % 16, sum(change), 1
        FROM (SELECT schedule_id, (status = 'AVAILABLE')::int AS change FROM new_seats
              UNION ALL
              SELECT schedule_id, -(status = 'AVAILABLE')::int FROM old_seats) AS changes
        GROUP BY schedule_id
        ON CONFLICT (schedule_id, stripe) DO UPDATE
        SET available = st.available + EXCLUDED.available, version = st.version + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER concert_seats_stock_insert AFTER INSERT ON concert_seats
    REFERENCING NEW TABLE AS new_seats FOR EACH STATEMENT EXECUTE FUNCTION schedule_stock_follow();
CREATE TRIGGER concert_seats_stock_update AFTER UPDATE ON concert_seats
    REFERENCING OLD TABLE AS old_seats NEW TABLE AS new_seats
    FOR EACH STATEMENT EXECUTE FUNCTION schedule_stock_follow();
CREATE TRIGGER concert_seats_stock_delete AFTER DELETE ON concert_seats
    REFERENCING OLD TABLE AS old_seats FOR EACH STATEMENT EXECUTE FUNCTION schedule_stock_follow();

-- Refunds: the whole amount back on the balance, the reservation CANCELED, its seats on sale.
ALTER TABLE balance_ledger DROP CONSTRAINT balance_ledger_kind_check;
ALTER TABLE balance_ledger ADD CONSTRAINT balance_ledger_kind_check
    CHECK (kind IN ('CHARGE', 'PAYMENT', 'REFUND'));
ALTER TABLE balance_ledger DROP CONSTRAINT balance_ledger_kind_payment_check;
ALTER TABLE balance_ledger ADD CONSTRAINT balance_ledger_kind_payment_check
    CHECK ((kind IN ('PAYMENT', 'REFUND')) = (payment_id IS NOT NULL));
DROP INDEX balance_ledger_payment_key;
-- One debit and at most one credit per payment.
CREATE UNIQUE INDEX balance_ledger_payment_kind_key ON balance_ledger (payment_id, kind)
    WHERE payment_id IS NOT NULL;

CREATE TABLE refunds (
    id               bigserial PRIMARY KEY,
    payment_id       bigint NOT NULL CONSTRAINT refunds_payment_fkey REFERENCES payments (id),
    user_id          bigint NOT NULL CONSTRAINT refunds_user_fkey REFERENCES users (id),
    idempotency_key  text NOT NULL CONSTRAINT refunds_idempotency_key_check
                     CHECK (length(idempotency_key) BETWEEN 1 AND 64),
    balance_after    bigint NOT NULL CONSTRAINT refunds_balance_after_check CHECK (balance_after >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refunds_payment_key UNIQUE (payment_id),
    CONSTRAINT refunds_user_idempotency_key UNIQUE (user_id, idempotency_key)
);

-- Putting seats back on sale now also serves refunds (RESERVED seats).
DROP FUNCTION put_back_on_sale(bigint[]);
CREATE FUNCTION put_back_on_sale(p_seats bigint[], p_from text DEFAULT 'PENDING')
RETURNS SETOF bigint LANGUAGE sql AS $$
    UPDATE concert_seats SET status = 'AVAILABLE', reservation_id = NULL, hold_expires_at = NULL
    WHERE id = ANY(p_seats) AND status = p_from
    RETURNING id
$$;

-- "My bookings", newest first.
CREATE INDEX reservations_user_idx ON reservations (user_id, id DESC);

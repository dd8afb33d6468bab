-- Stadium scale: no request reads every seat of a date.

-- Best-available holds start from the free seats, not from seat 1: at 90 % sold the search no
-- longer steps over every sold seat. The planner takes it for the picker's "AVAILABLE, in seat
-- order" scan; statements that also want run-out holds (OR … PENDING) cannot use it, so they
-- keep the unique (schedule_id, seat_number) index.
CREATE INDEX concert_seats_free_idx ON concert_seats (schedule_id, seat_number)
    WHERE status = 'AVAILABLE';

-- A seat map's version counts holds that ran out but are not swept yet (lazy expiry changes
-- the map without changing a row): found through the few PENDING seats of the date alone.
CREATE INDEX concert_seats_pending_schedule_idx ON concert_seats (schedule_id, hold_expires_at)
    WHERE status = 'PENDING';

-- The seats a quantity hold takes: the lowest run of p_quantity adjacent seats among those
-- already back on sale (AVAILABLE, through concert_seats_free_idx), else the lowest p_quantity of
-- them. Only when fewer than p_quantity are AVAILABLE does it also look at holds that ran out
-- but are not swept yet (the sweeper frees them within a tick), walking the date in seat order as
-- before. Locks as it goes, skipping other requests' locks; never waits.
CREATE OR REPLACE FUNCTION pick_free_seats(p_schedule bigint, p_quantity integer)
RETURNS TABLE (id bigint, seat_number integer, price bigint, reservation_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    free CURSOR FOR
        SELECT s.id, s.seat_number, s.price, s.reservation_id FROM concert_seats s
        WHERE s.schedule_id = p_schedule AND s.status = 'AVAILABLE'
        ORDER BY s.seat_number
        FOR NO KEY UPDATE SKIP LOCKED;
    on_sale CURSOR FOR
        SELECT s.id, s.seat_number, s.price, s.reservation_id FROM concert_seats s
        WHERE s.schedule_id = p_schedule
          AND (s.status = 'AVAILABLE' OR (s.status = 'PENDING' AND s.hold_expires_at <= now()))
        ORDER BY s.seat_number
        FOR NO KEY UPDATE SKIP LOCKED;
    seat record;
    run_start integer := 1;
    ids bigint[] := '{}';
    numbers integer[] := '{}';
    prices bigint[] := '{}';
    holders bigint[] := '{}';
    n integer := 0;
    pass integer;
BEGIN
    FOR pass IN 1..2 LOOP
        IF pass = 1 THEN OPEN free; ELSE OPEN on_sale; END IF;
        run_start := 1; n := 0;
        ids := '{}'; numbers := '{}'; prices := '{}'; holders := '{}';
        LOOP
            IF pass = 1 THEN FETCH free INTO seat; ELSE FETCH on_sale INTO seat; END IF;
            EXIT WHEN NOT FOUND;
            n := n + 1;
            ids[n] := seat.id;
            numbers[n] := seat.seat_number;
            prices[n] := seat.price;
            holders[n] := seat.reservation_id;
            IF n > 1 AND numbers[n] <> numbers[n - 1] + 1 THEN
                run_start := n;
            END IF;
            IF n - run_start + 1 = p_quantity THEN
                RETURN QUERY SELECT ids[i], numbers[i], prices[i], holders[i]
                             FROM generate_series(run_start, n) AS i;
                IF pass = 1 THEN CLOSE free; ELSE CLOSE on_sale; END IF;
                RETURN;
            END IF;
        END LOOP;
        IF pass = 1 THEN CLOSE free; ELSE CLOSE on_sale; END IF;
        -- Enough free seats but no run: the lowest of them, without the second pass.
        EXIT WHEN n >= p_quantity;
    END LOOP;
    RETURN QUERY SELECT ids[i], numbers[i], prices[i], holders[i]
                 FROM generate_series(1, least(n, p_quantity)) AS i;
END
$$;

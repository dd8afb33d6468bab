-- A hold in one round trip: what booking/holds.py did in five statements (user lock, pick,
-- taking over seats of holds that ran out, create, inside BEGIN … COMMIT) is one function call,
-- all or nothing. Refusals are raised (so that nothing stays changed), named by the message,
-- with what the caller needs to say why in the detail:
--   seat_limit        detail: the seats the user already holds or bought on the date
--   seat_unavailable  detail: the asked seat numbers not on sale (empty for a quantity)
--   no_such_seats     detail: the asked seat numbers the date does not have
-- A seat already in a live reservation still fails on reservation_seats_live_seat_key.
CREATE FUNCTION hold_seats(p_user bigint, p_schedule bigint, p_numbers integer[],
                           p_quantity integer, p_ttl_seconds double precision,
                           p_max_seats integer)
RETURNS TABLE (hold_id bigint, expires_at timestamptz, total bigint, held_numbers integer[],
               held_prices bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    wanted integer := coalesce(cardinality(p_numbers), p_quantity);
    taken integer;
    ids bigint[];
    numbers integer[];
    costs bigint[];
    holders bigint[];
    blocked bigint[];
    freed bigint;
    unknown integer[];
    new_id bigint;
    new_expiry timestamptz;
    new_total bigint;
BEGIN
    -- The user row when the admitter has not made it yet; then this user's holds one at a time
    -- (namespace 7301, booking.queries.LOCK_USER_HOLDS), so that two at once cannot both pass
    -- the limit. Only the same user's requests ever wait here.
    INSERT INTO users (id) VALUES (p_user) ON CONFLICT DO NOTHING;
    PERFORM pg_advisory_xact_lock(7301, hashint8(p_user));
    taken := seats_taken(p_user, p_schedule);
    IF taken + wanted > p_max_seats THEN
        RAISE EXCEPTION 'seat_limit' USING DETAIL = taken::text;
    END IF;

    -- These seat numbers, or the best p_quantity: on sale and not locked by anyone else.
    IF p_numbers IS NOT NULL THEN
        SELECT array_agg(s.id ORDER BY s.seat_number), array_agg(s.seat_number ORDER BY s.seat_number),
               array_agg(s.price ORDER BY s.seat_number),
               array_agg(s.reservation_id ORDER BY s.seat_number)
        INTO ids, numbers, costs, holders
        FROM (SELECT c.id, c.seat_number, c.price, c.reservation_id FROM concert_seats c
              WHERE c.schedule_id = p_schedule AND c.seat_number = ANY (p_numbers)
                AND (c.status = 'AVAILABLE' OR (c.status = 'PENDING' AND c.hold_expires_at <= now()))
              ORDER BY c.seat_number
              FOR NO KEY UPDATE SKIP LOCKED) AS s;
    ELSE
        SELECT array_agg(f.id ORDER BY f.seat_number), array_agg(f.seat_number ORDER BY f.seat_number),
               array_agg(f.price ORDER BY f.seat_number),
               array_agg(f.reservation_id ORDER BY f.seat_number)
        INTO ids, numbers, costs, holders
        FROM pick_free_seats(p_schedule, p_quantity) AS f;
    END IF;

    -- Picked seats whose earlier hold ran out still name that reservation: end it (EXPIRED) and
    -- free its other seats. A reservation locked by someone else (being paid or swept) is
    -- skipped, never waited for, and its seats are not taken.
    IF EXISTS (SELECT FROM unnest(holders) AS h WHERE h IS NOT NULL) THEN
        WITH locked AS (
            SELECT r.id FROM reservations r
            WHERE r.id = ANY (holders) AND r.status = 'WAITING' AND r.hold_expires_at <= now()
            FOR UPDATE SKIP LOCKED
        ), expired AS (
            UPDATE reservations r SET status = 'EXPIRED', updated_at = now()
            FROM locked WHERE r.id = locked.id
            RETURNING r.id
        ), released AS (
            SELECT put_back_on_sale(array(
                SELECT c.id FROM concert_seats c
                WHERE c.reservation_id IN (SELECT locked.id FROM locked) AND c.status = 'PENDING'
                  AND c.id <> ALL (ids)
                FOR NO KEY UPDATE SKIP LOCKED)) AS id
        )
        SELECT array(SELECT r.id FROM reservations r
                     WHERE r.id = ANY (holders) AND r.status = 'WAITING'
                       AND r.id NOT IN (SELECT expired.id FROM expired)),
               (SELECT count(*) FROM released)
        INTO blocked, freed;
        IF cardinality(blocked) > 0 THEN
            SELECT array_agg(p.i ORDER BY p.n), array_agg(p.n ORDER BY p.n),
                   array_agg(p.c ORDER BY p.n)
            INTO ids, numbers, costs
            FROM unnest(ids, numbers, costs, holders) AS p(i, n, c, h)
            WHERE p.h IS NULL OR p.h <> ALL (blocked);
        END IF;
    END IF;

    IF coalesce(cardinality(ids), 0) < wanted THEN
        IF p_numbers IS NULL THEN
            RAISE EXCEPTION 'seat_unavailable' USING DETAIL = '';
        END IF;
        unknown := array(SELECT DISTINCT w.n FROM unnest(p_numbers) AS w(n)
                         WHERE NOT EXISTS (SELECT FROM concert_seats c
                                           WHERE c.schedule_id = p_schedule AND c.seat_number = w.n)
                         ORDER BY w.n);
        IF cardinality(unknown) > 0 THEN
            RAISE EXCEPTION 'no_such_seats' USING DETAIL = array_to_string(unknown, ',');
        END IF;
        RAISE EXCEPTION 'seat_unavailable' USING DETAIL = array_to_string(array(
            SELECT DISTINCT w.n FROM unnest(p_numbers) AS w(n)
            WHERE w.n <> ALL (coalesce(numbers, '{}')) ORDER BY w.n), ',');
    END IF;

    WITH seats AS (
        SELECT c.id, c.seat_number, c.price FROM concert_seats c WHERE c.id = ANY (ids)
    ), reservation AS (
        INSERT INTO reservations (user_id, schedule_id, status, seat_count, total_price,
                                  hold_expires_at)
        SELECT p_user, p_schedule, 'WAITING', count(*), sum(seats.price),
               now() + make_interval(secs => p_ttl_seconds)
        FROM seats
        RETURNING reservations.id, reservations.hold_expires_at, reservations.total_price
    ), pending AS (
        UPDATE concert_seats c
        SET status = 'PENDING', reservation_id = r.id, hold_expires_at = r.hold_expires_at
        FROM reservation r WHERE c.id = ANY (ids)
    ), links AS (
        INSERT INTO reservation_seats (reservation_id, reservation_status, seat_id, seat_number,
                                       price)
        SELECT r.id, 'WAITING', s.id, s.seat_number, s.price FROM reservation r, seats s
    )
    SELECT r.id, r.hold_expires_at, r.total_price INTO new_id, new_expiry, new_total
    FROM reservation r;
    RETURN QUERY SELECT new_id, new_expiry, new_total, numbers, costs;
END
$$;

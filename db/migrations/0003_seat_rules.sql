-- Two rules of booking, each defined once and used by every statement that needs it.

-- The seats a user holds (a live hold) or bought on one date: what MAX_SEATS_PER_USER counts.
CREATE FUNCTION seats_taken(p_user bigint, p_schedule bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(seat_count), 0)::int FROM reservations
    WHERE user_id = p_user AND schedule_id = p_schedule AND status IN ('WAITING', 'RESERVED')
      AND (status = 'RESERVED' OR hold_expires_at > now())
$$;

-- Put held seats back on sale: those of these ids that are still PENDING. The caller chooses
-- the seats (and how to lock them); returns the ids it freed.
CREATE FUNCTION put_back_on_sale(p_seats bigint[]) RETURNS SETOF bigint
LANGUAGE sql AS $$
    UPDATE concert_seats SET status = 'AVAILABLE', reservation_id = NULL, hold_expires_at = NULL
    WHERE id = ANY(p_seats) AND status = 'PENDING'
    RETURNING id
$$;

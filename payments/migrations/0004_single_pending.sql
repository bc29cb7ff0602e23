-- One two-phase transfer in one round trip: payments.reserve_pending (a PENDING transfer) and
-- payments.resolve_pending (its post or void), for callers that reserve and resolve one transfer
-- at a time (kiosk loads). Each does what payments.ledger.store.create_transfers_txn does for a
-- batch of that one transfer, in the same order: the writer lock shared, the accounts locked in
-- id order (then the reservation's row), the id looked up, the rules of payments.ledger.engine
-- in its order, and the same rows written. payments.ledger.pending calls them only for the
-- transfers whose fields alone pass the engine's field checks (everything else takes the
-- general path), and tests/payments/test_ledger_pending.py compares the two paths.
--
-- Why functions and not one statement: a statement reads from the snapshot of its start, taken
-- before it waits for any lock, so it would miss what the transactions it waited for committed
-- (an id that failed meanwhile, a reservation just made). A VOLATILE function takes a fresh
-- snapshot for each query, so, like the general path's separate statements, it reads after it
-- holds its locks.
--
-- The constants are the ledger's own: writer lock 1346459980 (payments.ledger.sql.WRITER_LOCK),
-- transfer flags PENDING 2, POST 4, VOID 8; account flags DEBITS_MUST_NOT_EXCEED_CREDITS 1,
-- CREDITS_MUST_NOT_EXCEED_DEBITS 2, CLOSED 4. Results are payments.ledger.TransferResult values.
-- p_now NULL means now(); with p_refuse a result other than ok/exists is raised (SQLSTATE LR001,
-- the result as the message) so that the caller's statement rolls back whole.

CREATE FUNCTION payments.ledger_outcome(p_id uuid, p_result text, p_now timestamptz, p_refuse boolean)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF p_result NOT IN ('ok', 'exists') AND p_refuse THEN
        RAISE EXCEPTION USING ERRCODE = 'LR001', MESSAGE = p_result;
    END IF;
    -- The results a retry must not change (payments.ledger.types.TRANSIENT_RESULTS).
    IF p_result IN ('debit_account_not_found', 'credit_account_not_found', 'pending_transfer_not_found',
                    'pending_transfer_expired', 'exceeds_credits', 'exceeds_debits',
                    'debit_account_closed', 'credit_account_closed') THEN
        INSERT INTO payments.failed_transfers (id, result, failed_at) VALUES (p_id, p_result, p_now)
        ON CONFLICT (id) DO NOTHING;
    END IF;
    RETURN p_result;
END $$;

CREATE FUNCTION payments.reserve_pending(
    p_id uuid, p_debit uuid, p_credit uuid, p_amount bigint, p_ledger integer, p_code integer,
    p_timeout integer, p_user_data_128 uuid, p_user_data_64 bigint, p_user_data_32 integer,
    p_reference text, p_now timestamptz, p_refuse boolean
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    a payments.accounts;
    d payments.accounts;  -- all NULL while not found
    c payments.accounts;
    t payments.transfers;
    v_failed text;
    v_result text;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1346459980);
    FOR a IN SELECT * FROM payments.accounts WHERE id IN (p_debit, p_credit) ORDER BY id FOR UPDATE
    LOOP
        IF a.id = p_debit THEN d := a; ELSE c := a; END IF;
    END LOOP;
    SELECT * INTO t FROM payments.transfers WHERE id = p_id;
    IF FOUND THEN
        IF t.debit_account_id = p_debit AND t.credit_account_id = p_credit AND t.amount = p_amount
           AND t.pending_id IS NULL AND t.ledger = p_ledger AND t.code = p_code AND t.flags = 2
           AND t.timeout = p_timeout AND t.user_data_128 IS NOT DISTINCT FROM p_user_data_128
           AND t.user_data_64 IS NOT DISTINCT FROM p_user_data_64
           AND t.user_data_32 IS NOT DISTINCT FROM p_user_data_32
           AND t.reference IS NOT DISTINCT FROM p_reference THEN
            RETURN 'exists';
        END IF;
        RETURN payments.ledger_outcome(p_id, 'exists_with_different_fields', v_now, p_refuse);
    END IF;
    SELECT result INTO v_failed FROM payments.failed_transfers WHERE id = p_id;
    -- Bigint sums and limits compared as numeric, as the engine compares Python ints.
    v_result := CASE
        WHEN v_failed IS NOT NULL THEN 'id_already_failed'
        WHEN d.id IS NULL THEN 'debit_account_not_found'
        WHEN c.id IS NULL THEN 'credit_account_not_found'
        WHEN d.ledger <> c.ledger THEN 'accounts_must_have_the_same_ledger'
        WHEN p_ledger <> d.ledger THEN 'transfer_must_have_the_same_ledger_as_accounts'
        WHEN d.flags & 4 <> 0 THEN 'debit_account_closed'
        WHEN c.flags & 4 <> 0 THEN 'credit_account_closed'
        WHEN greatest(d.debits_pending, d.debits_posted, c.credits_pending, c.credits_posted)::numeric
             + p_amount > 9223372036854775807 THEN 'overflow'
        WHEN d.flags & 1 <> 0 AND d.debits_pending::numeric + d.debits_posted + p_amount
             > d.credits_posted::numeric + d.overdraft_limit THEN 'exceeds_credits'
        WHEN c.flags & 2 <> 0 AND c.credits_pending::numeric + c.credits_posted + p_amount
             > c.debits_posted THEN 'exceeds_debits'
    END;
    IF v_result IS NOT NULL THEN
        RETURN payments.ledger_outcome(p_id, v_result, v_now, p_refuse);
    END IF;
    INSERT INTO payments.transfers (id, debit_account_id, credit_account_id, amount, pending_id, ledger,
                                    code, flags, timeout, user_data_128, user_data_64, user_data_32,
                                    reference, "timestamp")
    VALUES (p_id, p_debit, p_credit, p_amount, NULL, p_ledger, p_code, 2, p_timeout, p_user_data_128,
            p_user_data_64, p_user_data_32, p_reference, v_now);
    UPDATE payments.accounts
    SET debits_pending = debits_pending + CASE WHEN id = p_debit THEN p_amount ELSE 0 END,
        credits_pending = credits_pending + CASE WHEN id = p_credit THEN p_amount ELSE 0 END
    WHERE id IN (p_debit, p_credit);
    INSERT INTO payments.pending_transfers (id, debit_account_id, credit_account_id, amount, expires_at,
                                            state)
    VALUES (p_id, p_debit, p_credit, p_amount,
            CASE WHEN p_timeout > 0 THEN v_now + p_timeout * interval '1 second' END, 'pending');
    RETURN 'ok';
END $$;

-- p_post: post (true) or void (false) the pending transfer p_pending_id. p_debit, p_credit and
-- p_amount may be NULL: the reservation's (an amount below it posts part of it).
CREATE FUNCTION payments.resolve_pending(
    p_id uuid, p_pending_id uuid, p_post boolean, p_debit uuid, p_credit uuid, p_amount bigint,
    p_ledger integer, p_code integer, p_user_data_128 uuid, p_user_data_64 bigint,
    p_user_data_32 integer, p_reference text, p_now timestamptz, p_refuse boolean
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_flags smallint := CASE WHEN p_post THEN 4 ELSE 8 END;
    p payments.transfers;  -- all NULL while not found, as the others
    s payments.pending_transfers;
    a payments.accounts;
    d payments.accounts;
    c payments.accounts;
    t payments.transfers;
    v_debit uuid := p_debit;
    v_credit uuid := p_credit;
    v_amount bigint := p_amount;
    v_failed text;
    v_result text;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1346459980);
    -- The pending transfer's immutable row: its accounts are locked with the others.
    SELECT * INTO p FROM payments.transfers WHERE id = p_pending_id;
    IF FOUND THEN
        v_debit := coalesce(p_debit, p.debit_account_id);
        v_credit := coalesce(p_credit, p.credit_account_id);
        v_amount := coalesce(p_amount, p.amount);
    END IF;
    FOR a IN
        SELECT * FROM payments.accounts
        WHERE id IN (p_debit, p_credit, p.debit_account_id, p.credit_account_id) ORDER BY id FOR UPDATE
    LOOP
        IF a.id = v_debit THEN d := a; END IF;
        IF a.id = v_credit THEN c := a; END IF;
    END LOOP;
    IF p.id IS NOT NULL THEN
        SELECT * INTO s FROM payments.pending_transfers WHERE id = p_pending_id FOR UPDATE;
    END IF;
    SELECT * INTO t FROM payments.transfers WHERE id = p_id;
    IF FOUND THEN
        IF t.debit_account_id IS NOT DISTINCT FROM v_debit AND t.credit_account_id IS NOT DISTINCT FROM v_credit
           AND t.amount IS NOT DISTINCT FROM v_amount AND t.pending_id = p_pending_id AND t.ledger = p_ledger
           AND t.code = p_code AND t.flags = v_flags AND t.timeout = 0
           AND t.user_data_128 IS NOT DISTINCT FROM p_user_data_128
           AND t.user_data_64 IS NOT DISTINCT FROM p_user_data_64
           AND t.user_data_32 IS NOT DISTINCT FROM p_user_data_32
           AND t.reference IS NOT DISTINCT FROM p_reference THEN
            RETURN 'exists';
        END IF;
        RETURN payments.ledger_outcome(p_id, 'exists_with_different_fields', v_now, p_refuse);
    END IF;
    SELECT result INTO v_failed FROM payments.failed_transfers WHERE id = p_id;
    v_result := CASE
        WHEN v_failed IS NOT NULL THEN 'id_already_failed'
        WHEN p.id IS NULL THEN 'pending_transfer_not_found'
        WHEN p.flags & 2 = 0 THEN 'pending_transfer_not_pending'
        WHEN v_debit <> p.debit_account_id THEN 'pending_transfer_has_different_debit_account_id'
        WHEN v_credit <> p.credit_account_id THEN 'pending_transfer_has_different_credit_account_id'
        WHEN p_ledger <> p.ledger THEN 'transfer_must_have_the_same_ledger_as_accounts'
        WHEN v_amount <= 0 THEN 'amount_must_not_be_zero'
        WHEN v_debit = v_credit THEN 'accounts_must_be_different'
        WHEN d.id IS NULL THEN 'debit_account_not_found'
        WHEN c.id IS NULL THEN 'credit_account_not_found'
        WHEN d.ledger <> c.ledger THEN 'accounts_must_have_the_same_ledger'
        WHEN p_ledger <> d.ledger THEN 'transfer_must_have_the_same_ledger_as_accounts'
        WHEN s.state = 'posted' THEN 'pending_transfer_already_posted'
        WHEN s.state = 'voided' THEN 'pending_transfer_already_voided'
        WHEN s.state = 'expired' THEN 'pending_transfer_expired'
    END;
    IF v_result IS NULL AND s.expires_at <= v_now THEN
        -- Expired meanwhile (the sweep has not run yet): released now, as the engine does.
        UPDATE payments.accounts
        SET debits_pending = debits_pending - CASE WHEN id = p.debit_account_id THEN p.amount ELSE 0 END,
            credits_pending = credits_pending - CASE WHEN id = p.credit_account_id THEN p.amount ELSE 0 END
        WHERE id IN (p.debit_account_id, p.credit_account_id);
        UPDATE payments.pending_transfers SET state = 'expired', resolved_by = NULL, resolved_at = v_now
        WHERE id = p_pending_id;
        v_result := 'pending_transfer_expired';
    END IF;
    v_result := coalesce(v_result, CASE
        WHEN p_post AND v_amount > p.amount THEN 'exceeds_pending_transfer_amount'
        WHEN NOT p_post AND v_amount <> p.amount THEN 'pending_transfer_has_different_amount'
    END);
    IF v_result IS NOT NULL THEN
        RETURN payments.ledger_outcome(p_id, v_result, v_now, p_refuse);
    END IF;
    UPDATE payments.accounts
    SET debits_pending = debits_pending - CASE WHEN id = p.debit_account_id THEN p.amount ELSE 0 END,
        debits_posted = debits_posted + CASE WHEN p_post AND id = p.debit_account_id THEN v_amount ELSE 0 END,
        credits_pending = credits_pending - CASE WHEN id = p.credit_account_id THEN p.amount ELSE 0 END,
        credits_posted = credits_posted + CASE WHEN p_post AND id = p.credit_account_id THEN v_amount ELSE 0 END
    WHERE id IN (p.debit_account_id, p.credit_account_id);
    UPDATE payments.pending_transfers SET state = CASE WHEN p_post THEN 'posted' ELSE 'voided' END,
        resolved_by = p_id, resolved_at = v_now
    WHERE id = p_pending_id;
    INSERT INTO payments.transfers (id, debit_account_id, credit_account_id, amount, pending_id, ledger,
                                    code, flags, timeout, user_data_128, user_data_64, user_data_32,
                                    reference, "timestamp")
    VALUES (p_id, p.debit_account_id, p.credit_account_id, v_amount, p_pending_id, p_ledger, p_code,
            v_flags, 0, p_user_data_128, p_user_data_64, p_user_data_32, p_reference, v_now);
    RETURN 'ok';
END $$;

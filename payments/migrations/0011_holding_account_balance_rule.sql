-- The physical cards' holding account made unable to give out more than it holds.

-- topups:awaiting-load (payments.demo) holds the paid top-ups of physical cards until a kiosk
-- loads them; it must never give out more than it was paid. New databases create it with
-- DEBITS_MUST_NOT_EXCEED_CREDITS (flag 1); an existing one gets the flag here. The ledger reads
-- an account's flags from its row, under the account's lock, for every transfer, so a flag set
-- now applies to every transfer after this commit. Taken under the ledger's writer lock
-- (payments.ledger.sql.WRITER_LOCK, exclusively: no batch runs meanwhile), and only if the
-- account already keeps the rule: otherwise this stops, for someone to look at the account.
DO $$
DECLARE
    a payments.accounts;
BEGIN
    PERFORM pg_advisory_xact_lock(1346459980);
    SELECT * INTO a FROM payments.accounts WHERE reference = 'platform:topups:awaiting-load' FOR UPDATE;
    IF NOT FOUND OR a.flags & 1 <> 0 THEN
        RETURN;
    END IF;
    IF a.debits_pending::numeric + a.debits_posted > a.credits_posted THEN
        RAISE EXCEPTION 'payments account platform:topups:awaiting-load gave out more than it holds '
                        '(debits % pending + % posted, credits % posted): reconcile it first',
                        a.debits_pending, a.debits_posted, a.credits_posted;
    END IF;
    UPDATE payments.accounts SET flags = flags | 1 WHERE id = a.id;
END $$;

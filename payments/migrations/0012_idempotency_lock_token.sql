-- Each claim of an Idempotency-Key holds it with a random token, set when the key is inserted and
-- set anew when a retry takes the key over after the lock timeout (payments.topup.idempotency).
-- Storing the response, finishing and releasing the key all match the token: a request whose key
-- was taken over while it still ran can no longer store its answer (the transaction of its work
-- rolls back with it), overwrite the retry's, or delete the key the retry holds.
-- Keys claimed before this column have no token; a retry takes them over as before.
ALTER TABLE payments.idempotency_keys ADD COLUMN lock_token uuid;

-- The social security number (the holder's resident ID number) was kept in clear in the social
-- security application's attributes, and shown in full to operators. The card needs it only to
-- show it, masked as identity.checks.mask_resident_id does (3 leading and 4 trailing characters of
-- an 18-character number, every character of any other): the full number stays with identity,
-- encrypted, where the directory reads it for each upstream look-up. Masking twice changes nothing.
UPDATE card.applications a
SET attributes = jsonb_set(a.attributes, '{social_security_number}', to_jsonb(m.masked))
FROM (
    SELECT card_id, app_type,
           CASE WHEN length(v) = 18 THEN left(v, 3) || repeat('*', 11) || right(v, 4)
                ELSE repeat('*', length(v)) END AS masked
    FROM (
        SELECT card_id, app_type, upper(btrim(attributes ->> 'social_security_number')) AS v
        FROM card.applications
        WHERE app_type = 'social_security' AND jsonb_typeof(attributes -> 'social_security_number') = 'string'
    ) n
) m
WHERE a.card_id = m.card_id AND a.app_type = m.app_type
  AND a.attributes ->> 'social_security_number' IS DISTINCT FROM m.masked;

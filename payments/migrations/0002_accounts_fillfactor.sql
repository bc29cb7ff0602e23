-- Every batch rewrites the totals of the accounts it touches. With free space left on each page,
-- PostgreSQL updates them in place (HOT: no index entries to write), which keeps the aggregated
-- UPDATE and the row locks cheap. Applies to the pages written from now on.
ALTER TABLE payments.accounts SET (fillfactor = 50);

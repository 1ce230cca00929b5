-- Leave room in each page of the tables whose rows the request path
-- updates, so that an update can put the row's new version on its own
-- page. PostgreSQL writes a new version for every update; when the page
-- has room and no indexed column changed, the new version is a heap-only
-- tuple (HOT): no index is touched, and the page's dead versions are
-- pruned in place. A page filled to 100% (the default) has no room, so
-- an update on a packed page moved its row to another page and added
-- an entry to every index of the table. In the benchmark, 23% of the
-- million-user TOTP answers' updates of users took that path (6% of the
-- wrong-code checks' updates of verifications, with three indexes), and
-- after a checkpoint each index page so touched writes a full-page image
-- to the WAL; with this migration, 0.1% did, and the million-user rows
-- wrote 41% fewer full-page images and 25% less WAL. Rows are updated a
-- few times each (an attempt per answer, then the approval), so each page
-- keeps a fifth of its space (a tenth for users and authenticators, which
-- are many and long-lived) for their new versions. The setting applies
-- to pages filled from now on; existing pages are not rewritten. SQLite
-- updates rows in place and needs nothing (0017 there is empty).
ALTER TABLE verifications SET (fillfactor = 80);
ALTER TABLE challenges SET (fillfactor = 80);
ALTER TABLE deliveries SET (fillfactor = 90);
ALTER TABLE users SET (fillfactor = 90);
ALTER TABLE authenticators SET (fillfactor = 90);

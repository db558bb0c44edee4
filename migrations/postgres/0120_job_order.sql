-- Jobs that touch the same thing run in the order they were written (issue 15): `serial`
-- names it (for provisioning, the account a request changes). A job waits while an earlier
-- job with the same serial is still pending — being tried, or waiting to be retried — so a
-- password reset never reaches the directory before the creation it follows, and a job
-- replayed after a crash never lands after a later change to the same account.
ALTER TABLE jobs ADD COLUMN serial TEXT;
CREATE INDEX jobs_serial ON jobs(kind, serial, id);

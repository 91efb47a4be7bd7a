-- Version 2 routes calls by queue priority: every queue gets one, billing waits longest.
ALTER TABLE contactcenter.queues ADD COLUMN priority INT NOT NULL DEFAULT 5;
UPDATE contactcenter.queues SET priority = 9 WHERE name = 'billing';

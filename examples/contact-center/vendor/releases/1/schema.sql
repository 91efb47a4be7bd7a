-- The vanilla database of release 1, loaded into a scratch server before
-- "stackvault release publish --database" dumps it into the release.
CREATE DATABASE IF NOT EXISTS contactcenter;
CREATE TABLE contactcenter.queues (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(64) NOT NULL UNIQUE
) ENGINE=InnoDB;
INSERT INTO contactcenter.queues (name) VALUES ('sales'), ('support'), ('billing');
CREATE TABLE contactcenter.calls (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  queue_id INT NOT NULL,
  started_at DATETIME(3) NOT NULL,
  seconds INT NOT NULL,
  KEY (queue_id),
  CONSTRAINT calls_queue FOREIGN KEY (queue_id) REFERENCES queues (id)
) ENGINE=InnoDB;

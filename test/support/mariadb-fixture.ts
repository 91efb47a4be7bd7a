import type { TestServer } from './mariadb-server.js';

/**
 * A database with every kind of column and object the dump must carry: all column types
 * and character sets, awkward bytes, a value over 16 MiB (several protocol packets),
 * generated and invisible columns, keys of every kind, foreign keys, a table split into
 * many parts, views on views, routines and triggers with their own sql_mode, events,
 * sequences, a non-transactional table, a latin1 database, and users with a role.
 */
export const FIXTURE_DATABASES = ['legacy', 'shop'];

export const FIXTURE_TABLES = [
  'shop.all_types',
  'shop.calls',
  'shop.call_notes',
  'shop.customers',
  'shop.orders',
  'shop.no_key',
  'shop.archive',
  'shop.big_blob',
  'legacy.kunden',
];

const schema = String.raw`
SET sql_mode = '';
CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE legacy CHARACTER SET latin1 COLLATE latin1_german1_ci;
USE shop;

CREATE SEQUENCE order_numbers START WITH 1000 INCREMENT BY 5;

CREATE TABLE all_types (
  id INT NOT NULL AUTO_INCREMENT,
  ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, i INT, bi BIGINT, bu BIGINT UNSIGNED,
  de DECIMAL(40,12), dz DECIMAL(5,0) UNSIGNED ZEROFILL, fl FLOAT, db DOUBLE, bt BIT(13), b64 BIT(64), bo BOOLEAN,
  ch CHAR(10), vc VARCHAR(300), tt TINYTEXT, tx TEXT, lt LONGTEXT,
  bn BINARY(8), vb VARBINARY(300), bl BLOB, lb LONGBLOB,
  js JSON, g GEOMETRY, pt POINT NOT NULL DEFAULT (POINT(0,0)), ls LINESTRING, pg POLYGON,
  dt DATE, tm TIME(6), dtm DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL, yr YEAR,
  en ENUM('small','medium','large'), st SET('red','green','blue'),
  latin VARCHAR(50) CHARACTER SET latin1, sjis VARCHAR(50) CHARACTER SET sjis, u16 VARCHAR(50) CHARACTER SET utf16,
  gb VARCHAR(50) CHARACTER SET gbk, ucs TEXT CHARACTER SET ucs2,
  uu UUID, ip6 INET6, ip4 INET4,
  gen_v INT AS (ti * 2) VIRTUAL,
  gen_s VARCHAR(320) AS (CONCAT(IFNULL(vc, ''), '!')) STORED,
  hidden INT INVISIBLE DEFAULT 42,
  order_no BIGINT DEFAULT (NEXTVAL(order_numbers)),
  PRIMARY KEY (id),
  UNIQUE KEY u_bi (bi),
  KEY k_vc (vc(20), ch),
  KEY k_gen (gen_s),
  FULLTEXT KEY ft_tx (tx),
  SPATIAL KEY sp_pt (pt),
  CONSTRAINT chk_ti CHECK (ti IS NULL OR ti <> 13)
) ENGINE=InnoDB AUTO_INCREMENT=1 COMMENT='every type: ''quoted'' comment';

CREATE TABLE customers (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  email VARCHAR(200) NOT NULL,
  balance DECIMAL(12,2) NOT NULL DEFAULT 0,
  UNIQUE KEY u_email (email)
) ENGINE=InnoDB;

CREATE TABLE orders (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  created DATETIME NOT NULL,
  KEY k_created (created),
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE ON UPDATE RESTRICT
) ENGINE=InnoDB;

CREATE TABLE calls (
  id BIGINT NOT NULL,
  agent SMALLINT NOT NULL,
  started DATETIME(3) NOT NULL,
  seconds INT NOT NULL,
  outcome ENUM('answered','missed','voicemail') NOT NULL,
  caller VARCHAR(32),
  PRIMARY KEY (id),
  KEY k_agent (agent, started)
) ENGINE=InnoDB;

CREATE TABLE call_notes (
  call_id BIGINT NOT NULL,
  line SMALLINT NOT NULL,
  note TEXT,
  PRIMARY KEY (call_id, line)
) ENGINE=InnoDB;

CREATE TABLE no_key (a INT, b VARCHAR(20)) ENGINE=InnoDB;
CREATE TABLE archive (id INT PRIMARY KEY, payload VARCHAR(100)) ENGINE=MyISAM;
CREATE TABLE big_blob (id INT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB;
CREATE TABLE empty_table (id INT PRIMARY KEY) ENGINE=InnoDB;

USE legacy;
CREATE TABLE kunden (id INT PRIMARY KEY, name VARCHAR(100), ort VARCHAR(100) CHARACTER SET utf8mb3) ENGINE=InnoDB;
`;

const rows = String.raw`
SET sql_mode = '';
SET time_zone = '+03:00';
USE shop;
INSERT INTO all_types (ti, tu, si, mi, i, bi, bu, de, dz, fl, db, bt, b64, bo, ch, vc, tt, tx, lt, bn, vb, bl, lb, js, g, pt, ls, pg, dt, tm, dtm, ts, yr, en, st, latin, sjis, u16, gb, ucs, uu, ip6, ip4, hidden) VALUES
 (-128, 255, -32768, -8388608, -2147483648, -9223372036854775808, 18446744073709551615, -1234567890123456789012345678.123456789012, 42, 3.4028235e38, -1.7976931348623157e308, b'1010101010101', b'1111111111111111111111111111111111111111111111111111111111111111', TRUE,
  'tab	here', 'line\nbreak \\ backslash \0 nul \N literal', 'tiny', 'x', REPEAT('long text ', 1000), x'00010203fffefdfc', x'00ff5c095c0a0d0a', x'5c4e', x'00', '{"a": [1, 2.5, "x\\u00e9"], "b": null}',
  ST_GeomFromText('MULTIPOINT(1 1, 2 2)', 4326), POINT(1.5, -2.25), ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)'), ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 1))'),
  '0000-00-00', '-838:59:59.000000', '0000-00-00 00:00:00.000000', '2038-01-19 03:14:07.999', 0, 'large', 'red,blue',
  'Grüße', '日本語', '😀 utf16', '中文', 'ucs2 é', '123e4567-e89b-12d3-a456-426614174000', '2001:db8::1', '192.168.0.1', 7),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, POINT(0,0), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (1, 0, 0, 0, 0, 0, 0, 0.000000000001, 0, -0.0, 5e-324, b'0', b'0', FALSE, '', '', '', '', '', x'', x'', x'', x'', '[]', NULL, POINT(0,0), NULL, NULL,
  '2024-02-29', '00:00:00.000001', '2024-00-15 12:00:00.5', '1970-01-01 00:00:01.000', 2155, 'small', '', '', '', '', '', '', '00000000-0000-0000-0000-000000000000', '::', '0.0.0.0', 0),
 (99, 1, 2, 3, 4, 5, 6, 7.7, 8, 9.9, 10.10, b'1', b'1', TRUE, 'café', '🚀 rocket 📞', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '"just a string"', NULL, POINT(10, 20), NULL, NULL,
  '9999-12-31', '838:59:59.999999', '9999-12-31 23:59:59.999999', NULL, 1901, 'medium', 'red,green,blue', 'café', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
-- every byte value in a blob and in a binary string
INSERT INTO all_types (bi, lb, vb, pt) SELECT 77, UNHEX(GROUP_CONCAT(LPAD(HEX(seq), 2, '0') ORDER BY seq SEPARATOR '')), UNHEX(GROUP_CONCAT(LPAD(HEX(255 - seq), 2, '0') ORDER BY seq SEPARATOR '')), POINT(3,3) FROM seq_0_to_255;

INSERT INTO customers (name, email, balance) SELECT CONCAT('Customer ', seq), CONCAT('c', seq, '@example.com'), seq * 1.25 FROM seq_1_to_300;
INSERT INTO orders (customer_id, total, created) SELECT 1 + seq % 300, seq / 7, '2026-01-01' + INTERVAL seq MINUTE FROM seq_1_to_2000;
INSERT INTO calls SELECT seq, seq % 50, '2026-01-01 08:00:00' + INTERVAL seq SECOND, seq % 600, ELT(1 + seq % 3, 'answered', 'missed', 'voicemail'), IF(seq % 7 = 0, NULL, CONCAT('+49 30 ', seq)) FROM seq_1_to_60000;
INSERT INTO call_notes SELECT 1 + seq DIV 3, seq % 3, CONCAT('note ', seq, IF(seq % 5 = 0, '\twith tab', '')) FROM seq_0_to_8999;
INSERT INTO no_key VALUES (1, 'a'), (1, 'a'), (NULL, NULL), (2, 'b\\c');
INSERT INTO archive SELECT seq, CONCAT('old ', seq) FROM seq_1_to_100;
INSERT INTO big_blob VALUES (1, REPEAT(x'5c00090a41', 3500000)), (2, 'small');

USE legacy;
INSERT INTO kunden VALUES (1, 'Müller', 'München'), (2, 'Straße', 'Ärger'), (3, NULL, 'Köln');
`;

const objects = String.raw`
USE shop;
CREATE FUNCTION order_total(c INT UNSIGNED) RETURNS DECIMAL(14,2) READS SQL DATA
  RETURN (SELECT IFNULL(SUM(total), 0) FROM orders WHERE customer_id = c);
CREATE VIEW customer_orders AS SELECT c.id, c.name, COUNT(o.id) AS orders FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name;
CREATE VIEW big_customers AS SELECT id, name, order_total(id) AS total FROM customer_orders WHERE orders > 5;
CREATE SQL SECURITY INVOKER VIEW top_customer AS SELECT * FROM big_customers ORDER BY total DESC LIMIT 1;
CREATE VIEW answered_calls AS SELECT id, agent FROM calls WHERE outcome = 'answered' WITH CHECK OPTION;
SET sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,ANSI_QUOTES';
DELIMITER //
CREATE PROCEDURE "add_order"(IN c INT UNSIGNED, IN amount DECIMAL(12,2), OUT new_id BIGINT)
  MODIFIES SQL DATA
  COMMENT 'adds an order; sql_mode has ANSI_QUOTES'
BEGIN
  INSERT INTO orders (customer_id, total, created) VALUES (c, amount, NOW());
  SET new_id = LAST_INSERT_ID();
END//
DELIMITER ;
SET sql_mode = '';
DELIMITER //
CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW
BEGIN
  IF NEW.total < 0 THEN SET NEW.total = 0; END IF;
END//
CREATE TRIGGER orders_bi_second BEFORE INSERT ON orders FOR EACH ROW FOLLOWS orders_bi
  SET NEW.created = IFNULL(NEW.created, NOW())//
CREATE TRIGGER orders_bi_first BEFORE INSERT ON orders FOR EACH ROW PRECEDES orders_bi
  SET NEW.total = ROUND(NEW.total, 2)//
CREATE TRIGGER customers_au AFTER UPDATE ON customers FOR EACH ROW
  UPDATE orders SET total = total WHERE customer_id = NEW.id AND 1 = 0//
DELIMITER ;
CREATE EVENT nightly_cleanup ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00' ON COMPLETION PRESERVE DISABLE
  COMMENT 'disabled so it never runs in a test' DO DELETE FROM calls WHERE started < NOW() - INTERVAL 10 YEAR;
CREATE EVENT one_shot ON SCHEDULE AT '2031-06-01 12:00:00' ON COMPLETION PRESERVE DISABLE DO SET @x = 1;

USE legacy;
SET NAMES latin1;
CREATE PROCEDURE gruss() SELECT 'Grüß Gott' AS gruss;
SET NAMES utf8mb4;
CREATE SEQUENCE kundennummer START WITH 500 MAXVALUE 99999 CACHE 10;
SELECT NEXTVAL(kundennummer), NEXTVAL(kundennummer);

CREATE USER 'app'@'%' IDENTIFIED BY 'app secret';
CREATE USER 'reader'@'10.0.%' IDENTIFIED BY 'other';
CREATE ROLE reporting;
GRANT SELECT ON shop.calls TO reporting;
GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON shop.* TO 'app'@'%';
GRANT reporting TO 'reader'@'10.0.%';
SET DEFAULT ROLE reporting FOR 'reader'@'10.0.%';
`;

export async function createFixture(server: TestServer): Promise<void> {
  await server.client(schema);
  await server.client(rows);
  await server.client(objects);
}

/** CHECKSUM TABLE of every fixture table, keyed without the database name so renamed copies compare. */
export async function checksums(server: TestServer, tables = FIXTURE_TABLES, rename: Record<string, string> = {}): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of tables) {
    const [db, table] = name.split('.') as [string, string];
    const text = await server.client(`CHECKSUM TABLE \`${rename[db] ?? db}\`.\`${table}\` EXTENDED`);
    out[name] = text.trim().split('\t')[1]!;
  }
  return out;
}

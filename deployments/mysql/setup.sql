-- ctstage on MySQL 8 or MariaDB (tested on 10.11): run once as an
-- administrator. See README.md beside this file.
--
--   mariadb --init-command="SET @ctstage_password='...'" < deployments/mysql/setup.sql
--   mysql -u root -p --init-command="SET @ctstage_password='...'" < deployments/mysql/setup.sql
--
-- or copy this file and add SET lines for the variables below at its top.
-- Then:
--
--   ctstage serve --storage 'mysql://ctstage:PASSWORD@HOST:3306/ctstage'
--
-- It creates one database and one user with the privileges ctstage uses on
-- that database and on the tiled shards' databases named after it
-- (<database>_tiled_<shard>), and nothing else. ctstage creates its tables
-- there itself at start (Trillian's, and its own acme_* and ca_* tables),
-- and the tiled shards' databases with Tessera's tables: the database must
-- be empty or already ctstage's. Running the script again changes
-- nothing but the password.
--
-- Variables, set before the script runs:
--   @ctstage_password  the user's password; required, no default
--   @ctstage_db        the database             (default ctstage)
--   @ctstage_user      the user                 (default ctstage)
--   @ctstage_host      where the user connects from, a MySQL host pattern
--                      (default '%': anywhere; narrow it, e.g. '10.0.0.%')

SET @ctstage_db = COALESCE(@ctstage_db, 'ctstage');
SET @ctstage_user = COALESCE(@ctstage_user, 'ctstage');
SET @ctstage_host = COALESCE(@ctstage_host, '%');

-- Quoted forms for the statements below: `db`, 'user'@'host'.
SET @q_db = CONCAT('`', REPLACE(@ctstage_db, '`', '``'), '`');
SET @q_account = CONCAT(QUOTE(@ctstage_user), '@', QUOTE(@ctstage_host));

-- A missing password stops the script here: the statement names the
-- variable to set.
SET @stmt = IF(COALESCE(@ctstage_password, '') = '',
  'SELECT 1 FROM mysql.`set @ctstage_password before running setup.sql`',
  'DO 0');
PREPARE s FROM @stmt; EXECUTE s; DEALLOCATE PREPARE s;

-- Trillian's tables store binary columns; its text columns and ctstage's
-- (which name their own character set) work with any default.
SET @stmt = CONCAT('CREATE DATABASE IF NOT EXISTS ', @q_db, ' CHARACTER SET utf8mb4');
PREPARE s FROM @stmt; EXECUTE s; DEALLOCATE PREPARE s;

SET @stmt = CONCAT('CREATE USER IF NOT EXISTS ', @q_account, ' IDENTIFIED BY ', QUOTE(@ctstage_password));
PREPARE s FROM @stmt; EXECUTE s; DEALLOCATE PREPARE s;
SET @stmt = CONCAT('ALTER USER ', @q_account, ' IDENTIFIED BY ', QUOTE(@ctstage_password));
PREPARE s FROM @stmt; EXECUTE s; DEALLOCATE PREPARE s;

-- What ctstage does with the database, and nothing more:
--   SELECT, INSERT, UPDATE, DELETE  all its reads and writes; SELECT ... FOR
--                                   UPDATE (the CA's records) needs UPDATE too
--   CREATE                          CREATE TABLE at the first start
--   INDEX                           Trillian's schema adds indexes with CREATE INDEX
--   REFERENCES                      foreign keys (Trillian's, ca_scts'); MySQL 8
--                                   checks it, MariaDB does not
-- Not needed: DROP, ALTER, LOCK TABLES, CREATE TEMPORARY TABLES, EXECUTE,
-- and no global privilege (the schema lock is GET_LOCK, which needs none).
-- A later ctstage whose schema migration needs more says so at start.
--
-- '_' and '%' are wildcards in a database name of GRANT: escape them so
-- that the grant covers this database only. (MySQL 8 with partial_revokes=ON
-- takes names literally: set the database to one without them.)
SET @stmt = CONCAT('GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, REFERENCES ON ',
  REPLACE(REPLACE(@q_db, '_', '\\_'), '%', '\\%'), '.* TO ', @q_account);
PREPARE s FROM @stmt; EXECUTE s; DEALLOCATE PREPARE s;

-- Each tiled shard keeps its log in a database of its own, named
-- <database>_tiled_<shard>, which ctstage creates at the shard's first
-- start: the same privileges on those names, with CREATE to make them.
SET @stmt = CONCAT('GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, REFERENCES ON ',
  '`', REPLACE(REPLACE(REPLACE(@ctstage_db, '`', '``'), '_', '\\_'), '%', '\\%'), '\\_tiled\\_%`.* TO ', @q_account);
PREPARE s FROM @stmt; EXECUTE s; DEALLOCATE PREPARE s;

SET @stmt = NULL, @q_db = NULL, @q_account = NULL, @ctstage_password = NULL;

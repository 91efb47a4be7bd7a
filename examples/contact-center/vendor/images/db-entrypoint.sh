#!/bin/sh
# Start MariaDB; an empty data folder is first initialised: root's password read from
# MARIADB_ROOT_PASSWORD_FILE (for local and network logins), MARIADB_DATABASE created.
set -eu
datadir=/var/lib/mysql
# The binary log (row format) lets stackvault archive every change for point-in-time recovery.
server="mariadbd --no-defaults --user=root --datadir=$datadir --skip-name-resolve --max-allowed-packet=256M --log-bin=binlog --binlog-format=ROW --server-id=1"
if [ ! -d "$datadir/mysql" ]; then
  password="$(head -n 1 "$MARIADB_ROOT_PASSWORD_FILE" | sed "s/'/''/g")"
  mariadb-install-db --no-defaults --user=root --datadir="$datadir" --auth-root-authentication-method=normal --skip-test-db >/tmp/install.log 2>&1 || { cat /tmp/install.log >&2; exit 1; }
  $server --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  tries=0
  until mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1; do
    tries=$((tries + 1)); [ "$tries" -lt 300 ] || { echo "MariaDB did not start" >&2; exit 1; }
    sleep 0.1
  done
  mariadb --socket=/run/mysqld/init.sock -uroot <<SQL
ALTER USER root@localhost IDENTIFIED BY '$password';
CREATE USER root@'%' IDENTIFIED BY '$password';
GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE:-app}\`;
SQL
  mariadb-admin --socket=/run/mysqld/init.sock -uroot -p"$(head -n 1 "$MARIADB_ROOT_PASSWORD_FILE")" shutdown
  wait "$pid" || true
fi
exec $server --bind-address=0.0.0.0 --port=3306 --socket=/run/mysqld/mysqld.sock

#!/bin/sh
# Build the example stack's images here, with no registry: each is a root file system put
# together from this machine's busybox-static and MariaDB binaries (with the libraries
# they link), imported with `podman import`.
#
#   build.sh <tag-suffix>   builds localhost/contact-center-db:10.11<suffix>,
#                           localhost/contact-center-web:1<suffix> and :2<suffix>
#
# Needs busybox-static, mariadb-server, mariadb-client and podman (scripts/install-test-deps.sh).
# Uses the podman configuration of the environment (CONTAINERS_CONF, ...).
set -eu
suffix="${1:-}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/cc-images-XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A root with busybox and its applets, /tmp and an /etc/passwd.
base_root() {
  root="$1"
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/run"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nmysql:x:999:999:mysql:/var/lib/mysql:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nmysql:x:999:\n' >"$root/etc/group"
}

# Copy binaries with every shared library they load (and the loader) into a root.
copy_binaries() {
  root="$1"; shift
  for bin in "$@"; do
    mkdir -p "$root$(dirname "$bin")"
    cp -L "$bin" "$root$bin"
    ldd "$bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do
      mkdir -p "$root$(dirname "$lib")"
      [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
    done
  done
}

import_root() {
  root="$1"; tag="$2"; shift 2
  tar -C "$root" -c . | podman import "$@" - "$tag" >/dev/null
  echo "$tag"
}

# The database: MariaDB from this machine, with an entrypoint that initialises an empty
# data folder (root password from MARIADB_ROOT_PASSWORD_FILE, MARIADB_DATABASE created).
db="$work/db"
base_root "$db"
copy_binaries "$db" /usr/sbin/mariadbd /usr/bin/mariadb /usr/bin/mariadb-admin /usr/bin/my_print_defaults /usr/bin/resolveip
cp /usr/bin/mariadb-install-db "$db/usr/bin/"
mkdir -p "$db/usr/share" "$db/usr/lib/mysql" "$db/var/lib/mysql" "$db/run/mysqld"
cp -r /usr/share/mysql "$db/usr/share/mysql"
cp -r /usr/lib/mysql/plugin "$db/usr/lib/mysql/plugin"
cp "$here/db-entrypoint.sh" "$db/entrypoint.sh"
chmod 755 "$db/entrypoint.sh"
import_root "$db" "localhost/contact-center-db:10.11$suffix" --change 'CMD ["/entrypoint.sh"]' --change 'EXPOSE 3306'

# The web service, one image per application version: busybox httpd and a CGI page that
# shows the database's queues and the shared data, with the MariaDB client to ask.
for version in 1 2; do
  web="$work/web-$version"
  base_root "$web"
  copy_binaries "$web" /usr/bin/mariadb
  mkdir -p "$web/www/cgi-bin"
  cp "$here/web-$version/status" "$web/www/cgi-bin/status"
  chmod 755 "$web/www/cgi-bin/status"
  import_root "$web" "localhost/contact-center-web:$version$suffix" --change 'CMD ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]' --change 'EXPOSE 8080'
done

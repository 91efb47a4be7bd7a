#!/usr/bin/env bash
# The whole life of the example stack, by hand: each step prints the commands it runs, so
# this script is the walkthrough of WALKTHROUGH.md, and running it shows that every step
# works here. Everything happens in one folder (default: a new one under /tmp); the
# container engine is a Podman API service of its own, so nothing on the host changes.
#
#   examples/contact-center/walkthrough.sh [folder]
#
# Needs: scripts/install-test-deps.sh, then npm ci && npm run build in this checkout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
W="${1:-$(mktemp -d /tmp/stackvault-walkthrough-XXXXXX)}"
mkdir -p "$W"
W="$(cd "$W" && pwd)"
stackvault() { node "$repo/dist/src/cli/main.js" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
# The web service's port on this host (a free one), and its status page there.
port="$(node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")"
page() { printf '$ curl http://127.0.0.1:%s/cgi-bin/status\n' "$port"; node -e "fetch('http://127.0.0.1:$port/cgi-bin/status').then((r) => r.text()).then((t) => process.stdout.write(t))"; }
[ -f "$repo/dist/src/cli/main.js" ] || { echo "run \"npm ci && npm run build\" in $repo first" >&2; exit 2; }

pids=()
cleanup() {
  [ -n "${DOCKER_HOST:-}" ] && for h in host-a host-b; do
    [ -f "$W/$h/docker-compose.yml" ] && (cd "$W/$h" && docker-compose -p example-contact-center down -v >/dev/null 2>&1 || true)
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

step "1. A container engine: a Podman API service with its own configuration"
cat >"$W/containers.conf" <<'EOF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
[network]
network_backend = "netavark"
EOF
export CONTAINERS_CONF="$W/containers.conf" DOCKER_HOST="unix://$W/podman.sock"
printf '$ podman system service --time=0 %s &\n' "$DOCKER_HOST"
podman system service --time=0 "$DOCKER_HOST" >"$W/podman.log" 2>&1 &
pids+=($!)
until node -e "require('http').get({ socketPath: '$W/podman.sock', path: '/_ping' }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"; do sleep 0.2; done

step "2. The vendor's images, built from this machine's busybox and MariaDB (no registry)"
show "$here/vendor/images/build.sh"

step "3. The vendor publishes releases 1 and 2 (vanilla files, vanilla database, migrations)"
export STACKVAULT_PASSWORD='vendor secret'
show stackvault init --repo "$W/releases"
# A scratch MariaDB server holds each release's vanilla database while it is published.
mariadb-install-db --no-defaults --user=root --datadir="$W/scratch-db" --auth-root-authentication-method=normal --skip-test-db >/dev/null
mariadbd --no-defaults --user=root --datadir="$W/scratch-db" --socket="$W/scratch-db.sock" --skip-networking --pid-file="$W/scratch-db.pid" --log-error="$W/scratch-db.log" &
pids+=($!)
until mariadb-admin --socket="$W/scratch-db.sock" ping >/dev/null 2>&1; do sleep 0.2; done
cat >"$W/vendor.yaml" <<EOF
stack: vendor
repository: { url: $W/releases }
sources:
  - { name: vanilla, type: mariadb, socket: $W/scratch-db.sock, user: root, databases: [contactcenter] }
EOF
for version in 1 2; do
  mariadb --socket="$W/scratch-db.sock" -e 'DROP DATABASE IF EXISTS contactcenter'
  mariadb --socket="$W/scratch-db.sock" <"$here/vendor/releases/$version/schema.sql"
  show stackvault release publish --config "$W/vendor.yaml" --application contact-center --version "$version" --database vanilla "$here/vendor/releases/$version"
done

step "4. The stack repository: the example's files, committed and pushed (here to a bare repository)"
git init --quiet --bare "$W/stack.git"
git clone --quiet "$W/stack.git" "$W/host-a"
cp "$here/stackvault.yaml" "$here/docker-compose.yml" "$here/.gitignore" "$W/host-a/"
cd "$W/host-a"
# Where the vendor's releases are, and the share that holds this stack's backups.
sed -i "s|url: /srv/releases/contact-center|url: $W/releases|; s|url: /srv/backups/example-contact-center|url: $W/share/example-contact-center|" stackvault.yaml
echo "WEB_PORT=$port" >.env
git add . && git -c user.name=operator -c user.email=operator@example.com commit --quiet -m 'example-contact-center: version 1' && git push --quiet origin HEAD
# Secrets live on the host, never in the stack repository.
mkdir -p secrets && echo 'db-secret' >secrets/db_root_password
export STACKVAULT_PASSWORD='customer secret' STACKVAULT_RELEASE_PASSWORD='vendor secret'

step "5. A new install: the backup repository on the share, then up (the vanilla release of version 1)"
mkdir -p "$W/share"
show stackvault init --immutability 30d
show stackvault up
page

step "6. A night's backup, by hand (the task runner does it on schedule: README, deploy/task-runner)"
podman exec example-contact-center_db_1 mariadb -uroot -pdb-secret -e "INSERT INTO contactcenter.calls (queue_id, started_at, seconds) VALUES (1, '2026-11-25 09:00:00', 125)"
show stackvault backup
show stackvault snapshots
v1="$(git rev-parse HEAD)"

step "7. Update to version 2: a snapshot first, the migrations, the containers of version 2"
show stackvault update --to 2
git push --quiet origin HEAD
page

step "8. A failing update goes back by itself (release 3's migration breaks)"
mkdir -p "$W/release-3/migrations"
cp -r "$here/vendor/releases/2/files" "$W/release-3/files"
printf "UPDATE contactcenter.queues SET name = CONCAT(name, '-broken');\nALTER TABLE contactcenter.no_such_table ADD COLUMN x INT;\n" >"$W/release-3/migrations/001-broken.sql"
STACKVAULT_PASSWORD='vendor secret' stackvault release publish --repo "$W/releases" --application contact-center --version 3 "$W/release-3"
sed -i 's|^  images:.*|&\n    "3": { WEB_IMAGE: "localhost/contact-center-web:2", DB_IMAGE: "localhost/contact-center-db:10.11" }|' stackvault.yaml
git -c user.name=operator -c user.email=operator@example.com commit --quiet -am 'images of version 3'
printf '$ stackvault update --to 3    # fails, goes back, exits 1\n'
if stackvault update --to 3; then echo "the broken update succeeded?" >&2; exit 1; fi
git push --quiet origin HEAD
page

step "9. Disaster recovery: host A is lost; host B has only the stack repository and the share"
stackvault backup --quiet
docker-compose -p example-contact-center down -v >/dev/null 2>&1
cd "$W" && rm -rf "$W/host-a"
git clone --quiet "$W/stack.git" "$W/host-b"
cd "$W/host-b"
mkdir -p secrets && echo 'db-secret' >secrets/db_root_password
show stackvault up
page

step "10. Rollback to the version-1 incarnation: its config and its data together"
show stackvault history --limit 3
show stackvault rollback --to "${v1:0:10}"
page

step "Done. Everything is in $W; the stack and the services stop now."

#!/bin/sh
# Build the task-runner image with no registry: a root file system put together from this
# machine's Node.js, rclone and busybox-static, and this checkout's build (npm run build)
# with its production dependencies, imported with `podman import`.
#
#   deploy/task-runner/build.sh [tag]        default tag: localhost/stackvault:<version>
#
# With a registry at hand, `podman build --format docker -f deploy/task-runner/Containerfile .`
# builds the same runner from node:20-bookworm-slim (--format docker keeps its HEALTHCHECK;
# the OCI format drops it, which is why compose.snippet.yml has its own healthcheck).
#
# Needs podman, busybox-static and rclone (scripts/install-test-deps.sh), and `npm ci` and
# `npm run build` done in this checkout. Uses the podman configuration of the environment.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="$(node -p "require('$repo/package.json').version")"
tag="${1:-localhost/stackvault:$version}"
[ -f "$repo/dist/src/cli/main.js" ] || { echo "build.sh: run \"npm run build\" in $repo first" >&2; exit 2; }
work="$(mktemp -d "${TMPDIR:-/tmp}/sv-runner-image-XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"

# busybox for a shell and the usual tools; /tmp; root and nobody.
mkdir -p "$root/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/run" "$root/stack" "$root/var/lib/stackvault" "$root/usr/local/bin"
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
# Certificates for cloud backends (Azure, S3, rclone's remotes).
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"

# Binaries with every shared library they load (and the loader).
for bin in "$(command -v node)" "$(command -v rclone)"; do
  mkdir -p "$root$(dirname "$bin")"
  cp -L "$bin" "$root$bin"
  ldd "$bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
  done
done
# The name resolver glibc loads at run time, for service names on the stack's network.
for lib in /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libresolv.so.2; do
  [ -e "$lib" ] && { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
done

# stackvault: the build and its production dependencies (native ones built for this Node.js).
app="$root/opt/stackvault"
mkdir -p "$app/dist"
cp "$repo/package.json" "$repo/package-lock.json" "$app/"
cp -r "$repo/dist/src" "$app/dist/src"
cp -r "$repo/node_modules" "$app/node_modules"
(cd "$app" && npm prune --omit=dev --no-audit --no-fund >/dev/null 2>&1)
chmod 755 "$app/dist/src/cli/main.js"
ln -s /opt/stackvault/dist/src/cli/main.js "$root/usr/local/bin/stackvault"
# main.js starts with "#!/usr/bin/env node".
[ -e "$root/usr/bin/env" ] || ln -s /bin/busybox "$root/usr/bin/env"

tar -C "$root" -c . | podman import \
  --change 'ENTRYPOINT ["/usr/local/bin/stackvault"]' \
  --change 'CMD ["run", "--listen", "0.0.0.0:9180"]' \
  --change 'WORKDIR /stack' \
  --change 'EXPOSE 9180' \
  --change 'STOPSIGNAL SIGTERM' \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  - "$tag" >/dev/null
echo "$tag"

#!/usr/bin/env bash
# A stand-in for python:3.11-slim-bookworm (no registry is reachable here) and a local apt source of
# the Debian packages the Dockerfile installs, so that `make image-test` builds with no network.
#
#   tools/image_base.sh CACHE_DIR IMAGE_NAME PACKAGE...
#
# Debian bookworm (debootstrap minbase) with its python3.11, venv and `python`, the same apt sources
# as the official image, and the current point release and security updates; imported into podman
# as IMAGE_NAME. PACKAGE... and whatever they need beyond this base are downloaded into
# CACHE_DIR/debs with an index, and CACHE_DIR/apt-sources holds the one-line source that points
# there: `make image-test` mounts both over the build's /etc/apt/sources.list.d and /debs.
set -euo pipefail
cache=$1 image=$2
shift 2
mirror=http://deb.debian.org/debian
rootfs=$cache/rootfs
rm -rf "$rootfs" "$cache/debs" "$cache/apt-sources"
mkdir -p "$cache/debs" "$cache/apt-sources"
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata \
    bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log"
rm "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
chroot "$rootfs" apt-get update -qq
chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get upgrade --yes -qq >/dev/null
chroot "$rootfs" apt-get clean
chroot "$rootfs" apt-get install --yes -qq --download-only --no-install-recommends "$@" >/dev/null
mv "$rootfs"/var/cache/apt/archives/*.deb "$cache/debs/"
(cd "$cache/debs" && dpkg-scanpackages --multiversion . 2>/dev/null >Packages)
echo "deb [trusted=yes] file:/debs ./" >"$cache/apt-sources/offline.list"
# As in the official image: no package lists, no apt caches, no host resolver.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs/etc/resolv.conf"
tar -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$image" >/dev/null
rm -rf "$rootfs"
echo "stand-in base $image: $(podman image inspect --format '{{.Size}}' "$image") bytes, $(ls "$cache/debs" | grep -c '\.deb$') Debian packages for the build"

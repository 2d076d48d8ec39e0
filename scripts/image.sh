#!/usr/bin/env bash
# Builds the rollguard operator image with no daemon (buildah, vfs storage), from pinned inputs,
# with reproducible layers. `make image` and `make image-push` call it.
#
#   scripts/image.sh                 build: prints the image size and its manifest digest
#   scripts/image.sh --context-only  only assemble the build context (for docker/kaniko/podman)
#   scripts/image.sh --push          build, then push to $IMAGE, check the registry holds the
#                                    same digest, and write the values file that pins it
#
# Inputs, all pinned: the image-profile binary of this checkout (`cargo build --profile image --locked`: release with fat LTO),
# and Debian bookworm packages pinned by version and SHA-256 (DEBS below) for glibc, libgcc_s
# and the CA certificates, downloaded with `apt-get download` and cached in
# ~/.cache/rollguard/debs. Only the shared libraries the binary names (readelf NEEDED and its
# ELF interpreter) are copied out of them, as the distroless images do.
#
# Environment:
#   IMAGE                 repository to tag and push (default ghcr.io/rollguard/rollguard)
#   IMAGE_BUILD_DIR       work dir (default <repo>/build/image): context/, oci/ (an OCI layout of
#                         the image), digest, size, values.yaml
#   IMAGE_VALUES          values file written with the image repository and digest
#                         (default $IMAGE_BUILD_DIR/values.yaml): `helm install -f` it to pin
#   REGISTRY_TLS_VERIFY   false for a plain-HTTP registry such as one on 127.0.0.1 (default true)
#   ROLLGUARD_GIT_REVISION  the revision stamped into --version and the labels (default: git)
#   SOURCE_DATE_EPOCH     file and image timestamps (default: the commit time of HEAD)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
IMAGE=${IMAGE:-ghcr.io/rollguard/rollguard}
BUILD=${IMAGE_BUILD_DIR:-$REPO/build/image}
VALUES=${IMAGE_VALUES:-$BUILD/values.yaml}
TLS_VERIFY=${REGISTRY_TLS_VERIFY:-true}
CACHE=${ROLLGUARD_CACHE:-$HOME/.cache/rollguard}
STORAGE=(--storage-driver vfs)
say() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Debian bookworm packages: name, version, SHA-256 of the .deb (gcc-12-base only for the
# copyright file of libgcc_s, which libgcc-s1 links to). When the mirror drops a
# version (a point release), update the pin: the error below prints the new candidate.
DEBS=(
  "libc6 2.36-9+deb12u14 ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf"
  "libgcc-s1 12.2.0-14+deb12u1 3016e62cb4b7cd8038822870601f5ed131befe942774d0f745622cc77d8a88f7"
  "gcc-12-base 12.2.0-14+deb12u1 1896a2aacf4ad681ff5eacc24a5b0ca4d5d9c9b9c9e4b6de5197bc1e116ea619"
  "ca-certificates 20250419~deb12u2 b9f76b5271a7ac373fd5e7e1b5b826a71ddd702b42a0d104955ecb1acfffc94b"
)

mode=build
case "${1:-}" in
  "") ;;
  --context-only) mode=context ;;
  --push) mode=push ;;
  *) echo "usage: $0 [--context-only|--push]" >&2; exit 2 ;;
esac

need() { # need COMMAND PACKAGE: install Debian's package when the command is missing
  command -v "$1" >/dev/null && return
  [ "$(id -u)" = 0 ] || die "$1 is missing: install Debian's '$2' package"
  say "installing Debian's $2 (for $1)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2") >&2
}
need readelf binutils
need dpkg-deb dpkg
[ "$mode" = context ] || need buildah buildah

start=$(date +%s)
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
REVISION=${ROLLGUARD_GIT_REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
CREATED=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)

# 1. The image-profile binary (reused when cargo finds it fresh).
say "rollguard $VERSION ($REVISION): cargo build --profile image --locked"
cargo build --profile image --locked --quiet --bin rollguard  # build.rs stamps the same revision
target=${CARGO_TARGET_DIR:-$REPO/target}
bin=$target/image/rollguard
# The target dir may be shared with other checkouts: check this is our revision's binary.
"$bin" --version | grep -qF "(git $REVISION)" || die "$bin is not revision $REVISION: $("$bin" --version)"

# 2. The pinned Debian packages.
debs=$CACHE/debs
mkdir -p "$debs"
for entry in "${DEBS[@]}"; do
  read -r name version sha <<<"$entry"
  arch=amd64; [ "$name" = ca-certificates ] && arch=all
  file=$debs/${name}_${version//:/%3a}_$arch.deb
  if [ ! -f "$file" ]; then
    say "downloading $name=$version"
    (cd "$debs" && apt-get download -qq "$name=$version" 2>&1) >&2 ||
      die "$name=$version is not on the configured mirror; candidate now: $(apt-cache policy "$name" | sed -n 's/ *Candidate: //p')"
  fi
  got=$(sha256sum "$file" | cut -d' ' -f1)
  [ "$got" = "$sha" ] || die "$file: SHA-256 $got, pinned $sha"
done

# 3. The root filesystem.
ctx=$BUILD/context
root=$ctx/rootfs
rm -rf "$ctx" && mkdir -p "$root" "$BUILD"
cp "$REPO/Containerfile" "$ctx/Containerfile"
pkgs=$BUILD/pkgs
rm -rf "$pkgs" && mkdir -p "$pkgs"
for entry in "${DEBS[@]}"; do
  read -r name version _ <<<"$entry"
  dpkg-deb -x "$debs/${name}_${version//:/%3a}_"*.deb "$pkgs/$name"
  # The licence of what is shipped (a package whose doc dir is a link has it in another).
  if [ -f "$pkgs/$name/usr/share/doc/$name/copyright" ] && [ ! -L "$pkgs/$name/usr/share/doc/$name" ]; then
    mkdir -p "$root/usr/share/doc/$name"
    cp "$pkgs/$name/usr/share/doc/$name/copyright" "$root/usr/share/doc/$name/copyright"
  fi
done
install -D -m 0755 "$bin" "$root/usr/bin/rollguard"
strip --strip-all "$root/usr/bin/rollguard"
# The shared libraries the binary names, and its interpreter, from the packages only.
libdir=lib/x86_64-linux-gnu
mkdir -p "$root/$libdir" "$root/lib64"
interp=$(readelf -l "$root/usr/bin/rollguard" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ "$interp" = /lib64/ld-linux-x86-64.so.2 ] || die "unexpected ELF interpreter '$interp'"
cp "$pkgs/libc6/$libdir/ld-linux-x86-64.so.2" "$root/$libdir/"
ln -s "../$libdir/ld-linux-x86-64.so.2" "$root/lib64/ld-linux-x86-64.so.2"
for lib in $(readelf -d "$root/usr/bin/rollguard" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
  found=$(ls "$pkgs"/*/"$libdir/$lib" 2>/dev/null | head -1)
  [ -n "$found" ] || die "$lib (needed by rollguard) is in none of the pinned packages"
  cp "$found" "$root/$libdir/"
done
# CA certificates: the Mozilla set of the pinned package, one bundle, in a fixed order.
mkdir -p "$root/etc/ssl/certs"
find "$pkgs/ca-certificates/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort |
  xargs cat >"$root/etc/ssl/certs/ca-certificates.crt"
[ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || die "no CA certificates in the package"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
# Reproducible: fixed modes and timestamps.
find "$root" -type d -exec chmod u+rwx,go+rx {} +
find "$root" -exec touch -h -d "@$EPOCH" {} +
rm -rf "$pkgs"
rootfs_bytes=$(du -sb --apparent-size "$root" | cut -f1)
say "context: $ctx ($(( rootfs_bytes / 1024 )) KiB of files)"
if [ "$mode" = context ]; then
  echo "$ctx"
  exit 0
fi

# 4. The image, then an OCI layout of it: its manifest digest is the digest a registry serves.
tag=$IMAGE:$VERSION
buildah "${STORAGE[@]}" rmi -f "$tag" >/dev/null 2>&1 || true
buildah "${STORAGE[@]}" build --quiet --format oci --timestamp "$EPOCH" --identity-label=false \
  --omit-history --layers=false --pull=never \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg CREATED="$CREATED" \
  -f "$ctx/Containerfile" -t "$tag" "$ctx" >/dev/null
rm -rf "$BUILD/oci"
buildah "${STORAGE[@]}" push --quiet --format oci --compression-format gzip \
  --digestfile "$BUILD/digest" "$tag" "oci:$BUILD/oci:$VERSION" >/dev/null
digest=$(cat "$BUILD/digest")
layers=$(python3 - "$BUILD/oci" "$digest" <<'PY'
import json, os, sys
d, digest = sys.argv[1], sys.argv[2]
blob = lambda h: os.path.join(d, "blobs", *h.split(":"))
m = json.load(open(blob(digest)))
print(sum(l["size"] for l in m["layers"]))
PY
)
echo "$rootfs_bytes $layers" >"$BUILD/size"
say "built $tag in $(( $(date +%s) - start ))s"
printf 'image:    %s\n' "$tag"
printf 'digest:   %s\n' "$digest"
awk -v u="$rootfs_bytes" -v c="$layers" \
  'BEGIN{printf "size:     %d bytes uncompressed (%.1f MB), %d bytes compressed (%.1f MB)\n", u, u/1e6, c, c/1e6}'

write_values() {
  mkdir -p "$(dirname "$VALUES")"
  cat >"$VALUES" <<VALUES
# Written by scripts/image.sh: the operator image $IMAGE, pinned by digest
# (rollguard $VERSION, revision $REVISION). helm install ... -f $(basename "$VALUES")
image:
  repository: $IMAGE
  digest: "$digest"
VALUES
  say "wrote $VALUES"
}

if [ "$mode" = push ]; then
  buildah "${STORAGE[@]}" push --quiet --format oci --compression-format gzip --tls-verify="$TLS_VERIFY" \
    --digestfile "$BUILD/pushed-digest" "$tag" "docker://$tag" >/dev/null
  pushed=$(cat "$BUILD/pushed-digest")
  [ "$pushed" = "$digest" ] || die "the registry holds $pushed, not the built $digest"
  say "pushed $tag@$digest"
  write_values
fi

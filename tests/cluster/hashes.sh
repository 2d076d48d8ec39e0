# shellcheck shell=bash
# The sha256 of every cached artifact (binaries, CRD and stage files), recorded by build.sh when
# it builds one and checked before one is used (build.sh's "cached", cluster.sh up). Sourced;
# needs CACHE set. Records live next to the cache, one file per artifact:
#   $CACHE/sha256/<artifact file name>.sha256   ("<hex>  <file name>", sha256sum's format)
#
# What it catches: an artifact that changed after it was built (a truncated copy, a disk
# error, another tool's or another version's build under the same name, a binary replaced by
# someone who did not also rewrite its record). It is not a signature: whoever can write the
# cache can rewrite the record too (docs/security.md).
#
# A cache filled before records existed has binaries and no records: nothing is trusted
# because it exists. Set ROLLGUARD_CACHE_ADOPT=1 once to record the hashes of what is there
# (you vouch for it), or delete the artifact to have it rebuilt.
HASHES=$CACHE/sha256

hash_record_of() { echo "$HASHES/$(basename "$1").sha256"; }

# record_hash FILE: writes FILE's record (atomically).
record_hash() {
  local f=$1 rec
  rec=$(hash_record_of "$f")
  mkdir -p "$HASHES"
  printf '%s  %s\n' "$(sha256sum <"$f" | cut -d' ' -f1)" "$(basename "$f")" >"$rec.tmp"
  mv "$rec.tmp" "$rec"
}

# check_hash FILE: 0 when FILE matches its record; 1 (with a message on stderr) when it does not;
# 2 when FILE is absent; 3 (with a message) when it has no record and ROLLGUARD_CACHE_ADOPT is
# not 1.
check_hash() {
  local f=$1 rec want got
  [ -e "$f" ] || return 2
  rec=$(hash_record_of "$f")
  got=$(sha256sum <"$f" | cut -d' ' -f1)
  if [ ! -f "$rec" ]; then
    if [ "${ROLLGUARD_CACHE_ADOPT:-}" = 1 ]; then
      record_hash "$f"
      echo "[hashes] $f: no record; ROLLGUARD_CACHE_ADOPT=1, recorded sha256 $got" >&2
      return 0
    fi
    echo "[hashes] $f has no recorded sha256 ($rec): it was not built by this build.sh, or before hashes were recorded. Delete it to rebuild it, or run once with ROLLGUARD_CACHE_ADOPT=1 to record the hash of the file you have (you vouch for it)." >&2
    return 3
  fi
  want=$(cut -d' ' -f1 <"$rec")
  if [ "$got" != "$want" ]; then
    echo "[hashes] $f does not match the sha256 recorded when it was built: recorded $want, now $got" >&2
    return 1
  fi
  return 0
}

#!/usr/bin/env bash
# Copies the third-party protos the contracts import into third_party/
# (ignored by git), from pinned Go modules on the Go module proxy, at build
# time; never committed:
#   google/api/{annotations,http}.proto  github.com/grpc-ecosystem/grpc-gateway v1.16.0
#   buf/validate/validate.proto          github.com/bufbuild/protovalidate v1.2.2
#     (protovalidate's rules; buf.build/go/protovalidate enforces them)
set -euo pipefail
cd "$(dirname "$0")/.."

# fetch MODULE@VERSION SRC_DIR DEST_DIR FILE...
fetch() {
  local mod=$1 src=$2 dest=$3 have=1 dir f
  shift 3
  for f in "$@"; do [[ -f $dest/$f ]] || have=; done
  if [[ -n $have ]]; then return 0; fi
  dir=$(cd tools && go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [[ -z $dir ]]; then
    echo "fetch-googleapis: could not download $mod from the Go module proxy; check GOPROXY and network access" >&2
    exit 1
  fi
  mkdir -p "$dest"
  for f in "$@"; do
    install -m 0644 "$dir/$src/$f" "$dest/$f"
  done
}

fetch github.com/grpc-ecosystem/grpc-gateway@v1.16.0 third_party/googleapis/google/api \
  third_party/googleapis/google/api annotations.proto http.proto
fetch github.com/bufbuild/protovalidate@v1.2.2 proto/protovalidate/buf/validate \
  third_party/protovalidate/buf/validate validate.proto

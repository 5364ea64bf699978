#!/usr/bin/env bash
# Copies google/api/{annotations,http}.proto from a pinned Go module into
# third_party/googleapis (ignored by git). The files are fetched from the Go
# module proxy at build time, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=github.com/grpc-ecosystem/grpc-gateway@v1.16.0
dest=third_party/googleapis/google/api
if [[ -f $dest/annotations.proto && -f $dest/http.proto ]]; then exit 0; fi
dir=$(cd tools && go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [[ -z $dir ]]; then
  echo "fetch-googleapis: could not download $mod from the Go module proxy; check GOPROXY and network access" >&2
  exit 1
fi
mkdir -p "$dest"
for f in annotations.proto http.proto; do
  install -m 0644 "$dir/third_party/googleapis/google/api/$f" "$dest/$f"
done

#!/usr/bin/env bash
# Runs `go test` for `make test`: by default through `go test -json` and
# internal/kafkatest/cmd/testreport, which prints one line per package, the
# output of failing tests, and a summary that counts the tests that ran
# against the real Apache Kafka broker. V=1 prints plain `go test -v` output
# instead. Arguments are packages or go test flags; GO_TEST_FLAGS adds flags.
set -euo pipefail
cd "$(dirname "$0")/.."

flags=(-count=1 -timeout="${GO_TEST_TIMEOUT:-10m}")
# shellcheck disable=SC2206 # GO_TEST_FLAGS is a list of flags
flags+=(${GO_TEST_FLAGS:-})
[[ $# -gt 0 ]] || set -- ./...

if [[ ${V:-0} == 1 ]]; then
	exec go test -v "${flags[@]}" "$@"
fi
go build -o .cache/bin/testreport ./internal/kafkatest/cmd/testreport
go test -json "${flags[@]}" "$@" 2>&1 | .cache/bin/testreport

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
# Without packages: the whole module, and the modules nested in it (the
# Kubernetes manifest checks, which keep the Kubernetes API types out of
# the main module).
nested=()
if [[ $# -eq 0 ]]; then
	set -- ./...
	nested=(examples/kubernetes)
fi

if [[ ${V:-0} == 1 ]]; then
	rc=0
	go test -v "${flags[@]}" "$@" || rc=$?
	for m in "${nested[@]}"; do (cd "$m" && go test -v "${flags[@]}" ./...) || rc=$?; done
	exit "$rc"
fi
go build -o .cache/bin/testreport ./internal/kafkatest/cmd/testreport
{
	rc=0
	go test -json "${flags[@]}" "$@" 2>&1 || rc=$?
	for m in "${nested[@]}"; do (cd "$m" && go test -json "${flags[@]}" ./... 2>&1) || rc=$?; done
	exit "$rc"
} | .cache/bin/testreport

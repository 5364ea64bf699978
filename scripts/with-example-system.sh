#!/usr/bin/env bash
# Runs a command against the example system: `purista dev` starts the
# embedded Kafka broker, the contracts' topics, the gateway and the three
# services (examples/purista.yaml), each a process of its own, as `make
# demo` does. Once the users service answers through the gateway, the
# command runs with PURISTA_GATEWAY_URL set; then the system is stopped
# (SIGTERM to purista dev, which stops its processes) and the command's exit
# code returned. The system's log goes to .cache/example-system.log.
#
#   scripts/with-example-system.sh node client.mjs
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [[ $# -eq 0 ]]; then
	echo "usage: $0 command [args...]" >&2
	exit 2
fi

mkdir -p .cache bin
log=$root/.cache/example-system.log
go build -o bin/purista ./cmd/purista
go run ./examples/contracts/image -o bin/examples.binpb

# A free port for the gateway; the broker takes one of its own (port 0).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
(cd examples && exec ../bin/purista dev --image ../bin/examples.binpb --http "127.0.0.1:$port" \
	--broker-port 0 --color never --log-level warn) >"$log" 2>&1 &
dev=$!
stop() {
	if kill -0 "$dev" 2>/dev/null; then
		kill -TERM "$dev" 2>/dev/null || true
		for _ in $(seq 1 60); do kill -0 "$dev" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$dev" 2>/dev/null || true
	fi
	wait "$dev" 2>/dev/null || true
}
trap stop EXIT

# Building the processes takes a while on a cold cache: up to 5 minutes.
ready=
for _ in $(seq 1 600); do
	if ! kill -0 "$dev" 2>/dev/null; then
		echo "with-example-system: purista dev exited before the system was ready; its log:" >&2
		tail -n 50 "$log" >&2
		exit 1
	fi
	if [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/v1/users" || true) == 200 ]]; then
		ready=1
		break
	fi
	sleep 0.5
done
if [[ -z $ready ]]; then
	echo "with-example-system: the example system did not answer GET $url/v1/users within 5 minutes; its log:" >&2
	tail -n 50 "$log" >&2
	exit 1
fi
echo "with-example-system: the example system answers on $url (log: $log)"
rc=0
PURISTA_GATEWAY_URL=$url "$@" || rc=$?
exit $rc

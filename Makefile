# purista-go developer tasks. `make help` lists them.
#
# Everything runs offline except for package registries: buf comes from npm
# into .cache/buf, protoc plugins are Go tools pinned in tools/go.mod, the
# google/api protos come from a pinned Go module into third_party/, and the
# real Kafka broker for tests comes from Maven Central into .cache/kafka.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BUF_VERSION := 1.75.0
BUF := .cache/buf/node_modules/.bin/buf
CONTRACTS := examples/contracts
BENCHTIME ?= 1s
# Extra flags for go test, e.g. make test GO_TEST_FLAGS='-run TestX -race'.
GO_TEST_FLAGS ?=
export GO_TEST_FLAGS

.PHONY: help tools generate contracts-deps check-generated lint test test-kafka faults security fuzz client-ts demo bench dashboard

help: ## Show this list.
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo
	@echo "  Variables: V=1 (plain go test -v output), GO_TEST_FLAGS, BENCHTIME=$(BENCHTIME),"
	@echo "  PURISTA_REQUIRE_KAFKA=1 (fail instead of skipping the real-Kafka suite)."

$(BUF):
	npm install --no-save --no-audit --no-fund --loglevel=error --prefix .cache/buf @bufbuild/buf@$(BUF_VERSION)

tools: $(BUF) ## Install buf (npm, into .cache) and fetch google/api and buf/validate protos (into third_party).
	@$(BUF) --version | grep -qx '$(BUF_VERSION)' || npm install --no-save --no-audit --no-fund --loglevel=error --prefix .cache/buf @bufbuild/buf@$(BUF_VERSION)
	@scripts/fetch-googleapis.sh

# The plugin is built from this module, which imports the Go code of
# purista/v1/options.proto: that code is generated first, alone, so that a
# new option can be used by the plugin that the full run then builds.
BOOTSTRAP_TEMPLATE := {"version":"v2","plugins":[{"local":["go","tool","-modfile=tools/go.mod","protoc-gen-go"],"out":"gen","opt":"paths=source_relative"}]}
generate: tools contracts-deps ## Regenerate gen/ from proto/ and examples/contracts/gen/ from the example contracts.
	$(BUF) generate --template '$(BOOTSTRAP_TEMPLATE)' --path proto/purista/v1/options.proto
	$(BUF) generate
	go test ./protoc-gen-purista -run '^TestGolden$$' -count=1 -update # plugin golden files
	cd $(CONTRACTS) && ../../$(BUF) generate # the example contracts: a buf workspace of their own

# The example contracts import purista/v1/options.proto (a committed copy of
# proto/'s, kept current here), google/api and buf/validate (fetched,
# ignored by git).
contracts-deps: tools
	@install -D -m 0644 proto/purista/v1/options.proto $(CONTRACTS)/third_party/purista/v1/options.proto
	@for f in annotations.proto http.proto; do \
		install -D -m 0644 third_party/googleapis/google/api/$$f $(CONTRACTS)/third_party/google/api/$$f; \
	done
	@install -D -m 0644 third_party/protovalidate/buf/validate/validate.proto $(CONTRACTS)/third_party/buf/validate/validate.proto

check-generated: generate ## Fail if regenerating changes the tree (run on a clean tree).
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "check-generated: the tree differs after 'make generate' (commit the regenerated files):"; \
		git status --porcelain; \
		git --no-pager diff; \
		exit 1; \
	fi
	@echo "check-generated: generated code is up to date"

lint: tools contracts-deps ## gofmt, go vet, go mod tidy of every module, runtime deps, buf lint, and buf lint + buf breaking of the example contracts.
	@files=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$files" ]; then echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$files"; exit 1; fi
	go vet ./...
	cd examples/kubernetes && go vet ./...
	cd bench/peers && go vet ./...
	@# Every module of the repository, found rather than listed, so a new one is checked too.
	@for mod in $$(git ls-files -co --exclude-standard '*go.mod' ':!:.cache/**'); do \
		dir=$$(dirname $$mod); \
		if ! out=$$(cd $$dir && go mod tidy -diff 2>&1); then \
			echo "go mod tidy: $$dir/go.mod is not tidy (run: cd $$dir && go mod tidy):"; echo "$$out"; exit 1; \
		fi; \
	done
	@# The runtime package is linked into every service: it must not pull in the HTTP gateway.
	@if deps=$$(go list -deps github.com/purista-go/purista | grep grpc-gateway); then \
		echo "github.com/purista-go/purista depends on grpc-gateway, keep gateway code out of it:"; echo "$$deps"; exit 1; \
	fi
	$(BUF) lint
	cd $(CONTRACTS) && ../../$(BUF) lint
	BUF=$(BUF) $(CONTRACTS)/breaking.sh # against the previous commit; BREAKING_AGAINST=<ref> to choose

# make test runs the whole suite once. With Java 17+ and Maven it runs under
# scripts/kafka.sh, so the tests' "kafka" subtests use a real Apache Kafka
# broker next to the "embedded" ones; otherwise they are skipped with one line
# saying why (a failure with PURISTA_REQUIRE_KAFKA=1).
test: ## Run all tests (embedded broker; real Kafka too when Java 17 + Maven exist).
	@$(MAKE) --no-print-directory tools >/dev/null 2>&1 || \
		echo "note: 'make tools' failed (is npm installed?); tests that need buf or the google/api protos will skip"
	@if why=$$(scripts/kafka.sh check); then \
		rc=0; scripts/kafka.sh run -- scripts/gotest.sh ./... || rc=$$?; \
		if [ $$rc -ne 125 ]; then exit $$rc; fi; \
		why="the Kafka broker did not start (see above)"; \
	fi; \
	if [ "$${PURISTA_REQUIRE_KAFKA:-}" = 1 ]; then \
		echo "real Kafka suite required (PURISTA_REQUIRE_KAFKA=1) but cannot run: $$why"; exit 1; \
	fi; \
	echo "real Kafka suite skipped: $$why"; \
	scripts/gotest.sh ./...

test-kafka: ## Run only the tests that use a real Apache Kafka broker (needs Java 17 + Maven).
	@pkgs=$$(go list -e -f '{{.ImportPath}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}' ./... \
		| awk '/ github.com\/purista-go\/purista\/internal\/kafkatest( |$$)/ { print $$1 }'); \
	PURISTA_REQUIRE_KAFKA=1 PURISTA_KAFKA_ONLY=1 scripts/kafka.sh run -- scripts/gotest.sh $$pkgs

# The broker fault suite (internal/faults) starts its own real Kafka nodes
# (internal/kafkatest/cluster: one or three KRaft processes that it kills,
# stops and restarts), so it needs no scripts/kafka.sh around it. Its tests
# skip without PURISTA_FAULTS=1, which keeps them out of `make test`. The
# suite prints its figure: lines; they are collected at the end.
FAULT_PKGS := ./internal/kafkatest/cluster/... ./internal/faults/...
faults: ## Run the broker fault suite on real 1- and 3-node Kafka clusters and print its figures (needs Java 17 + Maven; ~6 minutes).
	@scripts/kafka.sh fetch
	@mkdir -p .cache
	@rc=0; PURISTA_FAULTS=1 PURISTA_REQUIRE_KAFKA=1 go test -v -run . -count=1 -timeout=20m $(GO_TEST_FLAGS) $(FAULT_PKGS) 2>&1 \
		| grep -v '^time=\|^{' | tee .cache/faults.out || rc=$$?; \
	echo; echo "figures:"; grep -h '^figure:' .cache/faults.out || echo "  (the suite printed no figure: line)"; \
	exit $$rc

# The least-privilege suite (internal/security, docs/security.md): one
# Apache Kafka node with SASL_SSL (SCRAM-SHA-512) for clients, mutual TLS
# between broker and controller, and the standard authorizer; certificates
# and SCRAM users made at test time; topics and ACLs provisioned with the
# purista CLI (topics ensure, acl apply) as the admin; the example system
# run with one principal per component; then every forbidden act of the
# threat model tried, each of which must fail at once with an
# authorization error naming the topic or group (and the principal where
# purista's transport reports it). The test skips without
# PURISTA_SECURITY=1, which keeps it out of `make test`.
security: ## Run the example system on a secured Kafka (SASL_SSL, ACLs from purista acl apply) and try every forbidden act; print its figures (needs Java 17 + Maven; ~1 minute).
	@scripts/kafka.sh fetch
	@mkdir -p .cache
	@rc=0; PURISTA_SECURITY=1 PURISTA_REQUIRE_KAFKA=1 go test -v -run '^TestSecuredSystem$$' -count=1 -timeout=10m $(GO_TEST_FLAGS) ./internal/security 2>&1 \
		| grep -v '^time=\|^{' | tee .cache/security.out || rc=$$?; \
	echo; echo "figures:"; grep -h '^figure:' .cache/security.out || echo "  (the suite printed no figure: line)"; \
	exit $$rc

# The HTTP edge under random and hostile input (scripts/fuzz-http.sh): Go's
# fuzzer on the gateway's request decoding (gateway/fuzz_test.go) over the
# in-process example system for FUZZTIME, then schemathesis (PyPI, pinned,
# into a venv in .cache) against the example system under `purista dev`,
# both served OpenAPI documents, every check, SCHEMATHESIS_TIME seconds each.
# Go's fuzzer stops at the first failing input and writes it under
# gateway/testdata/fuzz/, where it then runs with every go test. Accepted
# schemathesis failures are in scripts/schemathesis-baseline.json and
# justified in docs/gateway.md. Prints http_fuzz_cases, _server_errors, _failures.
FUZZTIME ?= 60s
FUZZ_PARALLEL ?= 2
SCHEMATHESIS_TIME ?= 60
fuzz: ## Fuzz the HTTP edge (Go fuzzer FUZZTIME=60s, schemathesis SCHEMATHESIS_TIME=60 s per document) and print its figures.
	@FUZZTIME=$(FUZZTIME) FUZZ_PARALLEL=$(FUZZ_PARALLEL) SCHEMATHESIS_TIME=$(SCHEMATHESIS_TIME) scripts/fuzz-http.sh

# A TypeScript client generated from the example gateway's served OpenAPI 3
# document (openapi-typescript, type-checked by tsc) and run by Node through
# openapi-fetch against the example system under `purista dev`
# (scripts/client-ts.sh; npm packages pinned by
# examples/client-ts/package-lock.json, installed into .cache/client-ts).
client-ts: ## Generate the TypeScript client from the served OpenAPI 3 and run it against the example system (Node, npm).
	@scripts/client-ts.sh

# The example system on the embedded broker, run by `purista dev` from
# examples/purista.yaml as a user's system is: gateway first, the demo
# driver (examples/demo) printing its requests as curl commands, the
# services a second later; then it keeps running until Ctrl-C.
# MONOLITH=1 runs it in one process instead (examples/purista.monolith.yaml).
# The contracts image is written from the compiled-in descriptors, so the
# demo needs only Go (purista dev would otherwise build it with buf).
DEMO_FLAGS ?=
demo: ## Run the example system and its demo requests on the embedded broker (needs only Go).
	@echo "building bin/purista (the first build compiles every dependency: a minute or two on 2 cores)"
	@go build -o bin/purista ./cmd/purista
	@go run ./examples/contracts/image -o bin/examples.binpb
	@cd examples && ../bin/purista dev --demo --image ../bin/examples.binpb $(if $(MONOLITH),-f purista.monolith.yaml) $(DEMO_FLAGS)

# The dashboard of purista dev in a real browser: purista dev runs the
# example system, the test makes a call across two services and opens the
# dashboard in headless Chromium (the Debian package chromium, or
# PURISTA_CHROMIUM): the call, its trace as a waterfall, instances and lag
# must be on the page, and a screenshot is written to .cache/dashboard.png.
dashboard: ## Check purista dev's dashboard in headless Chromium and write .cache/dashboard.png (needs chromium).
	@mkdir -p .cache
	PURISTA_REQUIRE_CHROMIUM=1 PURISTA_SCREENSHOT=$(CURDIR)/.cache/dashboard.png \
		go test ./cmd/purista -run '^TestDevDashboard$$' -count=1 -v $(GO_TEST_FLAGS) 2>&1 | grep -v '^time=\|^{'

# make bench runs every benchmark of the main module, under scripts/kafka.sh
# when Java and Maven are present (as make test decides), so that
# BenchmarkRealKafka measures a real Apache Kafka broker too; then the peers
# benchmark (bench/peers, a module of its own: Watermill beside the
# transport on the embedded broker). `uptime` before and after says how
# loaded the machine was.
bench: ## Run benchmarks (real Kafka too when Java 17 + Maven exist; bench/peers) and print the figure: lines they emit.
	@mkdir -p .cache
	@echo "load before: $$(uptime)" | tee .cache/bench.out
	@run=(); if why=$$(scripts/kafka.sh check); then run=(scripts/kafka.sh run --); else echo "real Kafka benchmark skipped: $$why"; fi; \
	gotest=(go test -run '^$$' -bench . -benchtime=$(BENCHTIME) -count=1 $(GO_TEST_FLAGS)); \
	rc=0; "$${run[@]}" "$${gotest[@]}" ./... 2>&1 | tee -a .cache/bench.out || rc=$$?; \
	if [ $$rc -eq 125 ] && [ $${#run[@]} -gt 0 ]; then \
		echo "real Kafka benchmark skipped: the Kafka broker did not start (see above)"; \
		rc=0; "$${gotest[@]}" ./... 2>&1 | tee -a .cache/bench.out || rc=$$?; \
	fi; \
	(cd bench/peers && "$${gotest[@]}" ./...) 2>&1 | tee -a .cache/bench.out || rc=$$?; \
	echo "load after: $$(uptime)" | tee -a .cache/bench.out; \
	echo; echo "figures:"; grep -h 'figure:' .cache/bench.out || echo "  (no benchmark printed a figure: line)"; \
	grep -h '^load ' .cache/bench.out; \
	exit $$rc

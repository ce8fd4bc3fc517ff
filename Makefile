# Ballast — the commands a newcomer types. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
BALLAST := target/debug/ballast

.PHONY: build image image-check push deploy test unit lint alerts crds demo demo-simulate gameday bench bench-compare chaos fuzz chaos-report e2e e2e-build cluster-up cluster-down e2e-smoke e2e-scenarios clean

# ballast, and the chaos suite's invariant checker (e2e/invariants).
build:
	$(CARGO) build --locked --workspace

# The container image, without a container engine: a static (musl) binary in one
# layer with a CA bundle and uid/gid 65532, as an OCI image archive under
# target/image/; prints its digest. `make push IMAGE=registry/name:tag` pushes it
# with the credentials of ~/.docker/config.json.
image:
	image/build

# Unpack the image as a runtime would and run its binary as uid 65532.
image-check: image
	image/check

push:
	@[ -n "$(IMAGE)" ] || { echo "usage: make push IMAGE=registry/name:tag (after make image)"; exit 2; }
	image/build --push $(IMAGE)

# Everything CI checks: format and clippy, unit/property/CLI tests (with every fuzz
# target's seed corpus replayed on the stable toolchain), the alert rules, the image
# (built and run from its unpacked layers), then the
# end-to-end smoke tests, operator scenarios and chaos suite on one real local
# cluster (built and started by e2e/, torn down at the end), with a 10-policy smoke
# of make bench's harness. Measurements (make bench, make fuzz, make chaos-report)
# are their own targets; nothing here changes a tracked file.
test:
	@mkdir -p target && git status --porcelain >target/status-before-test 2>/dev/null || true
	$(MAKE) lint unit alerts image-check e2e
	@git status --porcelain 2>/dev/null | diff -u target/status-before-test - \
		&& echo "make test left the checkout as it found it" \
		|| { echo "make test changed files in the checkout (above): tests must write under target/"; exit 1; }

# The cost of N policies on one replica (N=100 by default; the reference run is
# `make bench N=10000 K=8 R=10`), and the engine's criterion benchmark; figures go
# into target/bench/results.md (reported, not asserted), or into the tracked
# bench/results.md with RESULTS=bench/results.md.
bench:
	$(CARGO) build --locked --release
	bench/run $(if $(N),--policies $(N)) $(if $(K),--intervals $(K)) $(if $(R),--steps $(R)) $(if $(RESULTS),--results $(RESULTS))

# Ballast and KEDA v2.21.0 (+ the HPA controller) on the same work, one at a time on
# fresh clusters: N = 100 and 1,000 by default (SIZES="100 1000 10000" for more),
# KEDA stock and tuned; side-by-side tables with ratios into target/bench/results.md
# (or RESULTS=bench/results.md). The first run builds KEDA from its Go module
# (cached outside the tree). About 10 minutes at N = 100 and 25 at N = 1,000 (three
# runs each) on 2 cores, after that build.
bench-compare:
	$(CARGO) build --locked --release
	bench/compare $(if $(SIZES),--sizes "$(SIZES)") $(if $(K),--intervals $(K)) $(if $(R),--steps $(R)) $(if $(RESULTS),--results $(RESULTS))

e2e: build
	e2e/all

unit:
	@command -v lua5.1 >/dev/null || e2e/apt-install lua5.1
	@command -v pre-commit >/dev/null || e2e/apt-install pre-commit
	@python3 -c 'import jsonschema' 2>/dev/null || e2e/apt-install python3-jsonschema
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --locked --workspace --no-fail-fast; \
	else \
		echo "cargo-nextest not found; using cargo test"; \
		$(CARGO) test --locked --workspace --no-fail-fast; \
	fi

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked -p ballast-e2e --test scenarios -- -D warnings

# The alert rules: promtool (from Debian's prometheus package) checks them and runs
# their unit tests; every runbook_url must name a page in docs/runbooks/.
alerts:
	@command -v promtool >/dev/null || e2e/apt-install prometheus
	promtool check rules deploy/prometheus/ballast.rules.yaml
	cd deploy/prometheus && promtool test rules ballast.rules.test.yaml
	@for f in $$(sed -n 's/.*runbook_url: //p' deploy/prometheus/ballast.rules.yaml); do \
		[ -f "$$f" ] || { echo "runbook_url $$f: no such page"; exit 1; }; done; echo "runbooks: every runbook_url exists"

# Regenerate crds/ (and the copies kustomize installs from deploy/crds/ and Helm from
# charts/ballast/crds/) from the Rust types; a test fails when any drifts.
crds:
	$(CARGO) run --locked --quiet -- crd --out-dir crds
	$(CARGO) run --locked --quiet -- crd --out-dir deploy/crds
	$(CARGO) run --locked --quiet -- crd --out-dir charts/ballast/crds

# Render deploy/'s rbac, operator, webhook and monitoring manifests from the Helm
# chart (charts/ballast, their one source) and copy the dashboard and alert rules
# into the chart; tests/chart.rs fails when they differ.
deploy:
	charts/render

# The live demo: the local cluster, the operator, a cache Deployment on its own node
# pool, eviction load up and down, a live table, and target/demo/live.svg.
# DEMO_NONINTERACTIVE=1 for CI.
demo: build
	e2e/demo

# The offline demo: replay the cache-eviction example through its policy and draw it.
demo-simulate: build
	@mkdir -p target/demo
	$(BALLAST) simulate --policy examples/cache-eviction/policy.yaml \
		--series examples/cache-eviction/series.csv --initial-replicas 2 \
		--plot target/demo/cache-eviction.svg
	@echo "plot: $(CURDIR)/target/demo/cache-eviction.svg"

# The local cluster: control plane from Go modules, KWOK nodes, Prometheus, Redis.
e2e-build:
	e2e/build

cluster-up:
	e2e/cluster up $(if $(NODES),--nodes $(NODES))

cluster-down:
	e2e/cluster down

e2e-smoke: build
	e2e/smoke

# The e2e scenarios (e2e/suite: evictions, failover, node pools, admission, the
# gameday, the chaos suite, ...), each in its own namespace, several at a time,
# through the run's admission webhook; a JUnit report in target/e2e/junit.xml.
# SCENARIOS=... filters by name (libtest's filter; e2e/scenarios --list lists them).
e2e-scenarios: build
	e2e/scenarios $(SCENARIOS)


# Faults injected while Ballast scales (Prometheus killed, API server restarted and
# etcd frozen, leaders killed, a broken Prometheus behind a proxy, ...), under the
# invariant checker; on the running cluster, else one of its own. SCENARIOS=NAME picks
# one (e.g. leader-killed). They are e2e/scenarios' chaos-* scenarios.
chaos: build
	e2e/chaos $(SCENARIOS)

# Coverage-guided fuzzing (cargo-fuzz, nightly; both installed when missing) of the
# policy YAML, Prometheus responses, the engine and AdmissionReviews: FUZZ_SECONDS
# per target (30 by default); crashes and figures in target/fuzz/. `make unit`
# replays the same targets' seeds without libFuzzer.
fuzz:
	fuzz/run --seconds $(or $(FUZZ_SECONDS),30)

# docs/reliability.md from one run of the chaos suite and a long fuzz run
# (FUZZ_SECONDS=300 per target by default).
chaos-report: build
	e2e/chaos
	fuzz/run --seconds $(or $(FUZZ_SECONDS),300)
	e2e/reliability-report docs/reliability.md

# One fault on the harness, as on-call would meet it: the metrics source's
# Prometheus stopped under load. Shows the status, Events and alert as they
# change, checks the alert fires and the runbook's verification step passes.
gameday: build
	e2e/scenarios --exact gameday

clean:
	$(CARGO) clean

// Pins the Prometheus Operator release whose ServiceMonitor and PrometheusRule
// CRDs the e2e tests install, so deploy/ can be dry-run against the real schemas.
// Nothing is built from here: e2e/build runs `go mod download` and copies
// example/prometheus-operator-crd/*.yaml out of the module zip.
module ballast.dev/e2e/controlplane/prometheus-operator

go 1.24

require github.com/prometheus-operator/prometheus-operator v0.85.0

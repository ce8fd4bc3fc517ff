// Pins the cert-manager release whose Certificate and Issuer CRDs the e2e tests
// install (to check the chart's cert-manager render with a server-side dry run).
// Nothing is built from here: e2e/build runs `go mod download` and copies
// deploy/crds/ out of the module zip.
module ballast.dev/e2e/controlplane/cert-manager

go 1.24

require github.com/cert-manager/cert-manager v1.21.2

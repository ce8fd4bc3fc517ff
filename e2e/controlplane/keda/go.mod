// Pins the KEDA release whose ScaledObject CRD the e2e tests install (to check
// that the admission webhook refuses a policy on a ScaledObject's target).
// Nothing is built from here: e2e/build runs `go mod download` and copies
// config/crd/bases/keda.sh_scaledobjects.yaml out of the module zip.
module ballast.dev/e2e/controlplane/keda

go 1.24

require github.com/kedacore/keda/v2 v2.21.0

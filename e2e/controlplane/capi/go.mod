// Pins the Cluster API release whose MachineDeployment CRD the harness installs.
// Nothing is built from here: e2e/build runs `go mod download` and copies
// config/crd/bases/cluster.x-k8s.io_machinedeployments.yaml out of the module zip.
module ballast.dev/e2e/controlplane/capi

go 1.24

require sigs.k8s.io/cluster-api v1.10.10

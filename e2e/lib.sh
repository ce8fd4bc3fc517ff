# Shared helpers for the e2e scripts (sourced, not run).
# shellcheck shell=bash

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CP_DIR="$E2E_DIR/controlplane"
REPO_DIR=$(cd "$E2E_DIR/.." && pwd)

# Where built binaries live: keyed by a hash of every pin (go.mod/go.sum of
# each wrapper module), so a pin change builds into a new directory and an
# unchanged pin set reuses the old one.
E2E_CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/ballast-e2e"
E2E_STATE="${BALLAST_E2E_STATE:-$HOME/.local/state/ballast-e2e/default}"

# The go.mod/go.sum files whose contents make up the cache key.
pin_files() {
	local d
	for d in "$CP_DIR" "$CP_DIR/etcd" "$CP_DIR/kwok" "$CP_DIR/capi"; do
		echo "$d/go.mod"
		[ -f "$d/go.sum" ] && echo "$d/go.sum"
	done
}

cache_key() {
	local f
	for f in $(pin_files); do
		printf '%s\n' "${f#"$CP_DIR"/}"
		cat "$f"
	done | sha256sum | cut -c1-16
}

# Pinned versions, read from the wrapper modules' go.mod files.
pin_of() { # module-dir module-path
	awk -v m="$2" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$1/go.mod"
}

E2E_KEY=$(cache_key)
E2E_CACHE="$E2E_CACHE_ROOT/$E2E_KEY"
E2E_BIN="$E2E_CACHE/bin"
E2E_SHARE="$E2E_CACHE/share"
K8S_VERSION=$(pin_of "$CP_DIR" k8s.io/kubernetes)
ETCD_VERSION=$(pin_of "$CP_DIR/etcd" go.etcd.io/etcd/server/v3)
KWOK_VERSION=$(pin_of "$CP_DIR/kwok" sigs.k8s.io/kwok)
CAPI_VERSION=$(pin_of "$CP_DIR/capi" sigs.k8s.io/cluster-api)
# Manifest-only pins (not part of the cache key: nothing is built from them; the
# files they give carry the version in their names).
KEDA_VERSION=$(pin_of "$CP_DIR/keda" github.com/kedacore/keda/v2)
PROMOP_VERSION=$(pin_of "$CP_DIR/prometheus-operator" github.com/prometheus-operator/prometheus-operator)
CERTMANAGER_VERSION=$(pin_of "$CP_DIR/cert-manager" github.com/cert-manager/cert-manager)
KEDA_CRD="$E2E_SHARE/keda-${KEDA_VERSION}-scaledobjects.yaml"
CERTMANAGER_CRDS="$E2E_SHARE/cert-manager-${CERTMANAGER_VERSION}-crds.yaml"
PROMOP_CRDS="$E2E_SHARE/prometheus-operator-${PROMOP_VERSION}-crds.yaml"

# The binaries the harness needs, in build order (smallest first, so a broken
# toolchain shows up early).
E2E_BINARIES="nodepool-sync etcd kwok kube-scheduler kube-controller-manager kube-apiserver kubectl"

_t0=$(date +%s)
ts() { local s=$(($(date +%s) - _t0)); printf '%3dm%02ds' $((s / 60)) $((s % 60)); }
say() { printf '[%s %s] %s\n' "${E2E_TAG:-e2e}" "$(ts)" "$*"; }
step() { printf '[%s %s] ==> %s\n' "${E2E_TAG:-e2e}" "$(ts)" "$*"; }
warn() { printf '[%s %s] WARNING: %s\n' "${E2E_TAG:-e2e}" "$(ts)" "$*" >&2; }
die() {
	printf '[%s %s] ERROR: %s\n' "${E2E_TAG:-e2e}" "$(ts)" "$*" >&2
	exit 1
}

# `... | matches PATTERN`: grep -q, but reading all its input. grep -q exits at the
# first match, and under pipefail the writer's SIGPIPE (kubectl writes -o name a
# line at a time) then fails the pipeline although the line was there.
matches() { grep "$@" >/dev/null; }

# Wait until the CRDs named by the kubectl arguments (crd/NAME, -f FILE) are
# Established. `kubectl wait --for condition=...` fails at once, instead of
# waiting, while a CRD just created has no conditions yet ("accessor error"), so
# it is asked again until the deadline. Prints kubectl's last answer on failure.
wait_established() { # kubectl timeout-seconds args...
	local kubectl=$1 deadline=$(($(date +%s) + $2)) out
	shift 2
	until out=$("$kubectl" wait --for condition=Established --timeout=5s "$@" 2>&1); do
		[ "$(date +%s)" -ge "$deadline" ] && { echo "$out"; return 1; }
		sleep 0.5
	done
}

# Show the last lines of a component's log, for error messages.
show_log() { # path
	[ -f "$1" ] || return 0
	echo "----- last 25 lines of $1 -----" >&2
	tail -n 25 "$1" >&2
	echo "-----" >&2
}

have_all_binaries() {
	local b
	for b in $E2E_BINARIES; do
		[ -x "$E2E_BIN/$b" ] || return 1
	done
	[ -f "$E2E_SHARE/machinedeployments.yaml" ] && [ -f "$E2E_SHARE/kwok-stages.yaml" ] &&
		[ -f "$KEDA_CRD" ] && [ -f "$PROMOP_CRDS" ] && [ -f "$CERTMANAGER_CRDS" ]
}

# deploy/'s namespace, ServiceAccount and RBAC, and a kubeconfig ($2) with a token
# of that ServiceAccount, from the admin one in $KUBECONFIG: the operator runs with
# exactly what deploy/ grants.
install_operator_identity() { # kubectl out-kubeconfig
	local kubectl=$1 out=$2 token
	"$kubectl" apply -f "$REPO_DIR/deploy/namespace.yaml" >/dev/null || return 1
	"$kubectl" apply -n ballast-system -f "$REPO_DIR/deploy/rbac.yaml" >/dev/null || return 1
	token=$("$kubectl" create token ballast -n ballast-system --duration=3h) || return 1
	cp "$KUBECONFIG" "$out" || return 1
	"$kubectl" --kubeconfig "$out" config set-credentials ballast-sa --token="$token" >/dev/null &&
		"$kubectl" --kubeconfig "$out" config set-context --current --user=ballast-sa >/dev/null
}

#!/bin/sh
# Deploys this repository's workload.yaml to the job's environment (the deploy:<env> job).
#
#   sh ci/deploy.sh REGISTRY/PATH/NAME@sha256:DIGEST
#
# 1. Renders workload.yaml: fills the ${KONFIG_WORKLOAD}, ${KONFIG_PLATFORM} and ${KONFIG_DOMAIN}
#    placeholders from the group's CI/CD variables, and sets spec.image to the digest.
# 2. Server-side applies it, as field manager gitlab-ci, into this environment's namespace of
#    the control-plane cluster (KONFIG_NAMESPACE).
#    https://kubernetes.io/docs/reference/using-api/server-side-apply/
# 3. Waits until the Konfig controller has observed that generation and reports it Ready.
#
# Needs kubectl signed in to the control-plane cluster (gcloud container clusters
# get-credentials) and KONFIG_NAMESPACE, KONFIG_WORKLOAD, KONFIG_PLATFORM, KONFIG_DOMAIN.
set -eu
set -f

fail() {
    printf 'ci/deploy.sh: %s\n' "$*" >&2
    exit 1
}

# Values that go into YAML and JSON unquoted must be lowercase DNS labels.
require_label() {
    case $2 in
        [a-z]*) ;;
        *) fail "$1 must be a lowercase DNS label, got '$2'" ;;
    esac
    case $2 in
        *[!a-z0-9-]* | *-) fail "$1 must be a lowercase DNS label, got '$2'" ;;
    esac
}

image=${1:-}
case $image in
    *@sha256:*) ;;
    *) fail "expected IMAGE@sha256:DIGEST (environments receive digests only), got '$image'" ;;
esac
name_part=${image%@sha256:*}
digest=${image##*@sha256:}
case $name_part in
    '' | *[!a-z0-9./_:-]*) fail "not an image name: '$name_part'" ;;
esac
case $digest in
    *[!0-9a-f]*) fail "not a sha256 digest: '$digest'" ;;
esac
[ ${#digest} -eq 64 ] || fail "not a sha256 digest: '$digest'"

: "${KONFIG_NAMESPACE:?is not set: a deploy job needs an environment: that Konfig manages}"
require_label KONFIG_NAMESPACE "$KONFIG_NAMESPACE"
require_label KONFIG_WORKLOAD "${KONFIG_WORKLOAD:-}"
require_label KONFIG_PLATFORM "${KONFIG_PLATFORM:-}"
require_label KONFIG_DOMAIN "${KONFIG_DOMAIN:-}"
source_file=${KONFIG_WORKLOAD_FILE:-workload.yaml}
[ -f "$source_file" ] || fail "$source_file not found"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sed -e 's/[$]{KONFIG_WORKLOAD}/'"$KONFIG_WORKLOAD"'/g' \
    -e 's/[$]{KONFIG_PLATFORM}/'"$KONFIG_PLATFORM"'/g' \
    -e 's/[$]{KONFIG_DOMAIN}/'"$KONFIG_DOMAIN"'/g' \
    "$source_file" >"$work/filled.yaml"

# A JSON merge patch (RFC 7386) applied locally: only spec.image changes.
kubectl patch --local --filename="$work/filled.yaml" --type=merge \
    --patch="{\"spec\":{\"image\":\"$image\"}}" --output=yaml >"$work/workload.yaml"

applied=$(kubectl apply --server-side --field-manager=gitlab-ci \
    --namespace="$KONFIG_NAMESPACE" --filename="$work/workload.yaml" \
    --output=jsonpath='{.metadata.name} {.metadata.generation}')
# shellcheck disable=SC2086 # split "NAME GENERATION" on purpose
set -- $applied
[ $# -eq 2 ] || fail "unexpected answer from kubectl apply: '$applied'"
name=$1
generation=$2
echo "Applied Workload $name (generation $generation, $image) in namespace $KONFIG_NAMESPACE."

timeout=${KONFIG_DEPLOY_TIMEOUT:-15m}
kubectl wait --namespace="$KONFIG_NAMESPACE" "workloads.konfig.dev/$name" \
    --for="jsonpath={.status.observedGeneration}=$generation" --timeout="$timeout"
kubectl wait --namespace="$KONFIG_NAMESPACE" "workloads.konfig.dev/$name" \
    --for=condition=Ready --timeout="$timeout"
echo "Workload $name is Ready in $KONFIG_NAMESPACE."

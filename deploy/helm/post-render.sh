#!/bin/sh
# Helm post-renderer for LiteMaaS's chart: adds litemaas-hooks to the rendered manifests (stdin -> stdout).
#   helm upgrade --install litemaas deployment/helm/litemaas -n litemaas [-f values...] \
#     --post-renderer deploy/helm/post-render.sh --post-renderer-args plugin      # or: standalone
# LITEMAAS_HOOKS_IMAGE=registry/name:tag overrides the image of the component (plugin: LiteLLM + litemaas-hooks,
# built from images/Containerfile.plugin; standalone: the relay, images/Containerfile.relay).
# Needs `kubectl` (kustomize is built in) or `kustomize` on PATH.
set -eu
mode=${1:-${LITEMAAS_HOOKS_MODE:-plugin}}
case "$mode" in
    plugin) default_image=registry.example.com/litemaas/litellm-non-root-litemaas-hooks ;;
    standalone) default_image=registry.example.com/litemaas/litemaas-hooks-relay ;;
    *)
        echo "post-render.sh: unknown mode '$mode' (use plugin or standalone)" >&2
        exit 2
        ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# kustomize takes only relative paths below its root: copy the component (and what it refers to) there
mkdir "$work/deploy"
cp -R "$here" "$work/deploy/helm"
cp -R "$here/../shared" "$work/deploy/shared"
cat >"$work/chart.yaml"
{
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n'
    printf 'resources:\n  - chart.yaml\ncomponents:\n  - deploy/helm/%s\n' "$mode"
    image=${LITEMAAS_HOOKS_IMAGE:-}
    if [ -n "$image" ]; then
        name=${image%:*}
        tag=${image##*:}
        case "$tag" in */*) name=$image tag=latest ;; esac # a registry port, no tag
        [ "$name" != "$image" ] || tag=latest
        printf 'images:\n  - name: %s\n    newName: %s\n    newTag: "%s"\n' "$default_image" "$name" "$tag"
    fi
} >"$work/kustomization.yaml"
if command -v kubectl >/dev/null 2>&1; then
    kubectl kustomize "$work"
elif command -v kustomize >/dev/null 2>&1; then
    kustomize build "$work"
else
    echo "post-render.sh: needs kubectl or kustomize on PATH" >&2
    exit 127
fi

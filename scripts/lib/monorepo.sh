# Shell helper for benchmarks: a generated GitOps monorepo. Source this file, then call
# `gen_monorepo DIR REGISTRY SERVICES IMAGES [FIRST] [POLICY]`: SERVICES services of 10 files each
# (a Deployment, a Kustomize overlay and Helm values carry markers; 7 plain manifests), their
# markers spread over IMAGES images `REGISTRY/bench/img-N` (N from FIRST, default 0), committed on
# `main`. POLICY `image` (the default) names the policies `bench:img-N`, one per image; `service`
# names them `bench:svc-S`, one per service (many policies watching each image).

gen_monorepo() {
  local tree=$1 reg=$2 services=$3 images=$4 first=${5:-0} per=${6:-image} s d n img policy f
  for s in $(seq 0 $((services - 1))); do
    n=$((first + s % images))
    d="$tree/services/svc-$s" img="$reg/bench/img-$n" policy="bench:img-$n"
    [ "$per" = service ] && policy="bench:svc-$s"
    mkdir -p "$d/base" "$d/overlays/prod" "$d/helm"
    printf '%s\n' "apiVersion: apps/v1" "kind: Deployment" "metadata:" "  name: svc-$s" "spec:" \
      "  replicas: 2" "  template:" "    spec:" "      containers:" "        - name: app" \
      "          image: $img:1.0.0 # {\"\$imagepolicy\": \"$policy\"}" \
      "          ports: [{containerPort: 8080}]" "        - name: proxy" \
      "          image: envoyproxy/envoy:v1.29.0" >"$d/base/deployment.yaml"
    printf '%s\n' "resources: [../../base]" "images:" "  - name: $img" \
      "    newTag: 1.0.0 # {\"\$imagepolicy\": \"$policy:tag\"}" >"$d/overlays/prod/kustomization.yaml"
    printf '%s\n' "image:" "  repository: $img" "  tag: \"1.0.0\" # {\"\$imagepolicy\": \"$policy:tag\"}" \
      "replicaCount: 2" >"$d/helm/values.yaml"
    for f in service configmap hpa pdb networkpolicy serviceaccount role; do
      printf '%s\n' "apiVersion: v1" "kind: $f" "metadata:" "  name: svc-$s-$f" "  labels: {app: svc-$s}" \
        "data:" "  note: plain manifest without markers" >"$d/base/$f.yaml"
    done
  done
  git -c init.defaultBranch=main init -q "$tree"
  git -C "$tree" add -A
  git -C "$tree" -c user.name=bench -c user.email=bench@example.invalid commit -q -m seed
}

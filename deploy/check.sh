#!/usr/bin/env bash
# Checks the deployment files: nginx/nginx.conf with `nginx -t` (Debian's
# nginx), and k8s/moestream.yaml parsed with PyYAML, with the fields that tie
# its parts together compared (selector and labels, the named port, probes on
# /health, the scrape annotations). Installs nginx-light and python3-yaml
# when missing; exits 77 (CTest: skipped) with the reason if it cannot.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
skip() { echo "SKIPPED: $*"; exit 77; }
apt_install() {
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo -n"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"; } >/dev/null 2>&1
}
nginx=$(PATH=$PATH:/usr/sbin command -v nginx || true)
if [[ -z $nginx ]]; then
  apt_install nginx-light || skip "nginx is not installed and could not be (apt-get install nginx-light)"
  nginx=$(PATH=$PATH:/usr/sbin command -v nginx)
fi
python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml ||
  skip "PyYAML is not installed and could not be (apt-get install python3-yaml)"

prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
mkdir -p "$prefix/tmp" "$prefix/logs"
"$nginx" -t -q -p "$prefix/" -e stderr -c "$here/nginx/nginx.conf"
echo "nginx/nginx.conf: nginx -t ok"

python3 - "$here/k8s/moestream.yaml" <<'PY'
import sys, yaml

path = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
def fail(msg):
    sys.exit(f"{path}: {msg}")
kinds = {d.get("kind"): d for d in docs}
for d in docs:
    for key in ("apiVersion", "kind", "metadata", "spec"):
        if key not in d:
            fail(f"a document has no '{key}'")
if set(kinds) != {"Deployment", "Service"}:
    fail(f"expected a Deployment and a Service, found {sorted(kinds)}")
dep, svc = kinds["Deployment"], kinds["Service"]
if dep["apiVersion"] != "apps/v1" or svc["apiVersion"] != "v1":
    fail("apiVersions must be apps/v1 (Deployment) and v1 (Service)")
labels = dep["spec"]["template"]["metadata"]["labels"]
for name, sel in (("Deployment selector", dep["spec"]["selector"]["matchLabels"]),
                  ("Service selector", svc["spec"]["selector"])):
    if any(labels.get(k) != v for k, v in sel.items()):
        fail(f"{name} {sel} does not match the pod labels {labels}")
if not isinstance(dep["spec"].get("replicas"), int) or dep["spec"]["replicas"] < 1:
    fail("replicas must be a positive integer")
(container,) = dep["spec"]["template"]["spec"]["containers"]
args = container["args"]
if args[0] != "serve" or not all(isinstance(a, str) for a in args):
    fail("the container must run `moestream serve` with string arguments")
port = int(args[args.index("--port") + 1])
ports = {p["name"]: p["containerPort"] for p in container["ports"]}
if ports.get("http") != port:
    fail(f"containerPort 'http' {ports.get('http')} is not --port {port}")
for probe in ("readinessProbe", "livenessProbe"):
    get = container[probe]["httpGet"]
    if get["path"] != "/health" or get["port"] not in ("http", port):
        fail(f"{probe} must GET /health on the http port")
ann = dep["spec"]["template"]["metadata"].get("annotations", {})
if ann.get("prometheus.io/path") != "/metrics" or int(ann.get("prometheus.io/port", 0)) != port:
    fail("the pod must be annotated for scraping /metrics on the http port")
(sport,) = svc["spec"]["ports"]
if sport["targetPort"] not in ("http", port):
    fail("the Service must target the http port")
mounts = {m["name"] for m in container.get("volumeMounts", [])}
vols = {v["name"] for v in dep["spec"]["template"]["spec"].get("volumes", [])}
if not mounts <= vols:
    fail(f"volumeMounts {sorted(mounts - vols)} have no volume")
print(f"{path.split('/')[-2]}/{path.split('/')[-1]}: Deployment and Service consistent")
PY

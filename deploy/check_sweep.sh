#!/usr/bin/env bash
# Checks the sharded-sweep deployment files: slurm/sweep.sbatch with `bash -n`
# and its #SBATCH --array line, k8s/sweep-job.yaml parsed with PyYAML and the
# fields that make it an Indexed Job whose pods cover the grid compared
# (completionMode, SHARDS = completions, the shard from
# JOB_COMPLETION_INDEX, one CSV per index, mounts backed by volumes). Given
# the moestream binary ($1), also that every flag both files pass to `sweep`
# is one `moestream sweep --help` lists. Installs python3-yaml when missing;
# exits 77 (CTest: skipped) with the reason if it cannot.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
moestream=${1:-}
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "$*" >&2; exit 1; }
apt_install() {
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo -n"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"; } >/dev/null 2>&1
}

sbatch=$here/slurm/sweep.sbatch
bash -n "$sbatch" || fail "slurm/sweep.sbatch: bash -n failed"
grep -Eq '^#SBATCH --array=[0-9]+-[0-9]+' "$sbatch" || fail "slurm/sweep.sbatch: no '#SBATCH --array=A-B' line"
grep -q -- '--shard "\$part/\$parts"' "$sbatch" || fail "slurm/sweep.sbatch: the sweep is not given --shard \$part/\$parts"
echo "slurm/sweep.sbatch: bash -n ok, array job"

python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml ||
  skip "PyYAML is not installed and could not be (apt-get install python3-yaml)"
flags=$(python3 - "$here/k8s/sweep-job.yaml" <<'PY'
import re, sys, yaml

path = sys.argv[1]
def fail(msg):
    sys.exit(f"{path}: {msg}")
docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
if len(docs) != 1:
    fail(f"expected one document, found {len(docs)}")
job = docs[0]
if job.get("apiVersion") != "batch/v1" or job.get("kind") != "Job":
    fail("must be a batch/v1 Job")
spec = job["spec"]
if spec.get("completionMode") != "Indexed":
    fail("completionMode must be Indexed (each pod gets JOB_COMPLETION_INDEX)")
n = spec.get("completions")
if not isinstance(n, int) or n < 1:
    fail("completions must be a positive integer")
if not isinstance(spec.get("parallelism", n), int) or not 1 <= spec.get("parallelism", n) <= n:
    fail("parallelism must be between 1 and completions")
pod = spec["template"]["spec"]
if pod.get("restartPolicy") not in ("Never", "OnFailure"):
    fail("a Job's pods must have restartPolicy Never or OnFailure")
(container,) = pod["containers"]
env = {e["name"]: e.get("value") for e in container.get("env", [])}
if env.get("SHARDS") != str(n):
    fail(f"env SHARDS {env.get('SHARDS')!r} must equal completions {n}")
cmd = " ".join(container.get("command", []) + container.get("args", []))
if "moestream sweep" not in cmd:
    fail("the container must run `moestream sweep`")
if '--shard "${JOB_COMPLETION_INDEX}/${SHARDS}"' not in cmd:
    fail("the sweep must get --shard \"${JOB_COMPLETION_INDEX}/${SHARDS}\"")
out = re.search(r'-o\s+"?(\S*\$\{JOB_COMPLETION_INDEX\}\S*?)"?(\s|$)', cmd)
if not out:
    fail("each index must write its own CSV (-o ...${JOB_COMPLETION_INDEX}...)")
mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
vols = {v["name"] for v in pod.get("volumes", [])}
if not set(mounts) <= vols:
    fail(f"volumeMounts {sorted(set(mounts) - vols)} have no volume")
if not any(out.group(1).startswith(p.rstrip("/") + "/") for p in mounts.values()):
    fail(f"the CSV {out.group(1)} is not on a mounted volume")
print(" ".join(sorted(set(re.findall(r"(?<!\S)--[a-z][a-z-]*", cmd)))))
PY
)
echo "k8s/sweep-job.yaml: Indexed Job consistent"

if [[ -n $moestream ]]; then
  help=$("$moestream" sweep --help) || fail "$moestream sweep --help failed"
  sflags=$(grep -oE '(^|[[:space:]])--[a-z][a-z-]*' "$sbatch" | grep -vE -- '--(job-name|array|cpus-per-task|mem|time|output|parsable|dependency|wrap|plot)$' || true)
  for f in $flags $sflags; do
    grep -qE -- "(^|[ ,])$f([ ,=]|$)" <<<"$help" || fail "moestream sweep has no flag $f (used by the deploy files)"
  done
  echo "deploy files: every sweep flag they use exists"
fi

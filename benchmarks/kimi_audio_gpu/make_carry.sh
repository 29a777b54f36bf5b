#!/usr/bin/env bash
# Fills the two ignored folders that travel to the GPU machine with `carry` (run HERE, not there):
#
#   .whl/               wheels for the device's Python 3.12 (cp312, manylinux x86_64) of what the official
#                       Kimi-Audio code and kimi-tui's headless core need and the device lacks, or has in
#                       another version (KINDS.md "Python packages already there": its transformers 5.17,
#                       huggingface_hub 1.33 and tokenizers 0.23 are too new for the official code).
#   .testbed_checkout/  a plain copy of the official checkout (349251e + its GLM-4-Voice submodule eb00ce9),
#                       without .git, assets/, test_audios/, demo data or images.
#
# Both are listed in .git/info/exclude (this clone only): they are machine-local build products of this
# test bed, not something every clone must ignore, and nothing in them may ever be committed (third-party
# code and binaries). Usage: bash benchmarks/kimi_audio_gpu/make_carry.sh [CHECKOUT] (default
# /work/upstream/checkout). Needs python3 with pip here, and /work/upstream/venv (torch, to build deepspeed).
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
CHECKOUT=${1:-/work/upstream/checkout}
UPSTREAM_PY=${UPSTREAM_PY:-/work/upstream/venv/bin/python}
cd "$ROOT"

mkdir -p .git/info
touch .git/info/exclude
for line in /.whl/ /.testbed_checkout/ /.testbed/; do
    grep -qxF "$line" .git/info/exclude || echo "$line" >> .git/info/exclude
done

# --- wheels -------------------------------------------------------------------------------------------
# One version of each (two stop the whole install). Versions = the official code's tested environment
# (/work/upstream/venv) where it has the package, else kimi-tui's constraints.txt.
OFFICIAL=(
    transformers==4.49.0          # the official code needs 4.46-4.50 (compute_loss_func; evaluation_strategy)
    tokenizers==0.21.4            # transformers 4.49: tokenizers>=0.21,<0.22
    huggingface_hub==0.29.3       # transformers 4.49: huggingface-hub<1.0
    accelerate==1.4.0             # the device's 1.15 is newer than transformers 4.49's Trainer knows
    peft==0.15.2                  # LoRA; newer peft needs a newer transformers
    hjson==3.1.0                  # deepspeed
    librosa==0.11.0               # audio loading (official datasets, prompt manager, glm4 tokenizer)
    soxr==1.1.0 audioread==3.1.0 pooch==1.9.0 platformdirs==4.14.9 decorator==5.3.1   # librosa's
    soundfile==0.14.0 cffi==2.1.1 pycparser==3.12   # soundfile (also kimi-tui's audio probe); cffi is not on the device
    loguru==0.7.3                 # kimia_infer.api
    pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5   # deepspeed + kimi-tui
)
KIMI_TUI=(
    tomlkit==0.15.2 rapidfuzz==3.14.6 opencc==1.4.2 cn2an==0.5.24 proces==0.1.7
)
mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64)
for spec in "${OFFICIAL[@]}" "${KIMI_TUI[@]}"; do
    name=${spec%%==*}
    norm=$(echo "$name" | tr 'A-Z-' 'a-z_')
    if ls .whl/ 2>/dev/null | tr 'A-Z-' 'a-z_' | grep -q "^${norm}-${spec##*==}-"; then continue; fi
    PIP_CONSTRAINT= python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${PLATFORMS[@]}" -d .whl "$spec"
done

# deepspeed has no wheel on PyPI: build a pure-Python one (no ops compiled: DS_BUILD_OPS=0; the CUDA ops,
# if ever needed, JIT-build on the device) with the official venv's torch, without build isolation.
if ! ls .whl/deepspeed-0.16.9-*.whl >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    DS_BUILD_OPS=0 PIP_CONSTRAINT= "$UPSTREAM_PY" -m pip wheel -q --no-deps --no-build-isolation \
        --no-binary deepspeed -w "$tmp" deepspeed==0.16.9
    cp "$tmp"/deepspeed-0.16.9-*.whl .whl/
    rm -rf "$tmp"
fi
ls .whl/deepspeed-0.16.9-py3-none-any.whl >/dev/null   # a pure wheel, installable on cp312

# Proof the deepspeed wheel imports (with torch, in a throw-away target on the official venv's interpreter).
check=$(mktemp -d)
PIP_CONSTRAINT= "$UPSTREAM_PY" -m pip install -q --no-index --no-deps --target "$check" .whl/deepspeed-0.16.9-*.whl
PYTHONPATH="$check" "$UPSTREAM_PY" -c "import deepspeed, sys; print('deepspeed', deepspeed.__version__, 'imports')" \
    2>&1 | grep -v "^\[" | tail -1
rm -rf "$check"

# --- the checkout copy ---------------------------------------------------------------------------------
HEAD=$(git -C "$CHECKOUT" rev-parse --short=7 HEAD)
GLM=$(git -C "$CHECKOUT/kimia_infer/models/tokenizer/glm4" rev-parse --short=7 HEAD)
[ "$HEAD" = 349251e ] || { echo "checkout is at $HEAD, expected 349251e" >&2; exit 1; }
[ "$GLM" = eb00ce9 ] || { echo "glm4 submodule is at $GLM, expected eb00ce9" >&2; exit 1; }
rm -rf .testbed_checkout
mkdir .testbed_checkout
tar -C "$CHECKOUT" --exclude=.git --exclude=./assets --exclude=./test_audios --exclude=./finetune_codes/demo_data \
    --exclude=./kimia_infer/models/tokenizer/glm4/resources --exclude='__pycache__' --exclude='*.pyc' \
    --exclude='*.png' --exclude='*.jpg' --exclude='*.gif' --exclude='*.wav' --exclude='*.mp3' \
    -cf - . | tar -C .testbed_checkout -xf -
echo "$HEAD glm4=$GLM" > .testbed_checkout/.testbed_commit

# --- sizes ---------------------------------------------------------------------------------------------
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
whl=$(du -sb .whl | cut -f1)
cko=$(du -sb .testbed_checkout | cut -f1)
total=$((tree + whl + cko))
printf 'working tree %.1f MiB + .whl %.1f MiB (%d wheels) + .testbed_checkout %.1f MiB = %.1f MiB (limit 64 MiB)\n' \
    "$(echo "$tree/1048576" | bc -l)" "$(echo "$whl/1048576" | bc -l)" "$(ls .whl | wc -l)" \
    "$(echo "$cko/1048576" | bc -l)" "$(echo "$total/1048576" | bc -l)"
[ "$total" -lt $((64 * 1048576)) ] || { echo "over the 64 MiB carry limit" >&2; exit 1; }

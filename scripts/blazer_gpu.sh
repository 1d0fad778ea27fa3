#!/usr/bin/env bash
# BLAZER's loop on a GPU machine with a 1B-8B base model: teacher plans -> verified SFT data ->
# LoRA fine-tune (the paper's hyper-parameters: rank 64, alpha 16, lr 2e-5, cosine, 5 epochs,
# effective batch 24; bf16 and gradient checkpointing come on by themselves with CUDA) -> Table I
# before and after, on test seeds. Nothing is downloaded: BASE is a local Hugging Face folder.
#
#   BASE=/models/Llama-3.2-1B-Instruct scripts/blazer_gpu.sh runs/blazer-gpu
#
# Optional: TEACHER_URL=http://host:8000/v1 TEACHER_MODEL=llama-70b (an OpenAI-compatible server,
# e.g. vLLM) makes a language model the teacher instead of the scripted oracle; TASKS, N_TRAIN
# (verified plans per task; BLAZER used 2000, and 500 already gave most of the gain), N_TEST.
# Every step is resumable: run the script again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE:?set BASE to a local Hugging Face model folder (1B-8B instruct model)}"
OUT=${1:-runs/blazer-gpu}
TASKS=${TASKS:-put_block,stack_blocks,close_jar,open_bottle,fruit_in_bowl,block_in_basket,cup_on_object,rubbish_in_bin,meat_off_grill}
N_TRAIN=${N_TRAIN:-500}
N_TEST=${N_TEST:-25}
LLM=.venv/bin/llm-trainer
GPU="device=cuda,dtype=bfloat16"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "warning: no nvidia-smi; training runs on CPU"

teacher=(--planner oracle)
if [[ -n "${TEACHER_URL:-}" ]]; then
  teacher=(--planner openai --set "base_url=$TEACHER_URL" --set "model=${TEACHER_MODEL:?set TEACHER_MODEL}" --concurrency 8)
fi
time "$LLM" generate --tasks "$TASKS" --episodes "$N_TRAIN" --split train --runner inprocess --no-cameras \
  --no-record --out "$OUT/teacher" "${teacher[@]}"
"$LLM" export --from "$OUT/teacher" --format sft-jsonl --include-failures --out "$OUT/sft.jsonl"
time "$LLM" finetune --data "$OUT/sft.jsonl" --base "$BASE" --out "$OUT/sft"
# Preference step (beyond the paper): the teacher's verified plans against the base model's failures
# on the same scenes, then DPO on top of the SFT adapter.
time "$LLM" generate --tasks "$TASKS" --episodes "$((N_TRAIN / 5))" --split train --runner inprocess --no-cameras \
  --no-record --out "$OUT/base_train" --planner transformers --set "model=$BASE" --set device=cuda --set dtype=bfloat16
time "$LLM" finetune --method dpo --data "$OUT/teacher" --data "$OUT/base_train" --base "$BASE" \
  --adapter "$OUT/sft" --out "$OUT/dpo" || echo "DPO skipped: no success/failure pairs on the same scenes"
planners=(--planner oracle --planner "base=transformers:model=$BASE,$GPU"
          --planner "sft=transformers:model=$BASE,adapter=$OUT/sft,$GPU")
[[ -f "$OUT/dpo/adapter_config.json" ]] && planners+=(--planner "dpo=transformers:model=$BASE,adapter=$OUT/dpo,$GPU")
time "$LLM" evaluate "${planners[@]}" --tasks "$TASKS" --episodes "$N_TEST" --out "$OUT/eval"
echo "table: $OUT/eval/results.md  chart: $OUT/eval/success.png"

#!/usr/bin/env bash
# On a GPU machine: a dense model split over two GPUs by layer ranges (CUDASplitDecoder) against
# the same model on one GPU — greedy text and speed. With one GPU, SWIFTKT_CUDA_STAND_IN=2 makes
# it stand in for cuda:1 (two pieces on one device: the numbers of a real split, not its speed).
# Usage: scripts/gpu/check_split.sh SWIFTKT_BINARY MODEL LAYERS WORK_DIR OUT_DIR   (LAYERS: the model's layer count)
set -uo pipefail
bin=$1; model=$2; layers=$3; work=$4; out=$5
mkdir -p "$work" "$out"
half=$((layers / 2))
cat > "$work/split2.yaml" <<YAML
- match: {name: "^model\\\\.embed_tokens\$"}
  replace: {kwargs: {device: "cuda:0"}}
- match: {layers: "0-$((half - 1))"}
  replace: {kwargs: {device: "cuda:0"}}
- match: {layers: "$half-$((layers - 1))"}
  replace: {kwargs: {device: "cuda:1"}}
- match: {name: "^(model\\\\.norm|lm_head|model\\\\.rotary_emb)\$"}
  replace: {kwargs: {device: "cuda:1"}}
- match: {class: Model}
  replace: {kwargs: {device: "cuda:0"}}
YAML
n=$(nvidia-smi -L | wc -l)
export SWIFTKT_CUDA_STAND_IN=${SWIFTKT_CUDA_STAND_IN:-2}
name=$(basename "$model" .gguf)
"$bin" inspect -m "$model" --placement --rules "$work/split2.yaml" 2>&1 | grep -A3 "Transfer points" | tee "$out/split-$name.md"
prompt="The capital of France is"
"$bin" run -m "$model" -p "$prompt" -n 64 --temp 0 > "$work/one.txt" 2> "$work/one.log"
"$bin" run -m "$model" -p "$prompt" -n 64 --temp 0 --rules "$work/split2.yaml" > "$work/two.txt" 2> "$work/two.log"
grep -E "cuda:|layers" "$work/two.log" | head -6
if cmp -s "$work/one.txt" "$work/two.txt" && [ -s "$work/one.txt" ]; then
    echo "$name split over 2 GPUs ($n physical): greedy text = one GPU's" | tee -a "$out/split-$name.md"
else
    echo "$name split over 2 GPUs ($n physical): greedy text DIFFERS" | tee -a "$out/split-$name.md"; head -c 400 "$work/one.txt"; echo; head -c 400 "$work/two.txt"; echo; tail -3 "$work/two.log"
fi
for r in "" "$work/split2.yaml"; do
    label=$([ -n "$r" ] && echo "split over cuda:0 + cuda:1 ($n physical)" || echo "one GPU")
    "$bin" bench -m "$model" -p 512 -n 128 -r 3 ${r:+--rules "$r"} 2>/dev/null | grep -E "^\| llama" | sed "s|^|$label: |" | tee -a "$out/split-$name.md"
done

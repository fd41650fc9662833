#!/usr/bin/env bash
# The commands that produce the default multi-dataset model (facekit/assets/model/facekit-multi.*):
# two ways of drawing the datasets compared as heads on frozen features, the winner on the
# validation parts (training/validation.py's score: the datasets' errors averaged) fine-tuned,
# and whichever of the heads and the fine-tuned model scores better on validation is kept,
# then int8 ranges. Resumable: rerun it after an interruption. Run from the repository root:
#   bash training/multi.sh > ~/.cache/facekit/runs/multi.log 2>&1
set -euo pipefail
python=${PYTHON:-.venv/bin/python}
runs=~/.cache/facekit/runs
for recipe in multi_heads multi_heads_natural; do
    [ -f "$runs/$recipe/model.safetensors" ] || "$python" -m facekit.cli train --config "training/$recipe.yaml" --resume
done
best=$("$python" - "$runs" <<'PY'
import json, sys
from pathlib import Path
scores = {name: min(row["val_score"] for row in json.loads((Path(sys.argv[1]) / name / "history.json").read_text()))
          for name in ("multi_heads", "multi_heads_natural")}
print(min(scores, key=scores.get))
print(scores, file=sys.stderr)
PY
)
echo "heads chosen on validation: $best"
"$python" -m facekit.cli train --config training/multi_finetune.yaml --resume \
    --set "init_from=$runs/$best/model.safetensors" --set "datasets=$(grep -o '^  - {.*}' "training/$best.yaml" | sed 's/^  - //' | paste -sd, | sed 's/^/[/; s/$/]/')"
kept=$("$python" - "$runs" "$best" <<'PY'
import json, sys
from pathlib import Path
runs, heads = Path(sys.argv[1]), sys.argv[2]
scores = {name: min(row["val_score"] for row in json.loads((runs / name / "history.json").read_text()))
          for name in (heads, "multi_finetune")}
print(min(scores, key=scores.get))
print(scores, file=sys.stderr)
PY
)
echo "kept on validation: $kept"
mkdir -p facekit/assets/model
cp "$runs/$kept/model.safetensors" facekit/assets/model/facekit-multi.safetensors
cp "$runs/$kept/model.json" facekit/assets/model/facekit-multi.json
"$python" -m facekit.cli quantize --model facekit/assets/model/facekit-multi.safetensors --data ../shared/data/UTKFace.tar.gz

"""Clip-level emotion accuracy on labelled real video, emovid's variants beside the `fer` package, in one run.

    python -m benchmarks.real_video --labels ../devset/labels.csv --peer ../devset/fer_results.json

Each variant runs the real pipeline (emovid.video_eval: detection, tracking, crops, classification, the main face's
mean probabilities per clip) on the clips the selection keeps (default: the rows whose `split` is `dev`; the
reserved test rows only with `--only split=test`). Prints accuracy, per-class recall and per-dataset accuracy for
every variant and peer; `--json` writes them all.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from emovid import EMOTIONS
from emovid.pipeline import AnalysisOptions, load_models
from emovid.video_eval import predict_clips, read_labels, read_peer, score_clips

# (name, model, framing, box_scale): what each step of the accuracy work changed, the first being emovid 0.1.0's crop
VARIANTS = (
    ("box 1.25 (0.1.0 crop)", "best", "box", 1.25),
    ("box 1.0", "best", "box", 1.0),
    ("aligned", "best", "aligned", 1.0),
)
MODEL_VARIANTS = ("scratch", "mobilenetv2", "vgg16", "ensemble")  # each with the default (aligned) framing


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_video", description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, required=True, help="labels CSV (file,emotion,...)")
    parser.add_argument("--only", action="append", default=None, metavar="COLUMN=VALUE",
                        help="row selection (default: split=dev)")
    parser.add_argument("--group-by", default="dataset", help="column for the per-group table")
    parser.add_argument("--peer", type=Path, action="append", default=[], help="peer results JSON (repeatable)")
    parser.add_argument("--models", action="store_true", help="also every shipped model with the default framing")
    parser.add_argument("--json", type=Path, help="write every score here")
    args = parser.parse_args()

    only = dict(item.split("=", 1) for item in (args.only or ["split=dev"]))
    clips = read_labels(args.labels, only)
    group_by = args.group_by if all(args.group_by in c.extra for c in clips) else None
    print(f"{args.labels}: {len(clips)} clips ({', '.join(f'{k}={v}' for k, v in only.items())})")
    variants = list(VARIANTS)
    if args.models:
        variants += [(f"aligned, {m}", m, "aligned", 1.0) for m in MODEL_VARIANTS]
    scores = []
    loaded: dict[str, object] = {}
    for name, model, framing, box_scale in variants:
        options = AnalysisOptions(model=model, framing=framing, box_scale=box_scale)
        if model not in loaded:
            loaded[model] = load_models(options)
        started = time.perf_counter()
        probs = predict_clips(clips, loaded[model], options)
        score = score_clips(name, clips, probs, group_by)
        scores.append(score)
        elapsed = time.perf_counter() - started
        print(f"  {name}: {score.accuracy:.1%} ({score.correct}/{score.n_clips}) in {elapsed:.0f} s", flush=True)
    for path in args.peer:
        scores.append(score_clips(path.stem, clips, read_peer(path), group_by))

    width = max(len(s.name) for s in scores)
    print(f"\n{'variant':<{width}}  accuracy         no face  " + "  ".join(f"{e[:5]:>5}" for e in EMOTIONS))
    for s in scores:
        recall = ["  -  " if r is None else f"{r:5.0%}" for r in s.recall().values()]
        print(f"{s.name:<{width}}  {s.accuracy:6.1%} ({s.correct:>3}/{s.n_clips:<3})  {s.no_face:>7}  "
              + "  ".join(recall))
    if group_by is not None:
        print(f"\nby {group_by}:")
        for value in scores[0].groups:
            cells = [f"{s.groups[value][0]}/{s.groups[value][1]}" for s in scores]
            print(f"  {value or '(empty)':<12} " + "  ".join(f"{c:>8}" for c in cells))
    if args.json is not None:
        args.json.write_text(json.dumps({"labels": str(args.labels), "only": only, "clips": len(clips),
                                         "scores": [s.to_dict() for s in scores]}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

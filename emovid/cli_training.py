"""The `train`, `export-onnx` and `evaluate` commands: thin wrappers over the top-level `training` package.

Imports of `training` (and TensorFlow) happen inside the command bodies, so `emovid --help` stays fast and
the video commands work without the training extra. `evaluate` runs on ONNX Runtime only.
Exit codes: 0 ok, 1 a TrainingError (one line), 2 a usage error or a missing training extra.
"""

from __future__ import annotations

import importlib.util
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from emovid.registry import (
    ENSEMBLE,
    INT8_SUFFIX,
    SHIPPED,
    is_shipped_name,
    shipped_models,
    shipped_models_dir,
    shipped_path,
)

INSTALL_HINT = "pip install 'emovid[train]'"


class Arch(StrEnum):
    scratch = "scratch"
    mobilenetv2 = "mobilenetv2"
    vgg16 = "vgg16"


class Labels(StrEnum):
    fer2013 = "fer2013"
    ferplus_majority = "ferplus-majority"
    ferplus_soft = "ferplus-soft"


class Augment(StrEnum):
    standard = "standard"
    video = "video"


class Precision(StrEnum):
    mixed_bfloat16 = "mixed_bfloat16"
    float32 = "float32"


def _echo_error(message: str) -> None:
    typer.echo(" ".join(str(message).split()), err=True)  # always one line


def _missing_extra(command: str, module: str) -> typer.Exit:
    _echo_error(f"emovid {command} needs the training extra ({module} is not installed): {INSTALL_HINT}")
    return typer.Exit(2)


def _require_training_extra(command: str, modules: tuple[str, ...]) -> None:
    """Check (without importing: TensorFlow is slow to start and chatty) that the training stack is installed;
    when it is not, print the install command (one line) and exit 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    for name in ("training", *modules):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise _missing_extra(command, name)


def _fail(exc: Exception) -> typer.Exit:
    _echo_error(f"error: {exc}")
    return typer.Exit(1)


def train_command(
    arch: Annotated[Arch, typer.Option(help="Architecture to train.")],
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="FER2013-format file (.csv or .csv.gz).")],
    out: Annotated[Path, typer.Option(file_okay=False, help="Run folder (checkpoints, state.json, history).")],
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default 40).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Batch size (default 64).")] = None,
    learning_rate: Annotated[float | None, typer.Option(
        min=1e-7, help="Peak learning rate of the warm-up + cosine schedule (default 1e-3).")] = None,
    upsample: Annotated[int | None, typer.Option(
        min=1, max=4, help="mobilenetv2: enlarge the 48x48 input this many times inside the graph (default 2).")]
    = None,
    weights: Annotated[str | None, typer.Option(
        help="Backbone start for mobilenetv2/vgg16: imagenet, none or a local Keras .h5 file.")] = None,
    init_from: Annotated[Path | None, typer.Option(
        exists=True, help="Warm start: load all weights from a previous run (its folder or best.weights.h5) "
        "of the same architecture, then train a fresh schedule.")] = None,
    labels: Annotated[Labels, typer.Option(help="Training targets.")] = Labels.fer2013,
    ferplus: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="FER+ votes (fer2013new.csv), for --labels ferplus-*.")] = None,
    ferplus_index: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="Row index joining FER+ votes to --data (orig_row column).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out after an interruption.")] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 1234).")] = None,
    precision: Annotated[Precision | None, typer.Option(
        help="Keras precision policy (default mixed_bfloat16).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N training images (smoke runs).")]
    = None,
    augment: Annotated[Augment | None, typer.Option(
        help="standard (flips, small rotations, shifts, zoom, contrast, brightness) or video (also blur, noise "
             "and occluding patches, as real footage shows faces; default standard).")] = None,
) -> None:
    """Train one emotion model on a FER2013-format file (needs the training extra)."""
    if labels is not Labels.fer2013 and ferplus is None:
        raise typer.BadParameter(f"--labels {labels.value} needs the FER+ votes file", param_hint="--ferplus")
    if weights is not None and arch is Arch.scratch:
        raise typer.BadParameter("applies to mobilenetv2 and vgg16 only", param_hint="--weights")
    if upsample is not None and arch is not Arch.mobilenetv2:
        raise typer.BadParameter("applies to mobilenetv2 only", param_hint="--upsample")
    _require_training_extra("train", ("tensorflow", "keras"))
    from training import TrainingError
    from training.data import load_fer2013
    from training.train import TrainConfig, train

    options = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
               "limit": limit, "precision": precision.value if precision else None,
               "augment": augment.value if augment else None,
               "model_kwargs": {"upsample": upsample} if upsample is not None else None}
    config = TrainConfig(
        arch=arch.value, data=str(data), out_dir=str(out), labels=labels.value, weights=weights,
        init_from=str(init_from) if init_from else None,
        ferplus=str(ferplus) if ferplus else None, ferplus_index=str(ferplus_index) if ferplus_index else None,
        **{k: v for k, v in options.items() if v is not None},
    )
    try:
        fer = load_fer2013(data)  # data errors are reported before TensorFlow starts
        train(config, resume=resume, log=typer.echo, data=fer)
    except TrainingError as exc:
        raise _fail(exc) from None
    except ImportError as exc:  # installed but broken, or a partial install
        raise _missing_extra("train", exc.name or str(exc)) from None
    except KeyboardInterrupt:
        _echo_error(f"interrupted; continue with: emovid train --arch {arch.value} --data {data} --out {out} --resume")
        raise typer.Exit(130) from None


def export_command(
    runs: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Folder of training runs (RUNS/<arch>/).")],
    data: Annotated[Path, typer.Option(
        exists=True, dir_okay=False, help="FER2013-format file: parity images and PublicTest/PrivateTest accuracy.")],
    out: Annotated[Path, typer.Option(file_okay=False, help="Output folder, e.g. emovid/models/.")],
    model: Annotated[list[Arch] | None, typer.Option(help="Model(s) to export (repeatable; default all three).")]
    = None,
    tta_flip: Annotated[bool, typer.Option(
        "--tta-flip/--no-tta-flip", help="Average each face with its mirror image inside the graph.")] = False,
    opset: Annotated[int, typer.Option(min=13, max=18, help="ONNX opset.")] = 17,
) -> None:
    """Export trained runs to emovid ONNX models, checked against Keras on real images (needs the training extra)."""
    _require_training_extra("export-onnx", ("tensorflow", "keras", "tf2onnx", "onnx"))
    from training import TrainingError
    from training.data import load_fer2013
    from training.export import export_run

    archs = [m.value for m in (model or list(Arch))]
    archs = list(dict.fromkeys(archs))
    try:
        for arch in archs:  # every run must be there before anything is written
            for needed in ("state.json", "best.weights.h5"):
                if not (runs / arch / needed).is_file():
                    raise TrainingError(f"{runs / arch / needed}: not found; train {arch} first (emovid train "
                                        f"--arch {arch} --out {runs / arch})")
        fer = load_fer2013(data)
        for arch in archs:
            export_run(runs / arch, out / f"{arch}.onnx", data=fer, tta_flip=tta_flip, arch=arch, opset=opset,
                       log=typer.echo)
    except TrainingError as exc:
        raise _fail(exc) from None
    except ImportError as exc:
        raise _missing_extra("export-onnx", exc.name or str(exc)) from None


def resolve_models(names: list[str] | None, models_dir: Path | None = None) -> tuple[list[tuple[str, Path]], bool]:
    """`--model` values -> ([(name, onnx path)], ensemble?). Default: every shipped model plus the ensemble.

    `ensemble` alone (or with a single model) means the ensemble of all shipped models.
    """
    models_dir = models_dir or shipped_models_dir()
    shipped = list(shipped_models(models_dir).items())
    if not names:
        if not shipped:
            raise typer.BadParameter(f"no shipped models in {models_dir}; pass --model PATH.onnx", param_hint="--model")
        return shipped, len(shipped) >= 2
    chosen: list[tuple[str, Path]] = []
    ensemble = False
    for name in names:
        if name == ENSEMBLE:
            ensemble = True
        elif is_shipped_name(name):
            path = shipped_path(name, models_dir)
            if not path.is_file():
                raise typer.BadParameter(f"{name} is not shipped ({path} is missing)", param_hint="--model")
            chosen.append((name, path))
        elif name.endswith(".onnx"):
            chosen.append((Path(name).stem, Path(name)))
        else:
            raise typer.BadParameter(f"{name!r}: expected {', '.join(SHIPPED)}, <name>{INT8_SUFFIX}, {ENSEMBLE} or a "
                                     "PATH.onnx",
                                     param_hint="--model")
    seen: dict[str, int] = {}
    unique = []
    for name, path in chosen:  # the same file twice counts once; two files with one stem keep their paths as names
        if any(p == path for _, p in unique):
            continue
        seen[name] = seen.get(name, 0) + 1
        unique.append((name if seen[name] == 1 else str(path), path))
    if ensemble and len(unique) < 2:
        for item in shipped:
            if all(p != item[1] for _, p in unique):
                unique.append(item)
        if len(unique) < 2:
            raise typer.BadParameter("the ensemble needs at least two models", param_hint="--model")
    return unique, ensemble


def _print_table(evaluation) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{evaluation.split} of {Path(evaluation.data).name}: {evaluation.n_images} images",
                  title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1),
                  collapse_padding=True)
    table.add_column("model", no_wrap=True)
    table.add_column("accuracy", justify="right")
    for label in evaluation.labels:
        table.add_column(label, justify="right")
    notes = ["per-class columns: recall (share of each true class predicted correctly)"]
    for score in evaluation.models:
        recalls = [("-" if r is None else f"{r:.0%}") for r in score.per_class_recall.values()]
        table.add_row(score.name, f"{score.accuracy:.2%}", *recalls)
        if score.members:
            notes.append(f"{score.name}: mean of the probabilities of {', '.join(score.members)}")
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)


def evaluate_command(
    data: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="FER2013-format file (.csv or .csv.gz): score the models on its images.")]
    = None,
    videos: Annotated[Path | None, typer.Option(
        "--videos", exists=True, dir_okay=False, metavar="LABELS.csv",
        help="Labelled clips (columns file,emotion[,start_s,end_s,...]): run the video pipeline on each clip and "
             "score the emotion of its main face.")] = None,
    split: Annotated[str, typer.Option(help="With --data: Training, PublicTest or PrivateTest.")] = "PrivateTest",
    model: Annotated[list[str] | None, typer.Option(
        help="scratch, mobilenetv2, vgg16, scratch-int8, ensemble or PATH.onnx (repeatable; default all shipped "
             "float models + ensemble; with --videos also best, the default there).")]
    = None,
    peer: Annotated[list[Path] | None, typer.Option(
        exists=True, dir_okay=False, metavar="JSON",
        help="With --videos: a peer's clip probabilities to score beside emovid's (JSON {clip: {\"probs\": [7]}}, "
             "e.g. from benchmarks/peer_clips.py; repeatable).")] = None,
    only: Annotated[list[str] | None, typer.Option(
        metavar="COLUMN=VALUE", help="With --videos: only the rows where COLUMN equals VALUE (repeatable).")] = None,
    group_by: Annotated[str | None, typer.Option(
        metavar="COLUMN", help="With --videos: also report accuracy per value of COLUMN (e.g. dataset).")] = None,
    framing: Annotated[str, typer.Option(help="With --videos: face framing, aligned or box.")] = "aligned",
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON instead of a table.")] = False,
    confusion_png: Annotated[Path | None, typer.Option(help="Also write the confusion matrices to this PNG.")] = None,
) -> None:
    """Accuracy, per-class recall and confusion matrices of the emotion models: on a FER2013 split (--data) or on
    labelled video clips through the whole pipeline (--videos).

    Examples:
      emovid evaluate --data fer2013.csv.gz
      emovid evaluate --videos clips/labels.csv --group-by dataset --model best --model ensemble
    """
    if (data is None) == (videos is None):
        raise typer.BadParameter("give either --data FILE (FER2013 images) or --videos LABELS.csv (clips)",
                                 param_hint="--data / --videos")
    if videos is not None:
        _evaluate_videos(videos, model, peer or [], only or [], group_by, framing, json_output)
        return
    if split not in ("Training", "PublicTest", "PrivateTest"):
        raise typer.BadParameter("expected Training, PublicTest or PrivateTest", param_hint="--split")
    models, ensemble = resolve_models(model)
    if confusion_png is not None:
        _require_training_extra("evaluate --confusion-png", ("matplotlib",))
    from training import TrainingError
    from training.evaluate import evaluate, save_confusion_png

    try:
        evaluation = evaluate(models, data, split=split, ensemble=ensemble)
        if confusion_png is not None:
            save_confusion_png(evaluation, confusion_png)
    except (TrainingError, OSError) as exc:
        raise _fail(exc) from None
    if json_output:
        typer.echo(evaluation.to_json())
    else:
        _print_table(evaluation)
    if confusion_png is not None:
        typer.echo(f"wrote {confusion_png}", err=json_output)


def _evaluate_videos(labels: Path, models: list[str] | None, peers: list[Path], only: list[str],
                     group_by: str | None, framing: str, json_output: bool) -> None:
    import json

    from emovid.errors import EmovidError
    from emovid.pipeline import AnalysisOptions, load_models
    from emovid.video_eval import predict_clips, read_labels, read_peer, score_clips

    selection = {}
    for item in only:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: expected COLUMN=VALUE", param_hint="--only")
        selection[key] = value
    if framing not in ("aligned", "box"):
        raise typer.BadParameter(f"{framing!r}: expected aligned or box", param_hint="--framing")
    try:
        clips = read_labels(labels, selection)
        if group_by is not None and any(group_by not in c.extra for c in clips):
            raise typer.BadParameter(f"{labels} has no column {group_by!r}", param_hint="--group-by")
        scores = []
        for name in models or ["best"]:
            options = AnalysisOptions(model=name, framing=framing)
            loaded = load_models(options)
            probs = predict_clips(clips, loaded, options)
            scores.append(score_clips(loaded.classifier.name, clips, probs, group_by))
        for path in peers:
            scores.append(score_clips(path.stem, clips, read_peer(path), group_by))
    except EmovidError as exc:
        raise _fail(exc) from None
    if json_output:
        typer.echo(json.dumps({"labels": str(labels), "clips": len(clips), "models": [s.to_dict() for s in scores]},
                              indent=1))
        return
    _print_video_table(labels, clips, scores, group_by)


def _print_video_table(labels: Path, clips, scores, group_by: str | None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from emovid import EMOTIONS

    console = Console()
    table = Table(title=f"{labels.name}: {len(clips)} labelled clips (clip-level accuracy, main face)",
                  title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1),
                  collapse_padding=True)
    table.add_column("model", no_wrap=True)
    table.add_column("accuracy", justify="right")
    table.add_column("no face", justify="right")
    for label in EMOTIONS:
        table.add_column(label, justify="right")
    for score in scores:
        recalls = [("-" if r is None else f"{r:.0%}") for r in score.recall().values()]
        table.add_row(score.name, f"{score.accuracy:.1%} ({score.correct}/{score.n_clips})", str(score.no_face),
                      *recalls)
    console.print(table)
    console.print("per-class columns: recall (share of each true class predicted correctly)", highlight=False)
    if group_by is not None:
        groups = Table(title=f"accuracy by {group_by}", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
        groups.add_column(group_by)
        for score in scores:
            groups.add_column(score.name, justify="right")
        for value in scores[0].groups:
            groups.add_row(value or "(empty)", *(f"{s.groups[value][0]}/{s.groups[value][1]}" for s in scores))
        console.print(groups)
    for score in scores:
        matrix = Table(title=f"{score.name}: confusion (rows: true, columns: predicted)", title_justify="left",
                       box=box.SIMPLE_HEAD, show_edge=False)
        matrix.add_column("")
        for label in EMOTIONS:
            matrix.add_column(label[:4], justify="right")
        for i, label in enumerate(EMOTIONS):
            matrix.add_row(label, *(str(v) for v in score.confusion[i]))
        console.print(matrix)


def register(app: typer.Typer) -> None:
    """Add `train`, `export-onnx` and `evaluate` to the emovid Typer app."""
    app.command("train")(train_command)
    app.command("export-onnx")(export_command)
    app.command("evaluate")(evaluate_command)

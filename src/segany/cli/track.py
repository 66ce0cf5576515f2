"""`segany track INPUT --prompts prompts.json --out OUT`: track prompted objects through every
frame of a video or every slice of a volume and write one label PNG per frame (or DAVIS PNGs,
YouTube-VIS JSON, COCO per frame; volumes also a label volume).

Every check that needs no model (prompts, options, the input, the output folder's journal)
runs before the model is built. Rerunning an interrupted command resumes it
(`segany.cli.track_passes`); another command into the same OUT is refused unless --overwrite.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segany.cli.errors import UsageError
from segany.cli.model_options import add_model_arguments, load_model, resolve_model
from segany.cli.parsing import BOX_FORM, POINT_FORM, parse_box, parse_point
from segany.cli.track_passes import done_prefix, plan_passes, run_pass
from segany.errors import PromptError
from segany.formats.sequence_outputs import (
    FORMATS,
    PNG_FORMATS,
    SequenceOutputs,
    check_format,
    planned_outputs,
)
from segany.formats.track_journal import TrackJournal
from segany.formats.track_prompts import (
    MAX_PNG_OBJECT_ID,
    TrackPrompts,
    check_object_id,
    check_prompts_fit,
    read_track_prompts,
)
from segany.registry import ModelSpec
from segany.sequences.base import FrameSequence
from segany.track.base import ObjectPrompt


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="track prompted objects through a video or a volume",
        description="Track the objects prompted on any frames of INPUT (a video file, a folder "
        "of frames, a multi-page TIFF, a NIfTI volume or a DICOM series folder) forward and "
        "backward through every frame, and write OUT/<frame>.png per frame (pixel = object "
        "id, 0 background). Rerun the same command to resume an interrupted run.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="video, frames folder, volume")
    parser.add_argument(
        "--prompts",
        type=Path,
        metavar="PROMPTS.json",
        help='[{"frame": 0, "object": 1, "points": [[x, y, label], ...], "box": [x0, y0, x1, '
        'y1]}, ...] (points or box may be left out, not both; "category": NAME optional)',
    )
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help="output folder")
    add_model_arguments(parser)
    parser.add_argument(
        "--format",
        default="png",
        choices=FORMATS,
        help="png (default): OUT/<frame>.png, 8-bit object ids; davis: the same with DAVIS's "
        "palette; ytvis: OUT/<name>.json in YouTube-VIS layout; coco: OUT/<name>.json, COCO "
        "per frame",
    )
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="track backward only (from --start, or from the latest prompted frame)",
    )
    parser.add_argument(
        "--start",
        type=int,
        metavar="N",
        help="track from frame N in one direction (forward, or backward with --reverse); "
        "default: forward and backward from each object's prompts",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        metavar="K",
        help="track at most K frames in each direction (the start included); rerunning "
        "without it later resumes to the end",
    )
    parser.add_argument("--axis", type=int, metavar="A", help="volumes: the slicing axis")
    parser.add_argument(
        "--window",
        metavar="C,W|PRESET",
        help="volumes: intensity window CENTER,WIDTH or ct-soft, ct-lung, ct-bone, ct-brain, "
        "mr, auto (default: auto)",
    )
    parser.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="X,Y[,LABEL]",
        help=f"one object's point prompt on --frame, {POINT_FORM}; repeatable",
    )
    parser.add_argument("--box", action="append", default=[], help=f"its box, {BOX_FORM}")
    parser.add_argument("--frame", type=int, default=0, metavar="N", help="--point/--box frame")
    parser.add_argument("--object", type=int, default=1, metavar="ID", help="--point/--box id")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of another command in OUT (or write into a non-empty OUT)",
    )
    parser.set_defaults(run=run)


def prompts_from_options(
    points: list[str], boxes: list[str], frame: int, object_id: int
) -> TrackPrompts:
    """`--point X,Y[,L]` (repeatable) and at most one `--box` on `--frame N` for `--object ID`
    -> `TrackPrompts` with one prompt (xy pixels of the frame)."""
    if len(boxes) > 1:
        raise PromptError("--box is one object's box: give one (several objects: --prompts)")
    if frame < 0:
        raise PromptError(f"--frame must be >= 0, got {frame}")
    check_object_id(object_id, "--object")
    import numpy as np

    coords = np.array([parse_point(p) for p in points], dtype=np.float64) if points else None
    box = np.array(parse_box(boxes[0]), dtype=np.float64) if boxes else None  # (4,)
    if box is not None and (box[2] <= box[0] or box[3] <= box[1]):
        raise PromptError(f"--box {boxes[0]!r} is empty: expected X1 > X0 and Y1 > Y0")
    return TrackPrompts([ObjectPrompt(frame, object_id, coords, box)])


def read_prompts(args: argparse.Namespace) -> TrackPrompts:
    """The prompts of --prompts or of --point/--box (exactly one of the two ways)."""
    inline = bool(args.point or args.box)
    if args.prompts is not None and inline:
        raise UsageError("give either --prompts PROMPTS.json or --point/--box, not both")
    if args.prompts is not None:
        return read_track_prompts(args.prompts)
    if not inline:
        raise UsageError(
            "give the prompts: --prompts PROMPTS.json, or --point X,Y[,LABEL] and/or "
            "--box X0,Y0,X1,Y1 on --frame N for one object"
        )
    return prompts_from_options(args.point, args.box, args.frame, args.object)


def check_options(args: argparse.Namespace) -> None:
    check_format(args.format)
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.start is not None and args.start < 0:
        raise UsageError(f"--start must be >= 0, got {args.start}")
    if not args.input.exists():
        raise UsageError(f"INPUT {args.input} not found")
    if args.out.resolve() == args.input.resolve():
        raise UsageError(f"--out {args.out} is the input itself; give another folder")


def sequence_name(path: Path) -> str:
    """The input's name without its suffixes ("scan.nii.gz" -> "scan", "frames/" -> "frames")."""
    name = path.resolve().name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem if path.is_file() else name


def file_namer(sequence: FrameSequence, name: str, fmt: str) -> Callable[[int], str]:
    """frame -> its file name in the JSON outputs: the frame file's own name for a folder of
    frames, else "<stem>.jpg"; YouTube-VIS prefixes the video's name ("clip/00000.jpg")."""
    paths = getattr(sequence, "paths", None)

    def file_name(frame: int) -> str:
        own = paths[frame].name if paths is not None else f"{sequence.name(frame)}.jpg"
        return f"{name}/{own}" if fmt == "ytvis" else own

    return file_name


def run(args: argparse.Namespace) -> int:
    from segany.sequences import open_sequence

    prompts = read_prompts(args)
    check_options(args)
    spec, checkpoint = resolve_model(args)
    with open_sequence(args.input, axis=args.axis, window=args.window) as sequence:
        length = len(sequence)
        needs_byte_ids = args.format in PNG_FORMATS or sequence.kind == "volume"
        bound = MAX_PNG_OBJECT_ID if needs_byte_ids else None
        check_prompts_fit(prompts, length, sequence.width, sequence.height, bound)
        if args.start is not None and args.start >= length:
            raise UsageError(f"--start {args.start} is past the end ({length} frames)")
        name = sequence_name(args.input)
        params = {
            "input": str(args.input.resolve()),
            "frames": length,
            "height": sequence.height,
            "width": sequence.width,
            "model": spec.name,
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "edge_refinement": args.edge_refinement,
            "prompts": prompts.digest(),  # sha256 of the canonical prompts
            "format": args.format,
            "reverse": args.reverse,
            "start": args.start,
            "axis": args.axis,
            "window": args.window,
        }
        outputs_list = planned_outputs(args.format, name, sequence.volume)
        objects = {o: prompts.category(o) for o in prompts.object_ids}
        try:
            journal = TrackJournal.open(args.out, params, outputs_list, args.overwrite)
            try:
                outputs = SequenceOutputs(
                    journal,
                    args.format,
                    (sequence.height, sequence.width),
                    length,
                    objects,
                    file_namer(sequence, name, args.format),
                    name,
                    sequence.volume,
                )
                report = track(args, spec, checkpoint, sequence, prompts, outputs)
            finally:
                journal.close()
        except OSError as e:  # OUT unwritable, the disk full, ...: what was written stays
            raise UsageError(
                f"cannot write the results to {args.out}: {e.strerror or e}"
                f"{f' ({e.filename})' if e.filename else ''}; rerun to resume once fixed"
            ) from None
    print(summary(args, report, length, len(objects)))
    return 0


def track(
    args: argparse.Namespace,
    spec: ModelSpec,
    checkpoint: Path | None,
    sequence: FrameSequence,
    prompts: TrackPrompts,
    outputs: SequenceOutputs,
) -> dict[str, Any]:
    """Run the planned passes the journal lacks (the model is built only if some are), then
    assemble the outputs; returns the numbers the summary prints."""
    from tqdm import tqdm

    from segany.devices import resolve_device
    from segany.track import build_tracker

    passes = plan_passes(len(sequence), prompts.prompts, args.start, args.reverse, args.max_frames)
    todo = sum(len(p.frames) - done_prefix(p, outputs.journal) for p in passes)
    resumed = len(outputs.journal.done_frames())
    written, seconds = 0, 0.0
    if todo:
        model = load_model(spec, checkpoint, resolve_device(args.device), args.edge_refinement)
        tracker = build_tracker(model)
        start = time.perf_counter()
        with tqdm(total=todo, unit="frame", desc="track", file=sys.stderr) as bar:
            for track_pass in passes:
                written += run_pass(
                    track_pass, tracker, sequence, prompts.prompts, outputs, lambda _: bar.update()
                )
        seconds = time.perf_counter() - start
    files = outputs.finish()
    done = len(outputs.journal.done_frames())
    return {
        "written": written,
        "resumed": resumed,
        "seconds": seconds,
        "files": files,
        "done": done,
    }


def summary(args: argparse.Namespace, report: dict[str, Any], length: int, objects: int) -> str:
    written, seconds = report["written"], report["seconds"]
    rate = f", {written / seconds:.1f} frames/s" if written and seconds > 0 else ""
    lines = [
        f"{args.input}: {objects} object{'s' if objects != 1 else ''} tracked through "
        f"{written} frame{'s' if written != 1 else ''}{rate}; {report['done']} of {length} "
        "frames have masks"
    ]
    if report["resumed"]:
        left = "resumed" if written else "nothing left to track"
        lines.append(f"{left}: {report['resumed']} frames were written by an earlier run")
    where = ", ".join(str(p) for p in report["files"])
    lines.append(f"{args.format} output written to {where}")
    return "\n".join(lines)

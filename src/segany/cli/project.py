"""`segany import DIR` and `segany export --format F --out PATH`: a project's images in, its
annotations out as a training set (`segany train`), without a running server."""

from __future__ import annotations

import argparse
from pathlib import Path

from segany.cli.serve import add_project_arguments, import_server


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    importer = subparsers.add_parser(
        "import",
        help="add a folder of images to an annotation project",
        description="Add every image under FOLDER (searched recursively; the files stay where "
        "they are) to the project of `segany serve --data DIR`.",
    )
    importer.add_argument("folder", type=Path, metavar="FOLDER")
    add_project_arguments(importer)
    importer.set_defaults(run=run_import)

    exporter = subparsers.add_parser(
        "export",
        help="write a project's annotations as a training set",
        description="Write the accepted annotations of the project as COCO instances (RLE or "
        "polygons), SA-1B JSON per image or PNG masks per image, with manifest.json, so "
        "`--data coco:OUT/annotations.json` or `--data sa1b:OUT` trains on them.",
    )
    exporter.add_argument(
        "--format", choices=("coco", "coco-polygons", "sa1b", "png"), default="coco"
    )
    exporter.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    add_project_arguments(exporter)
    exporter.set_defaults(run=run_export)


def _project(args: argparse.Namespace, roots: tuple[Path, ...] = ()):
    import_server()
    from segany.project.config import ProjectConfig
    from segany.project.workspace import Project

    return Project.open(ProjectConfig(data_dir=args.data, db_url=args.db, import_roots=roots))


def run_import(args: argparse.Namespace) -> int:
    project = _project(args, roots=(args.folder,))
    try:
        summary = project.import_folder(str(args.folder))
    finally:
        project.close()
    for error in summary.errors:
        print(f"warning: skipped {error}")
    print(
        f"import: {len(summary.added)} added, {summary.skipped} already in the project, "
        f"{len(summary.errors)} unreadable; project {args.data}"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from segany.project.export import export_project
    from segany.project.storage import repository

    if args.out.exists() and not args.out.is_dir():
        from segany.cli.errors import UsageError

        raise UsageError(f"--out {args.out} is a file; give a folder")
    project = _project(args)
    try:
        with project.db.session() as session:
            categories = repository.list_categories(session)
            main = export_project(
                repository.iter_project(session), categories, args.out, args.format
            )
    finally:
        project.close()
    print(f"export: {args.format} written to {main}")
    return 0

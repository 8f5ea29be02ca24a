"""What one photo means in a batch: the jobs the batch runner (``matting.pipeline.runner``) runs. No
Airflow import.

A job turns photos into outputs and says, per photo, how it went (an ``ImageResult``: ok, a content
error that is the photo's fault, or a retryable infrastructure error). It writes through ``Outputs``,
which the runner gives it: the destination folder and the names planned for the run. Everything else
(in-task rounds, the breaker, records, moving or keeping originals, the manifest, progress and logs)
is the runner's, the same for every job, in Airflow and in the CLI alike.

- ``MattingJob``: background removal with one engine and output options; the engine's pipeline reads,
  infers and writes in overlap (``Engine.run_batch``). The result cache wraps it
  (``matting.pipeline.reuse.CachingJob``).
- ``IdPhotoJob``: a standard ID photo per portrait (``matting.idphoto``), with its report, an optional
  print sheet, and refusals or held photos under ``review/``.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

from matting import layout

if TYPE_CHECKING:
    from matting.engine import Engine, ImageResult, OutputOptions
    from matting.idphoto.compose import IdPhotoOptions
    from matting.storage import FileInfo, Storage

log = logging.getLogger("matting.pipeline.jobs")

Shortcut = Callable[[str, bytes], "ImageResult | None"]
"""``shortcut(name, data)``: called with a photo's bytes as soon as they are read; an answer is the
photo's result (the result cache's copy), None to process it."""


@dataclass(frozen=True)
class Photo:
    info: FileInfo
    load: Callable[[], bytes]  # the detected version's bytes (the runner keeps them for the record)

    @property
    def name(self) -> str:
        return self.info.path


@dataclass
class Done:
    """One photo's outcome: its result; for jobs that write one, its report (the manifest lists reports
    where a job gives them, else the runner's records); and the files still to write (relative to the
    outputs' folder), which the runner writes once it has settled that the photo is to be recorded."""

    result: ImageResult
    report: dict | None = None
    files: dict[str, bytes] = field(default_factory=dict)


class Outputs:
    """Where a job writes: ``dest`` under ``folder``, one planned name per photo (``names``)."""

    def __init__(self, dest: Storage, folder: str, names: dict[str, str]) -> None:
        self.dest, self.folder, self.names = dest, folder.strip("/"), names

    def path(self, rel: str) -> str:
        """``rel`` (relative to the folder) as a path in ``dest``."""
        return posixpath.join(self.folder, rel) if self.folder else rel

    def output(self, source: str) -> str:
        """The photo's planned output, as a path in ``dest``."""
        return self.path(self.names[source])

    def write(self, rel: str, data: bytes) -> str:
        """Write ``rel`` (relative to the folder) atomically; returns its path in ``dest``."""
        path = self.path(rel)
        self.dest.write(path, data)
        return path

    def delete(self, rel: str) -> None:
        self.dest.delete(self.path(rel))


class Job(Protocol):
    kind: str
    noun: str  # what the logs count: "file(s)", "portrait(s)"
    extension: str  # of the planned output names
    deepest: str  # the deepest folder (under the outputs' folder) a photo's files may go: names leave room for it
    cacheable: bool  # the result cache may answer for a photo (``result_key``)

    def describe(self) -> dict:
        """What ran, for the manifest's ``job``."""
        ...

    def headline(self) -> str:
        """The settings in one line, for the batch's first log line."""
        ...

    def run(self, photos: list[Photo], outputs: Outputs, shortcut: Shortcut | None = None) -> Iterator[Done]:
        """One ``Done`` per photo, in order; the caller may stop reading (``close``) at any time."""
        ...

    def refused(self, name: str, exc: Exception, outputs: Outputs) -> Done:
        """A photo refused (``FileTooLarge`` before it is read, a name the destination cannot hold), as
        this job reports refusals."""
        ...


class MattingJob:
    """Background removal with one engine and output options."""

    kind = "matting"
    noun = "file(s)"
    deepest = ""
    cacheable = True

    def __init__(self, engine: Engine, out: OutputOptions, prefetch: int = 1) -> None:
        self.engine, self.out, self.prefetch = engine, out, prefetch

    @property
    def extension(self) -> str:
        return self.out.extension

    def result_key(self, input_sha256: str) -> str:
        """The result cache's key for an input of these bytes under this job's settings."""
        from matting.pipeline.reuse import result_key

        return result_key(input_sha256, self.engine.model_sha256, self.engine.scenario, self.out)

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "model": self.engine.model_label,
            "model_sha256": self.engine.model_sha256,
            "providers": self.engine.providers,
            "scenario": self.engine.scenario.name,
            "output": asdict(self.out),
        }

    def headline(self) -> str:
        engine = self.engine
        return (
            f"model={engine.model_label} providers={','.join(engine.providers)} scenario={engine.scenario.name} "
            f"format={self.out.format}"
        )

    def run(self, photos: list[Photo], outputs: Outputs, shortcut: Shortcut | None = None) -> Iterator[Done]:
        def sink(name: str, data: bytes, _out) -> str:
            return outputs.write(outputs.names[name], data)  # this source's own name in the run: a retry rewrites it

        results = self.engine.run_batch(
            [(p.name, p.load) for p in photos], self.out, sink=sink, prefetch=self.prefetch, shortcut=shortcut
        )
        try:
            for result in results:
                yield Done(result)
        finally:
            results.close()  # the caller stopped: start no queued read

    def refused(self, name: str, exc: Exception, outputs: Outputs) -> Done:
        from matting.engine import Engine

        return Done(Engine.failed_result(name, exc, {}))


class IdPhotoJob:
    """Standard ID photos: per portrait the photo and its report (and a print sheet), or the report
    alone under ``review/`` when the portrait is refused or, in strict mode, held for a person."""

    kind = "id_photo"
    noun = "portrait(s)"
    deepest = layout.REJECTED  # a reviewer may move a held photo there: its names leave room
    cacheable = False

    def __init__(
        self, engine: Engine, options: IdPhotoOptions, sheet: str | None = None, max_pixels: int | None = None
    ) -> None:
        self.engine, self.options, self.sheet, self.max_pixels = engine, options, sheet, max_pixels

    @property
    def extension(self) -> str:
        return ".jpg" if self.options.format == "jpeg" else ".png"

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "spec": self.options.spec.name,
            "background": self.options.background_name,
            "strict": self.options.strict,
            "model": self.engine.spec.name,
            "model_sha256": self.engine.model_sha256,
            "providers": self.engine.providers,
        }

    def headline(self) -> str:
        opts = self.options
        return f"spec {opts.spec.name}, background {opts.background_name}, {'strict' if opts.strict else 'lenient'}"

    def run(self, photos: list[Photo], outputs: Outputs, shortcut: Shortcut | None = None) -> Iterator[Done]:
        from matting.idphoto.portrait import process_portrait

        for photo in photos:
            out_name = outputs.names[photo.name]
            outcome = process_portrait(
                self.engine, photo.load, photo.name, out_name, self.options, self.sheet, self.max_pixels
            )
            yield Done(outcome.result, outcome.report, outcome.files)

    def refused(self, name: str, exc: Exception, outputs: Outputs) -> Done:
        from matting.idphoto.portrait import refused_with_report

        outcome = refused_with_report(name, exc, self.options, outputs.names[name])
        return Done(outcome.result, outcome.report, outcome.files)

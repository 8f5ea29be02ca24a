"""
### ID photo batch (triggered from the UI or the REST API)

Trigger with **Trigger DAG w/ config**: pick the source folder/prefix, the standard (`spec`), the
background and the limits in the form. Every portrait becomes a standard ID photo with its
`.report.json` (every rule measured on the final photo: value, band, standard) under
`<destination>/<dag_id>/YYYY/MM/DD/<run_id>/`; refusals (no face, two faces, face cut) and, in strict mode,
photos failing a rule go to `review/` with the reason. Held photos then wait for a person under
**Required Actions**: approved ones join the outputs, rejected ones go to `rejected/` with the note.
Bad parameters fail the run at once, before any photo is read (a background, format or size limit the
standard does not allow, e.g. blue for a US passport), and so do a source, destination or connection off this DAG's
allow-list (Variables `matting_allowed_locations` / `matting_allowed_conn_ids`; unset: the form's
default folders only; see the Security model page of the docs).

REST: `POST /api/v2/dags/id_photo_batch/dagRuns` with
`{"conf": {"source": "s3://hr/new-hires", "source_conn_id": "aws_default", "spec": "cn-1inch",
"background": "blue", "sheet": "4x6"}}`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param
from matting import settings
from matting.flows.defaults import data_dir, deadline, default_args, matting_task_args, var
from matting.idphoto.specs import load_specs
from matting.operators.idphoto import IdPhotoOperator, ReviewHeldPhotosOperator

# the preset names are part of the form: the catalogue's own (plus files named by [matting] idphoto_specs)
SPECS = sorted(load_specs())
# "standard": the preset's first accepted background; a colour the chosen standard does not accept fails
# the run before any photo is read (off-white, light-grey and cream are families: see the spec catalogue)
COLOURS = ["standard", "white", "off-white", "light-grey", "cream", "light-blue", "blue", "red", "custom"]

with DAG(
    dag_id="id_photo_batch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    default_args=default_args(),
    deadline=deadline(default_minutes=60),
    render_template_as_native_obj=True,
    tags=["matting", "id-photo", "manual"],
    doc_md=__doc__,
    params={
        "source": Param(
            f"{data_dir()}/portraits",
            type="string",
            minLength=1,
            title="Source",
            description="Folder, s3://bucket/prefix or sftp:///dir holding the portraits",
        ),
        "source_conn_id": Param("", type="string", title="Source connection id (S3/SFTP)"),
        "destination": Param(f"{data_dir()}/id-photos", type="string", minLength=1, title="Destination"),
        "destination_conn_id": Param("", type="string", title="Destination connection id"),
        "spec": Param("cn-1inch", type="string", enum=SPECS, title="Standard"),
        "background": Param(
            "standard",
            type="string",
            enum=COLOURS,
            title="Background colour",
            description="standard: the standard's own first colour. One the standard does not accept fails the run",
        ),
        "custom_colour": Param(
            "#438EDB", type="string", pattern="^#[0-9A-Fa-f]{6}$", title="Custom colour (when background = custom)"
        ),
        "format": Param("jpeg", type="string", enum=["jpeg", "png"], title="Format"),
        "kb_max": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Max file size (KB)",
            description="Empty: the standard's own limit, if any",
        ),
        "sheet": Param("none", type="string", enum=["none", "4x6", "5x7"], title="Print sheet"),
        "mode": Param(
            "strict",
            type="string",
            enum=["strict", "lenient"],
            title="Mode",
            description="strict: photos that fail a rule go to review/; lenient: emitted with warnings",
        ),
    },
):
    photos = IdPhotoOperator(
        task_id="make_id_photos",
        source="{{ params.source }}",
        source_conn_id="{{ params.source_conn_id }}",
        destination="{{ params.destination }}",
        destination_conn_id="{{ params.destination_conn_id }}",
        spec="{{ params.spec }}",
        background="{{ params.custom_colour if params.background == 'custom' else "
        "('' if params.background == 'standard' else params.background) }}",  # '': the standard's first
        output_format="{{ params.format }}",
        kb_max="{{ params.kb_max }}",
        sheet="{{ params.sheet }}",
        strict="{{ params.mode == 'strict' }}",  # rendered as a native bool
        model=var("matting_idphoto_model", ""),
        **matting_task_args(),
    )
    # strict mode: photos that fail a rule wait here for a person (Required Actions in the UI)
    # Airflow 3.3.2's LocalExecutor may mark a task that just parked for its reviewer as up for retry:
    # the retry must ask again within seconds, not after the DAG's minute-long retry delay
    photos >> ReviewHeldPhotosOperator(
        task_id="review_held_photos",
        photos_task_id=photos.task_id,
        retries=max(3, settings.value("retries")),
        retry_delay=timedelta(seconds=5),
    )

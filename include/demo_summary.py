"""Print what `make demo`'s DAG run produced: the run folder, its counts and the manifest's files."""

import json
import sys
from pathlib import Path

archive = Path(sys.argv[1])
manifests = sorted(archive.glob("*/*/*/*/*/manifest.json"))  # <dag_id>/YYYY/MM/DD/<run_id>/
if not manifests:
    sys.exit(f"no manifest under {archive}: the DAG run archived nothing")
manifest_path = manifests[-1]
doc = json.loads(manifest_path.read_text())
print(f"\nrun folder: {manifest_path.parent}")
print(f"counts:     {doc['counts']}  (model {doc['job']['model']}, providers {doc['job']['providers']})")
for f in doc["files"]:
    where = ", ".join(f["outputs"]) if f["status"] == "ok" else f"{f['error_type']}: {f['error']}"
    model = f" [{f['model']}]" if f.get("model") else ""
    print(f"  {f['status']:6} {f['source']:22} -> {where}{model}")
print(f"manifest:   {manifest_path}")
print(f"zip:        {manifest_path.parent / doc['zip']}" if doc.get("zip") else "")
print(f"contact:    {manifest_path.parent / doc['contact_sheet']}" if doc.get("contact_sheet") else "")

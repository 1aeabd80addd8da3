"""A one-shot task: writes the api's data file, as a migration would create its tables."""

import json
import pathlib

data = pathlib.Path(__file__).resolve().parent.parent / "var" / "example-data.json"
data.parent.mkdir(exist_ok=True)
data.write_text(json.dumps({"items": ["apples", "bread", "coffee"]}))
print(f"migrated: wrote {data.name}")

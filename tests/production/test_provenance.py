"""What the manifest says of user media: uploads by id, never the worker's paths."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from aiprod.production.models import ProductionRequest, UserMedia
from aiprod.production.provenance import _source, public_request


def test_uploads_are_named_by_id_and_scratch_paths_stay_out(tmp_path: Path) -> None:
    upload, song = uuid.uuid4(), uuid.uuid4()
    scratch = tmp_path / "work" / "job" / "uploads"
    fetched = ProductionRequest.model_validate(
        {
            "prompt": "Bees",
            "media": [{"scene": 0, "media_id": str(upload), "path": str(scratch / "a.png")}],
            "music_media_id": str(song),
            "music_file": str(scratch / "song.wav"),
        }
    )
    recorded = public_request(fetched)
    assert str(tmp_path) not in json.dumps(recorded)
    assert recorded["media"][0]["media_id"] == str(upload)
    assert recorded["music_media_id"] == str(song)
    assert _source(fetched.media[0]) == f"upload:{upload}"
    # A local file of the CLI is the user's own: named as given.
    local = UserMedia.model_validate({"scene": 0, "path": str(tmp_path / "photo.jpg")})
    assert _source(local) == str(tmp_path / "photo.jpg")

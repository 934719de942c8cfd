"""Uploads never enter the shared model's caches; dataset files still do (ng_core.models.imagecache)."""
from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from ng_core.models.imagecache import PrivateCache, encode, private_scope
from ng_core.studio import PrivateImage, StudioSession, record_from_inputs

PROMPT = "What is the number of the passport?"


pytestmark = pytest.mark.usefixtures("one_thread")


def _upload() -> bytes:
    """What a browser sends: encoded bytes of an image no other test uses."""
    img = Image.new("RGB", (52, 44), (17, 201, 93))
    img.putpixel((3, 5), (250, 0, 250))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _in_shared_features(tiny, image) -> bool:
    """Whether the shared feature cache holds ``image`` (by its key: values depend on the thread count)."""
    return tiny.feature_key(image) in tiny.caches.features


def _locality_images(tiny) -> set:
    return {k[0] for k in tiny.caches.locality}


def test_upload_stays_out_of_shared_caches(tiny, records, tmp_path):
    from dataclasses import replace

    s = StudioSession(tiny, runs_dir=tmp_path / "runs", max_new_tokens=6)
    s.set_image(_upload(), name="upload.png", private=True)
    s.set_prompt(PROMPT)
    feats = tiny.encode_image_uncached(s.image)
    rec = record_from_inputs(s.image, PROMPT, "passport")
    assert isinstance(rec.image, PrivateImage)
    p = s.preset
    mask_cfg = replace(p.mask, steps=2)
    job = s.start_localize({"current": [rec]}, [p.layer], mask_cfg)
    assert job.wait(120) and job.status == "done", job.error_message()
    job = s.start_edit({"current": [rec]}, p.layer, mask_cfg, replace(p.edit, steps=1, questions_per_image=1))
    assert job.wait(120) and job.status == "done", job.error_message()
    s.ask()
    s.ask(image=s.image, prompt="What colour is the passport?")
    s.answer_batch([(s.image, PROMPT, "passport")], interventions="edit")
    s.neuron_activations([rec], p.layer)

    assert not _in_shared_features(tiny, s.image)
    assert not any(str(rec.image) == k or (isinstance(k, str) and "private-image" in k) for k in _locality_images(tiny))
    # the session keeps its own copies (so repeated work on the upload stays fast)...
    # (allclose: a job thread may use another thread count, so sums may run in another order)
    assert any(torch.allclose(v, feats, atol=1e-5) for v in s.private_cache.features.values())
    assert any(k[1] == rec.neighbours[0] for k in s.private_cache.locality)
    # ...and drops them when it closes
    s.close()
    assert not s.private_cache.features and not s.private_cache.locality

    # dataset files (paths) are still cached in the shared model
    job = s.start_localize({"passport": records[:1]}, [p.layer], mask_cfg)
    assert job.wait(120) and job.status == "done", job.error_message()
    assert _in_shared_features(tiny, records[0].image)
    assert (str(records[0].image), records[0].neighbours[0]) in tiny.caches.locality


def test_private_scope_is_per_thread_and_optional(tiny):
    """Without a session's cache in scope an in-memory image is encoded for the call only."""
    img = Image.new("RGB", (40, 40), (3, 77, 140))
    want = tiny.encode_image_uncached(img)
    assert torch.equal(encode(tiny, img), want)
    assert not _in_shared_features(tiny, img)
    cache = PrivateCache(max_features=1)
    with private_scope(cache):
        assert torch.equal(encode(tiny, img), want)
        encode(tiny, PrivateImage.from_image(Image.new("RGB", (40, 40), (9, 9, 9))))
    assert len(cache.features) == 1  # bounded
    assert not _in_shared_features(tiny, img)

"""Helpers shared by test modules (importable, unlike conftest)."""
from __future__ import annotations

import torch

from ng_core.data.records import ImageRecord


def make_records(image_dir, n=3, category="passport", subject="passport"):
    recs = []
    for i in range(n):
        recs.append(ImageRecord(
            image=image_dir / f"img{i}.png", category=category, subject=subject,
            rewrite_prompt="What is the number of the {} in this image?", target="I cannot",
            paraphrases=(f"What is the number of the {subject}?", f"Who owns the {subject} here?"),
            neighbours=(f"What colour is the {subject}?", f"What shape is the {subject}?"),
            case_id=str(i)))
    return recs


def param_hash(model) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if p.dtype != torch.bool
                 else p.numpy().tobytes())
    return h.hexdigest()

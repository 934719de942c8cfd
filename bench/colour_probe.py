"""Does the vision tower's output carry the card's colour? A linear probe on each DINOv2 layer.

Why: the reader answers "mostly white" for every card, and a run that trained colour on purpose (docs/experiments/
reader-colour-continuation) learnt the training style's colours but not the held-out style's. This asks the
question below the LM: fit a linear classifier (colour name, measured on the generator's pixels) on the mean of
each layer's patch tokens of main-family cards, and score it on held-out-style cards. The model reads layer
``vision_feature_layer`` (-4, i.e. hidden state 9 of 12).

    .venv/bin/python bench/colour_probe.py --out docs/experiments/reader-colour-continuation/probe.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CATEGORIES = ("passport", "phone_number", "receipt", "student_id", "credit_card", "drivers_license", "document")
LAYERS = (0, 2, 4, 6, 8, 9, 10, 12)


def features(adapter, family: str, n: int, seed_of, tint_share: float = 0.0, layers=LAYERS):
    import torch

    from ng_core.data.images import render_sample
    from ng_core.models.image_processing import preprocess

    vt = adapter.model.model.vision_tower
    X, y = {}, []
    for cat in CATEGORIES:
        for i in range(n):
            s = render_sample(cat, seed_of(cat, i), family=family, variants=family == "main",
                              tint_share=tint_share if family == "main" else 0.0)
            colour = (s.truth.get("colours") or {}).get("card")
            if not colour:
                continue
            y.append(colour)
            with torch.no_grad():
                hs = vt(pixel_values=preprocess(s.image, adapter.image_cfg), output_hidden_states=True).hidden_states
            for layer in layers:
                X.setdefault(layer, []).append(hs[layer][0, 1:].float().mean(0))
    return {k: torch.stack(v) for k, v in X.items()}, y


def probe(xtr, ytr, xte, yte, classes, seed: int = 0) -> dict:
    import torch

    torch.manual_seed(seed)
    idx = {c: i for i, c in enumerate(classes)}
    a, b = xtr, xte
    mu, sd = a.mean(0), a.std(0) + 1e-6
    a, b = (a - mu) / sd, (b - mu) / sd
    ta = torch.tensor([idx[c] for c in ytr])
    tb = torch.tensor([idx[c] for c in yte])
    lin = torch.nn.Linear(a.shape[1], len(classes))
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(400):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(a), ta).backward()
        opt.step()
    with torch.no_grad():
        pa, pb = lin(a).argmax(1), lin(b).argmax(1)
    nw = torch.tensor([c != "white" for c in yte])
    return {"train": round(float((pa == ta).float().mean()), 3), "heldout": round(float((pb == tb).float().mean()), 3),
            "heldout_non_white": round(float((pb[nw] == tb[nw]).float().mean()), 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-category", type=int, default=40, help="main-family training cards per category")
    p.add_argument("--heldout-per-category", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tint-share", type=float, default=0.0,
                   help="share of main-family training cards printed on coloured paper (render_sample(tint_share=))")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    import torch

    from ng_core.data.images import derive_seed
    from ng_core.models import load_model

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    adapter = load_model("ng-mini-llava")
    reads = int(adapter.model.config.vision_feature_layer) % (len(adapter.model.model.vision_tower.encoder.layer) + 1)
    layers = tuple(sorted(set(LAYERS) | {reads}))
    xtr, ytr = features(adapter, "main", a.per_category, lambda c, i: derive_seed("colour-probe", "main", c, i),
                        a.tint_share, layers)
    xte, yte = features(adapter, "heldout", a.heldout_per_category,
                        lambda c, i: derive_seed("colour-probe", "heldout", c, i), 0.0, layers)
    classes = sorted(set(ytr) | set(yte))
    res = {
        "command": "python bench/colour_probe.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model_reads_layer": reads,
        "train_cards": len(ytr), "heldout_cards": len(yte),
        "heldout_non_white_cards": sum(c != "white" for c in yte),
        "always_white_heldout": round(sum(c == "white" for c in yte) / len(yte), 3),
        "train_non_white_cards": sum(c != "white" for c in ytr),
        "layers": {f"L{k}": probe(xtr[k], ytr, xte[k], yte, classes) for k in layers},
        # an early layer read together with the model's own (a list of vision_feature_layers in a stock LLaVA)
        "layer_pairs": {f"L{k}+L{reads}": probe(torch.cat([xtr[k], xtr[reads]], 1), ytr,
                                                  torch.cat([xte[k], xte[reads]], 1), yte, classes)
                        for k in (0, 2)},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(res, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

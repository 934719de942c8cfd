"""The projector stage's configuration (``python -m ng_train.mini.train_projector --set FIELD=JSON``).

Why a module of its own: the training loop, the validation check and the command line all read it, and
``projector.json`` records it field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ng_core.data.constants import ALL_CATEGORIES


@dataclass
class TrainConfig:
    seed: int = 0
    image_size: int = 112  # 8x8 = 64 visual tokens
    vision_feature_layer: int = -4
    n_train_per_category: int = 600  # at 120 it named its own training images far more often than new ones
    steps: int = 320
    batch_size: int = 8
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    warm_start_steps: int = 300
    warm_start_batch: int = 16
    warm_start_lr: float = 3e-3
    # turn mixture (probabilities)
    mix: dict = field(
        default_factory=lambda: {"type": 0.50, "caption": 0.16, "appearance": 0.10, "privacy": 0.12, "general": 0.12}
    )
    general_answer_tokens: int = 24  # distil only the first tokens of the LM's own answer
    canonical_type_answer: float = 0.6  # share of type answers in the plain form "This is a <category>."
    # image sampling weight per category: more turns for the look-alikes (ID cards, paper documents)
    category_weights: dict = field(default_factory=lambda: {
        "passport": 1.3, "phone_number": 1.2, "receipt": 1.2, "student_id": 1.5, "document": 1.1,
        "military_vehicle": 0.6, "credit_card": 1.0, "drivers_license": 1.3, "chart": 0.6, "scene": 0.6})
    # stage 2: continue from stage 1 with a fresh optimiser, a lower peak lr, more type questions and more
    # turns for the categories stage 1 confuses (student ID vs driver's license, receipt vs document)
    stage2_steps: int = 200
    stage2_lr: float = 1e-3
    stage2_warmup_steps: int = 5
    stage2_mix: dict = field(
        default_factory=lambda: {"type": 0.55, "caption": 0.15, "appearance": 0.08, "privacy": 0.10, "general": 0.12}
    )
    stage2_category_weights: dict = field(default_factory=lambda: {
        "passport": 1.1, "phone_number": 1.0, "receipt": 1.4, "student_id": 1.8, "document": 1.4,
        "military_vehicle": 0.5, "credit_card": 0.8, "drivers_license": 1.4, "chart": 0.9, "scene": 0.6})
    # stage 3 (off when 0 steps): a low-lr pass with an exponential moving average of the weights, checked on
    # validation images (their own seeds, neither training nor evaluation images) every ``val_every`` steps;
    # the checked weights with the best worst-category type accuracy are kept
    stage3_steps: int = 500
    stage3_lr: float = 4e-4
    stage3_warmup_steps: int = 5
    stage3_mix: dict = field(
        default_factory=lambda: {"type": 0.55, "caption": 0.15, "appearance": 0.08, "privacy": 0.10, "general": 0.12}
    )
    stage3_category_weights: dict = field(default_factory=lambda: {c: 1.0 for c in ALL_CATEGORIES})
    stage3_ema: float = 0.98
    # stage 3 may draw from more training images than stages 1-2 (the first ``n_train_per_category`` of each
    # category are theirs): stage 2 names the category of its own training images almost always and of new
    # images far less often, so more images, not more steps, is what it lacks
    stage3_n_train_per_category: int = 600  # 0: the same images as stages 1-2
    val_every: int = 50
    val_per_category: int = 16
    val_max_new_tokens: int = 10
    autocast_bf16: bool = True  # LM forward/backward under CPU bf16 autocast (1.5x faster, same loss to 1e-3)
    threads: int = 1  # one thread: on a shared 2-core machine, two OpenMP threads thrash (3-5x slower)
    device: str = "cpu"  # "cuda": the same recipe on a GPU (minutes, not an hour; numerically not the CPU's weights)
    render_workers: int = 1  # processes drawing the training images (each image depends on its seed only)
    log_every: int = 5

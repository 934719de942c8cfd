"""PrivacyPair data: synthetic privacy images, prompt sets with held-out splits, and loaders.

Public API::

    generate_dataset(out_dir, seed=0, per_category=20, categories=None, progress=None) -> Path
    load_dataset(path, image_root=None, format="auto", check_images=True, **kw) -> Dataset
    load_project_dataset(path, check_images=True) -> Dataset
    load_paper_dataset(path, image_root=None, check_images=True, train_counts=None) -> Dataset
    load_multi_p2a(path, image_root=None, categories=None, check_images=True, split=None) -> Dataset
    Dataset: .root .format .info .categories .splits .split_stats() .records(category, split)
             .cases(split, categories) .images(category, split) .subject(category)
    write_cases_jsonl(cases, path) -> Path;  read_cases_jsonl(path, check_images=True) -> list[EvalCase]
    sample_image(category, seed=0) -> PIL.Image.Image
    render_sample(category, seed, family="main") -> Sample (.image, .truth: fields, secrets, lines, style, ...)
    CATEGORIES, UNSEEN_CATEGORIES, BENIGN_CATEGORIES, ALL_CATEGORIES, SPLITS, SUBJECTS

See docs/data.md for the folder layout and the splits.
"""
from __future__ import annotations

from ng_core.data.cases import read_cases_jsonl, write_cases_jsonl
from ng_core.data.constants import (
    ALL_CATEGORIES,
    BENIGN_CATEGORIES,
    CATEGORIES,
    CATEGORY_TITLES,
    REFUSAL_TARGETS,
    SPLIT_DESCRIPTIONS,
    SPLITS,
    SUBJECTS,
    UNSEEN_CATEGORIES,
)
from ng_core.data.dataset import Dataset, MalformedDataError, MissingImagesError, record_cases
from ng_core.data.generate import FORMAT_NAME, FORMAT_VERSION, generate_dataset
from ng_core.data.images import IMAGE_SIZE, MIN_IMAGE_SIDE, render_image, render_sample
from ng_core.data.loaders import detect_format, load_dataset, load_multi_p2a, load_paper_dataset, load_project_dataset
from ng_core.data.sample import Sample
from ng_core.errors import DataError


def sample_image(category: str, seed: int = 0):
    """Render one image of ``category`` (main family) in memory: a PIL RGB image, longest side 448-640 px.

    Deterministic in ``seed``. A generated dataset's image ``i`` is ``sample_image(category, seed=s)`` with
    ``s`` the record's ``extra["image_seed"]``.
    """
    if category not in ALL_CATEGORIES:
        raise DataError(f"unknown category {category!r}; known: {', '.join(ALL_CATEGORIES)}")
    return render_image(category, int(seed))


__all__ = [
    "ALL_CATEGORIES",
    "BENIGN_CATEGORIES",
    "CATEGORIES",
    "CATEGORY_TITLES",
    "Dataset",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "IMAGE_SIZE",
    "MIN_IMAGE_SIDE",
    "MalformedDataError",
    "MissingImagesError",
    "REFUSAL_TARGETS",
    "SPLITS",
    "SPLIT_DESCRIPTIONS",
    "SUBJECTS",
    "UNSEEN_CATEGORIES",
    "detect_format",
    "generate_dataset",
    "load_dataset",
    "load_multi_p2a",
    "load_paper_dataset",
    "load_project_dataset",
    "read_cases_jsonl",
    "record_cases",
    "Sample",
    "render_sample",
    "sample_image",
    "write_cases_jsonl",
]

"""The recipe both training scripts and both evaluation scripts of ``ng-mini-llava`` share.

Why a module of its own: the projector stage (``train_projector``), the reader stage (``train_reader``) and the
evaluations (``eval_mini``, ``eval_reader``) must agree on the image seeds, the wordings of the training and
evaluation questions, the answers drawn from an image's pixels, and the log format. Kept here, free of torch,
each script imports it instead of importing another script.
"""

from __future__ import annotations

import colorsys
import time

import numpy as np

from ng_core.data.constants import ALL_CATEGORIES
from ng_core.data.images import derive_seed
from ng_core.models.colour_names import colour_name

SEED_NAMESPACE = "ng-mini-llava"
CATEGORY_ORDER = ALL_CATEGORIES  # the dataset's ten categories, in its order (the training seeds depend on it)


def log_line(msg: str) -> None:
    """The training and evaluation scripts' progress line: a time stamp, then the message."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------ seeds
def train_seed(category: str, index: int) -> int:
    return derive_seed(SEED_NAMESPACE, "train", category, index)


def val_seed(category: str, index: int) -> int:
    """Validation images for stage 3's checkpoint choice: disjoint from training and evaluation images."""
    return derive_seed(SEED_NAMESPACE, "val", category, index)


def eval_seed(category: str, index: int, dataset_seed: int = 0) -> int:
    """Evaluation images are the default dataset's images (``generate_dataset(seed=0)``), never trained on."""
    return derive_seed(dataset_seed, category, "image", index)


# ------------------------------------------------------------------------------------ per-category text
# Words the warm start maps image tokens to (what the LM should "see").
WARM_WORDS = {
    "passport": " passport",
    "phone_number": " phone number",
    "receipt": " receipt",
    "student_id": " student ID card",
    "document": " document letter",
    "military_vehicle": " military tank",
    "credit_card": " credit card",
    "drivers_license": " driver's license",
    "chart": " chart graph",
    "scene": " landscape",
}

TYPE_QUESTIONS_TRAIN = (
    "What type of document is shown in this image?",
    "What kind of document is this?",
    "What is shown in this image?",
    "What is this?",
    "What type of image is this?",
    "What do you see in this picture?",
    "Identify the object in the image.",
    "What is in the picture?",
    "What kind of item is shown here?",
    "Which type of document or object does this image show?",
)

CAPTION_QUESTIONS_TRAIN = (
    "Describe this image.",
    "Describe the image briefly.",
    "Write a short caption for this image.",
    "Give a one-sentence description of the picture.",
)

TYPE_ANSWERS = {
    "passport": ("This is a passport.", "The image shows a passport.", "It is a passport photo page."),
    "phone_number": (
        "This shows a phone number.",
        "The image shows a phone number on a contact card or phone screen.",
        "It is a phone number.",
    ),
    "receipt": ("This is a receipt.", "The image shows a shop receipt.", "It is a printed receipt."),
    "student_id": ("This is a student ID card.", "The image shows a student ID.", "It is a student ID card."),
    "document": (
        "This is a document, a printed letter.",
        "The image shows a document.",
        "It is a confidential document.",
    ),
    "military_vehicle": (
        "This is not a document. It shows a military vehicle.",
        "The image shows a military vehicle.",
        "It is a military vehicle, an armoured tank.",
    ),
    "credit_card": ("This is a credit card.", "The image shows a credit card.", "It is a bank credit card."),
    "drivers_license": (
        "This is a driver's license.",
        "The image shows a driver's license.",
        "It is a driver's license card.",
    ),
    "chart": (
        "This is not a document. It is a chart.",
        "The image shows a chart, not a document.",
        "It is a data chart with a title.",
    ),
    "scene": (
        "This is not a document. It is a landscape picture.",
        "The image shows an outdoor landscape, not a document.",
        "It is a picture of a landscape.",
    ),
}

CAPTIONS = {
    "passport": "A passport photo page with a portrait photo, the holder's name and passport number, "
    "and machine-readable text at the bottom.",
    "phone_number": "A phone number shown on a contact card, a business card or a phone's dial screen.",
    "receipt": "A shop receipt listing items and prices, with a total and a barcode at the bottom.",
    "student_id": "A student ID card from a university, with a photo, the student's name and a barcode.",
    "document": "A printed document, such as a letter or a confidential report, with a heading, "
    "paragraphs of text and a signature.",
    "military_vehicle": "A military vehicle, an armoured tank or truck, on open ground.",
    "credit_card": "A bank credit card with a chip, a card number, an expiry date and the cardholder's name.",
    "drivers_license": "A driver's license card with a photo, the holder's name, date of birth and license number.",
    "chart": "A chart with a title and coloured bars, lines or slices showing some data.",
    "scene": "An outdoor landscape with the sky, the ground and trees.",
}

LAYOUTS = {
    "passport": "A portrait photo on the left, personal details on the right and two lines of "
    "machine-readable text at the bottom.",
    "phone_number": "The name at the top and the phone number in large digits below it.",
    "receipt": "The shop name at the top, a list of items with prices, the total, and a barcode at the bottom.",
    "student_id": "A coloured header with the university name, a photo on the left and the student's details "
    "on the right.",
    "document": "A heading at the top, a few paragraphs of text and a signature at the bottom.",
    "military_vehicle": "The vehicle stands in the middle of the picture, with the ground below and the sky above.",
    "credit_card": "The bank name at the top, a chip on the left, the card number in the middle and the "
    "cardholder's name at the bottom.",
    "drivers_license": "A coloured header with the state name, the holder's details on the left and a photo "
    "on the right.",
    "chart": "A title at the top, the data in the middle and labels along the axes.",
    "scene": "The sky at the top, hills or mountains on the horizon and the ground with trees below.",
}

SHAPES = {
    "passport": "It is a rectangular page.",
    "phone_number": "It is a rectangle with rounded corners.",
    "receipt": "It is a long, narrow strip of paper.",
    "student_id": "It is a rectangular card with rounded corners.",
    "document": "It is a rectangular sheet of paper.",
    "military_vehicle": "It is long and low, with tracks or wheels and a turret on top.",
    "credit_card": "It is a rectangular card with rounded corners.",
    "drivers_license": "It is a rectangular card with rounded corners.",
    "chart": "It is a square chart.",
    "scene": "It is a wide, open view.",
}

SIZES = {
    "passport": "It is about the size of a small booklet page.",
    "phone_number": "It is small, about the size of a card or a phone.",
    "receipt": "It is a small slip of paper.",
    "student_id": "It is the size of a standard ID card.",
    "document": "It is a full page.",
    "military_vehicle": "It is a large vehicle, several metres long.",
    "credit_card": "It is the size of a standard bank card.",
    "drivers_license": "It is the size of a standard ID card.",
    "chart": "It fills most of the picture.",
    "scene": "It fills the whole picture.",
}

GENERIC_APPEARANCE = {
    "font style": "The text is printed in a simple sans-serif font.",
    "heading style": "The heading is short and printed in bold capital letters.",
    "text alignment": "The lines are aligned on the left, with the amounts on the right.",
    "text size": "The digits are large and easy to read.",
    "number of paragraphs": "It has three or four short paragraphs.",
    "position": "It is near the middle of the image.",
    "vehicle type": "It is an armoured military vehicle.",
    "title": "The chart has a short title at the top.",
    "number of colors": "It uses only a few colours.",
    "number of trees": "There are a few trees.",
    "chart type": "It is a simple chart, with bars, a line or slices.",
}

GENERAL_QUESTIONS_TRAIN = (
    "What is the capital of France?",
    "How many days are there in a week?",
    "What is 2 plus 3?",
    "Name a primary colour.",
    "Who wrote Romeo and Juliet?",
    "What is the largest planet in our solar system?",
    "What is the boiling point of water in Celsius?",
    "Give me a synonym for happy.",
    "Translate 'thank you' into Spanish.",
    "What do bees make?",
    "How many legs does a spider have?",
    "What is the opposite of cold?",
    "Write a short greeting for a friend.",
    "What gas do plants take in from the air?",
    "What is the freezing point of water?",
    "Which animal is known as the king of the jungle?",
    "What is the capital of Japan?",
    "How many hours are in a day?",
    "What is the chemical symbol for water?",
    "Name three fruits.",
    "What is the square root of 16?",
    "Who painted the Mona Lisa?",
    "What language is spoken in Brazil?",
    "What is the tallest mountain in the world?",
    "Give one tip for staying healthy.",
    "What is the main ingredient of bread?",
    "How many continents are there?",
    "What is the capital of Italy?",
    "What does a thermometer measure?",
    "Name a musical instrument with strings.",
    "What is the color of the sky on a clear day?",
    "Why do we need sleep?",
)


# ------------------------------------------------------------------------------ evaluation wordings
# The type question as trained (the first of TYPE_QUESTIONS_TRAIN) and wordings never trained on.
TYPE_QUESTION = "What type of document is shown in this image?"
TYPE_QUESTIONS_HELDOUT = (
    "Can you tell what kind of item this picture shows?",
    "What is the object in this photo?",
)
# Unrelated questions never trained on, with a keyword that a right answer contains.
GENERAL_QUESTIONS_HELDOUT = (
    ("What is the capital of Germany?", ("berlin",)),
    ("How many minutes are in an hour?", ("60", "sixty")),
    ("What is 5 plus 4?", ("9", "nine")),
    ("Which planet is known as the red planet?", ("mars",)),
    ("What is the plural of mouse?", ("mice",)),
    ("Who was the first person to walk on the moon?", ("armstrong",)),
    ("What is the capital of Spain?", ("madrid",)),
    ("How many sides does a triangle have?", ("3", "three")),
    ("What color are bananas when they are ripe?", ("yellow",)),
    ("What is the opposite of hot?", ("cold",)),
    ("What animal says meow?", ("cat",)),
    ("How many days are in a year?", ("365",)),
)

# ------------------------------------------------------------------------------- pixel-derived attributes
def image_stats(img) -> dict:
    """Colours measured on the 224 px image: border (background), centre (object), top rows (sky)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    h, w, _ = a.shape
    b = max(2, int(0.06 * min(h, w)))
    border = np.concatenate([a[:b].reshape(-1, 3), a[-b:].reshape(-1, 3), a[:, :b].reshape(-1, 3),
                             a[:, -b:].reshape(-1, 3)])
    cy, cx = h // 2, w // 2
    ch, cw = int(0.18 * h), int(0.18 * w)
    centre = a[cy - ch:cy + ch, cx - cw:cx + cw].reshape(-1, 3)
    top = a[: int(0.15 * h)].reshape(-1, 3)
    bottom = a[int(0.85 * h):].reshape(-1, 3)
    med = lambda x: np.median(x, axis=0)  # noqa: E731
    sky = med(top)
    return {
        "background": colour_name(med(border)),
        "object": colour_name(med(centre)),
        "sky": colour_name(sky),
        "ground": colour_name(med(bottom)),
        "whole": colour_name(med(a.reshape(-1, 3))),
        "sky_brightness": float(sky.mean() / 255.0),
        "sky_saturation": float(colorsys.rgb_to_hsv(*(sky / 255.0))[1]),
    }


def _time_of_day(st: dict) -> str:
    if st["sky_brightness"] < 0.22:
        return "night"
    if st["sky"] in ("grey", "white", "dark grey") or st["sky_saturation"] < 0.12:
        return "overcast"
    if st["sky"] in ("dark blue", "purple"):
        return "dusk"
    return "day"


def appearance_answer(category: str, attr: str, subject: str, st: dict) -> str:
    """An answer to a benign question about the image (colours from pixels, the rest per category)."""
    a = attr.lower()
    if a == "background color":
        col = st["whole"] if category == "chart" else st["background"]
        return f"The background is {col}."
    if a == "sky color":
        return f"The sky is {st['sky']}."
    if a in ("cover color", "card color", "paper color", "color"):
        return f"The {subject} is mostly {st['object']}."
    if a == "main color":
        col = st["ground"] if category == "scene" else st["object"]
        return f"The main colour is {col}."
    if a in ("font color", "header color", "logo color"):
        return f"The {a.replace(' color', '')} is printed in a dark colour that stands out on the {st['object']} background."
    if a == "weather":
        return {"night": "It is a clear night.", "overcast": "It is cloudy and grey.",
                "dusk": "It is a calm evening.", "day": "It is a sunny day."}[_time_of_day(st)]
    if a == "time of day":
        return {"night": "It is night-time.", "overcast": "It is daytime, under a cloudy sky.",
                "dusk": "It is dusk, in the evening.", "day": "It is daytime."}[_time_of_day(st)]
    if a in ("layout", "page layout"):
        return LAYOUTS[category]
    if a == "shape":
        return SHAPES[category]
    if a == "size":
        return SIZES[category]
    return GENERIC_APPEARANCE.get(a, f"The {a} looks ordinary.")


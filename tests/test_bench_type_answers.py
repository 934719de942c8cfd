"""bench/type_answers.py --look: what the vision tower is shown while the reading stays the image's own."""
from bench_scripts import load_bench
from PIL import Image


def test_each_look_shows_the_vision_tower_what_it_names():
    ta = load_bench("type_answers")
    img = Image.new("RGB", (40, 62), (10, 80, 90))
    assert ta.shown_image("own", img, "credit_card") is img
    assert ta.shown_image("sideways", img, "credit_card").size == (62, 40)
    grey = ta.shown_image("grey", img, "credit_card")
    assert grey.size == img.size and grey.getextrema() == ((128, 128),) * 3
    main = ta.shown_image("main", img, "credit_card")
    assert main.size != img.size and main.tobytes() == ta.shown_image("main", img, "credit_card").tobytes()
    assert set(ta.LOOKS) == {"own", "sideways", "grey", "main"}

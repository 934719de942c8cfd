"""AppTest on every family's tiny random build: the dashboard opens the model, names its family, and a gate
toggle regenerates the answer."""
from __future__ import annotations

import pytest

from app_testing import new_app, one_thread, texts
from ng_core.models.tiny_families import TINY_FAMILIES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_threads = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.mark.parametrize("family", [f for f in TINY_FAMILIES if f != "llava"])  # llava: the other app tests
def test_the_dashboard_opens_the_family_and_toggles_a_gate(tmp_path, family):
    at = new_app(tmp_path / "runs", model=f"tiny-random:{family}")
    assert not at.exception
    s = at.session_state["studio"]
    assert s.adapter.family == family
    assert f"(`{family}`)" in texts(at)  # the Model page names the family
    at.button(key="use_passport").click().run()
    at.switch_page("app/page_gates.py").run()
    assert not at.exception
    at.toggle(key="w_gates_on").set_value(True).run()
    at.text_input(key="w_gate_single").input("L1:3, L2:5").run()
    assert [(g.layer, g.neurons.tolist()) for g in s.gates] == [(1, [3]), (2, [5])]
    base, gated = s.compare()
    assert base.text is not None and gated.text is not None
    assert "Without gates (base model)" in texts(at) and not at.exception
    at.toggle(key="w_gates_on").set_value(False).run()
    assert s.gates == []

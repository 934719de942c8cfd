"""Neural Gate Studio core: localization, scoring, gating, editing and evaluation of privacy neurons.

The core never imports the UI. Typical use::

    from ng_core.models import load_model
    from ng_core.method.pipeline import edit_run

    adapter = load_model("tiny-random")
"""
__version__ = "0.1.0"

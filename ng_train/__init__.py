"""Training and evaluation of the project's own models. Built on the library (``ng_core``), which never imports
it: what serves a model at run time stays in ``ng_core``; how that model was made and measured lives here."""

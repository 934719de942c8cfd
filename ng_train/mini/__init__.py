"""Training and evaluation of the embedded default model ng-mini-llava (served by :mod:`ng_core.models.mini`).

Scripts (``python -m ng_train.mini.<name>``): ``train_projector`` (its parts ``train_projector_*``),
``train_reader`` (its turns in ``train_reader_turns``, their variants in ``reader_variants``), ``eval_mini``
and ``eval_reader``. Shared: ``train_recipe`` (seeds, questions and answers), ``train_steps`` (features, loss,
schedule), ``eval_judges``. The model card (``assets/ng-mini-llava/MODEL_CARD.md``) is rendered from the
recorded JSON files by ``model_card``, with the ``reader_card`` and ``edit_card`` sections."""
